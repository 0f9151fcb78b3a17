"""Switchyard's compiled Envoy extensions (envoy/switchyard_*.c, Proxy-Wasm modules built by
`make install`) as Envoy configuration: where a module's code comes from and the HTTP filter that
runs it. Which filters a bootstrap holds is filter/render/bootstrap.py's choice.

Pure functions: Envoy configuration dicts out.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from filter.render import governance
from filter.metrics import extension_config

# The metrics and the governance in one module, one filter (envoy/switchyard_extension.c): the
# default, with gateway.usage_metrics on. Off, governance.EXTENSION_FILE runs alone.
EXTENSION_FILE = "switchyard_extension.wasm"
EXTENSION_FILTER = "switchyard.extension"


class ExtensionMissing(Exception):
    """The compiled extension is not there: `make install` builds it from envoy/*.c."""


def extension_code(path: Path, inline: bool) -> dict[str, Any]:
    """Where Envoy loads the module from: the file (`switchyard up`), or its bytes inside the
    bootstrap (`switchyard render`: Envoy may run in another container, without our files)."""
    if not path.is_file():
        raise ExtensionMissing(f"{path} is missing: run `make install`, which builds it from envoy/*.c")
    if inline:
        return {"local": {"inline_bytes": base64.b64encode(path.read_bytes()).decode()}}
    return {"local": {"filename": str(path)}}


def wasm_filter(name: str, vm: str, code: dict[str, Any], configuration: str) -> dict[str, Any]:
    """An HTTP filter running a module on Envoy's V8, one VM per worker thread. If the module
    fails, requests go on (unlimited, uncounted) rather than all failing."""
    return {
        "name": name,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": vm,
                "root_id": vm,
                "vm_config": {"vm_id": vm, "runtime": "envoy.wasm.runtime.v8", "code": code},
                "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": configuration},
                "failure_policy": "FAIL_OPEN",
            },
        },
    }


def extension_filter(code: dict[str, Any]) -> dict[str, Any]:
    """The metrics and the governance in one filter; it goes last, just before the router, so
    that it sees the answer (and removes the timing headers) before any other filter, and counts
    every request. Its configuration is both parts' lines (each reads its own)."""
    return wasm_filter(EXTENSION_FILTER, "switchyard", code, extension_config() + governance.plugin_configuration())


def governance_filter(code: dict[str, Any]) -> dict[str, Any]:
    """The governance module alone: with gateway.usage_metrics off (right after ext_proc, where
    every forwarded request has its decision and its client key's name), and under `switchyard
    up`, where the request metrics are native code (filter/render/request_metrics.py)."""
    return wasm_filter(governance.FILTER_NAME, "switchyard_governance", code, governance.plugin_configuration())
