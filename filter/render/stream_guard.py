"""The fast path's stream guard inside Envoy (envoy/switchyard_stream_guard.c, an Envoy dynamic
module that `make install` builds) as Envoy configuration.

Where Envoy runs with this checkout's files (`switchyard up`) and the metrics extension counts
what the guard cuts, a fast-path stream's answer never leaves Envoy: the guard filter, built for the
fast path's streams only, ends a stream still running at the listener timeout in
the client's format, as filter/stream_guard.py does. Elsewhere (`switchyard render`: Envoy in
another container or a team's own, which cannot load a file of ours) the twins relay the answer
through the filter instead (filter/render/fast_path.py).

Pure functions: Envoy configuration dicts out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from filter.config import Config
from filter.stream_guard import cut_message, deadline_margin

MODULE = "switchyard_stream_guard"  # Envoy loads lib<MODULE>.so from ENVOY_DYNAMIC_MODULES_SEARCH_PATH
MODULE_FILE = f"lib{MODULE}.so"
SEARCH_PATH_ENV = "ENVOY_DYNAMIC_MODULES_SEARCH_PATH"
FILTER_NAME = "switchyard.stream_guard"


class ModuleMissing(Exception):
    """The compiled guard is not there: `make install` builds it from envoy/switchyard_stream_guard.c."""


def in_envoy(config: Config, local: bool) -> bool:
    """Whether Envoy guards the fast path's streams itself: `local` (Envoy loads our files) with the
    fast path and the metrics extension (which counts the cuts) on."""
    return local and config.gateway.fast_path and config.gateway.usage_metrics


def configuration(config: Config) -> str:
    """The module's settings: the listener timeout, the margin before it, the largest partial
    event held back, and the error message of a cut stream (a JSON string)."""
    timeout = config.listener.timeout_s
    message = orjson.dumps(cut_message(timeout)).decode()
    return f"{timeout!r} {deadline_margin(timeout)!r} {config.gateway.max_response_bytes}\n{message}\n"


def guard_filter(config: Config, module: Path) -> dict[str, Any]:
    """The HTTP filter (filter/render/fast_path.py builds it for the fast path's streams only)."""
    if not module.is_file():
        raise ModuleMissing(f"{module} is missing: run `make install`, which builds it from "
                            "envoy/switchyard_stream_guard.c")
    return {
        "name": FILTER_NAME,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
            "dynamic_module_config": {"name": MODULE},
            "filter_name": "stream_guard",
            "filter_config": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                              "value": configuration(config)},
        },
    }
