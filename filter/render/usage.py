"""Token counts read inside Envoy (envoy/switchyard_usage.c, an Envoy dynamic module that `make
install` builds) as Envoy configuration.

Where Envoy runs Switchyard's modules (filter/render/dynamic_modules.py), one filter reads every
answer's token counts, streamed or JSON, in place of the bootstrap's token-scan Lua and
json_to_metadata (envoy/bootstrap.template.yaml), which stay for `switchyard render`: the same
`switchyard.usage` metadata for the access log, the metrics and the governance, at a fraction of
their cost to each request (make bench BENCH_ARGS=--fast-path-costs).

Pure functions: Envoy configuration dicts out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from filter.render import dynamic_modules

MODULE = "switchyard_usage"
MODULE_FILE = f"lib{MODULE}.so"
FILTER_NAME = "switchyard.usage"
# The bootstrap's filters it replaces: the token scan (a Lua filter) and json_to_metadata.
REPLACED = ("envoy.filters.http.lua", "envoy.filters.http.json_to_metadata")


def usage_filter(module: Path, buffer_bytes: int) -> dict[str, Any]:
    """`buffer_bytes`: Envoy's buffer limit, which a JSON answer held until whole must fit (one
    that declares a length within it is not held)."""
    return dynamic_modules.module_filter(FILTER_NAME, MODULE, "usage", str(int(buffer_bytes)), module,
                                         "envoy/switchyard_usage.c")


def in_place_of_token_filters(http_filters: list[dict[str, Any]], module: Path, buffer_bytes: int) -> list[dict[str, Any]]:
    """The filter list with the usage filter where the token scan was, and neither replaced filter."""
    at = next(i for i, f in enumerate(http_filters) if f["name"] == REPLACED[0])
    kept = [f for f in http_filters[:at] if f["name"] not in REPLACED]
    return [*kept, usage_filter(module, buffer_bytes), *(f for f in http_filters[at:] if f["name"] not in REPLACED)]
