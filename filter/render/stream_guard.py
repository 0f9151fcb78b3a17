"""The fast path's stream guard inside Envoy (envoy/switchyard_stream_guard.c, an Envoy dynamic
module that `make install` builds) as Envoy configuration.

Where Envoy runs Switchyard's modules (filter/render/dynamic_modules.py) and the fast path is on,
a fast-path stream's answer never leaves Envoy: the guard filter, built for the fast path's
streams only, ends a stream still running at the listener timeout in the client's format, as
filter/stream_guard.py does. Elsewhere the twins relay the answer through the filter instead
(filter/render/fast_path.py).

Pure functions: Envoy configuration dicts out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from filter.config import Config
from filter.render import dynamic_modules
from filter.stream_guard import cut_message, deadline_margin

MODULE = "switchyard_stream_guard"  # Envoy loads lib<MODULE>.so from dynamic_modules.SEARCH_PATH_ENV
MODULE_FILE = f"lib{MODULE}.so"
FILTER_NAME = "switchyard.stream_guard"


def in_envoy(config: Config, local: bool) -> bool:
    """Whether Envoy guards the fast path's streams itself."""
    return dynamic_modules.in_envoy(config, local) and config.gateway.fast_path


def configuration(config: Config) -> str:
    """The module's settings: the listener timeout, the margin before it, the largest partial
    event held back, and the error message of a cut stream (a JSON string)."""
    timeout = config.listener.timeout_s
    message = orjson.dumps(cut_message(timeout)).decode()
    return f"{timeout!r} {deadline_margin(timeout)!r} {config.gateway.max_response_bytes}\n{message}\n"


def guard_filter(config: Config, module: Path) -> dict[str, Any]:
    """The HTTP filter (filter/render/fast_path.py builds it for the fast path's streams only)."""
    return dynamic_modules.module_filter(FILTER_NAME, MODULE, "stream_guard", configuration(config), module,
                                         "envoy/switchyard_stream_guard.c")
