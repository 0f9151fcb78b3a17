"""The fast path as native code (envoy/switchyard_fast_path.c, an Envoy dynamic module that `make
install` builds) as Envoy configuration.

Where Envoy runs Switchyard's modules (filter/render/dynamic_modules.py), this filter takes the
place of the fast path's Lua (envoy/fast_path.lua), under the same filter name, with the same
rules; `switchyard render` keeps the Lua. The module reads what the Lua reads from the virtual
host's and the fast routes' metadata, as per-route configuration instead (Envoy hands it to the
module parsed once per route update, where the Lua reads a table from Envoy on every request): the
texts below are made from those same metadata tables, so the two cannot drift apart.

Pure functions: Envoy configuration dicts out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from filter.render import dynamic_modules
from filter.render.fast_path import LUA_FILTER

MODULE = "switchyard_fast_path"
MODULE_FILE = f"lib{MODULE}.so"
FILTER_NAME = LUA_FILTER  # the one fast-path filter, Lua or native: what the composite and the bench look for


def module_filter(module: Path) -> dict[str, Any]:
    """The filter; it goes where the Lua goes, before ext_proc (after the request body is decompressed)."""
    return dynamic_modules.module_filter(FILTER_NAME, MODULE, "fast_path", "", module, "envoy/switchyard_fast_path.c")


def _line(name: str, value: str) -> str:
    if "\n" in value or "\r" in value:  # never in what the renderer writes: JSON, paths, ids, hex
        raise ValueError(f"{name}: a line break cannot be configured here")
    return f"{name} {value}\n"


def virtual_host_text(metadata: dict[str, Any]) -> str:
    """The virtual host's configuration, from its fast-path metadata (fast_path.client_key_metadata
    and the request limit)."""
    text = _line("max_request_bytes", str(int(metadata["max_request_bytes"])))
    if metadata.get("client_keys"):
        text += _line("salt", metadata["client_key_salt"])
        for entry in metadata["client_keys"]:
            text += _line("key", f"{entry['sha256']} {entry['name'].encode().hex()}")
        text += _line("unauthorized_openai", metadata["unauthorized_openai"])
        text += _line("unauthorized_anthropic", metadata["unauthorized_anthropic"])
    return text


def route_text(fast: dict[str, Any]) -> str:
    """A fast route's configuration, from its `fast` metadata table (fast_path.envoy_route, the
    clients a restricted route admits included)."""
    text = _line("model_json", fast["model_json"]) + _line("upstream_path", fast["upstream_path"])
    if "anthropic_version" in fast:
        text += _line("anthropic_version", fast["anthropic_version"])
    if fast.get("spans"):
        text += _line("spans", "1")
    pairs = fast["metadata"]
    for name, value in zip(pairs[::2], pairs[1::2]):
        text += _line("meta", f"{name} {value}")
    if "clients" in fast:
        text += _line("restricted", "1")
        for client in fast["clients"]:
            text += _line("client", client.encode().hex())
    return text


def per_route(text: str) -> dict[str, Any]:
    return dynamic_modules.per_route(MODULE, "fast_path", text)


def with_route_config(route: dict[str, Any]) -> dict[str, Any]:
    """The rendered fast route with the module's configuration beside its metadata."""
    fast = route["metadata"]["filter_metadata"][LUA_FILTER]["fast"]
    return {**route, "typed_per_filter_config": {**route.get("typed_per_filter_config", {}),
                                                 FILTER_NAME: per_route(route_text(fast))}}
