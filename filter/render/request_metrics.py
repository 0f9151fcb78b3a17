"""The request metrics as native code (envoy/switchyard_request_metrics.c, an Envoy dynamic module
that `make install` builds) as Envoy configuration.

Where Envoy runs Switchyard's modules (filter/render/dynamic_modules.py), this filter counts every
request — status, decision, upstream duration, time to first token, tokens — in place of the
metrics part of the Wasm extension, which costs each request more (make bench
BENCH_ARGS=--fast-path-costs); the governance (cost, limits) stays a Wasm filter of its own.
`switchyard render` keeps the one Wasm extension for both. The families and their labels are the
same either way; filter/envoy_stats.py reads both forms.

Pure functions: Envoy configuration dicts out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from filter.metrics import extension_config
from filter.render import dynamic_modules

MODULE = "switchyard_request_metrics"
MODULE_FILE = f"lib{MODULE}.so"
FILTER_NAME = "switchyard.request_metrics"


def metrics_filter(module: Path) -> dict[str, Any]:
    """The filter; it goes last, just before the router: it sees the answer first (and removes
    the timing headers before any other filter), and its stream_complete runs after the usage
    filter's, which writes a cut answer's token counts there."""
    return dynamic_modules.module_filter(FILTER_NAME, MODULE, "request_metrics", extension_config(), module,
                                         "envoy/switchyard_request_metrics.c")
