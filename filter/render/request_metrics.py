"""The request metrics as native code (envoy/switchyard_request_metrics.c, an Envoy dynamic module
that `make install` builds) as Envoy configuration.

Where Envoy runs Switchyard's modules (filter/render/dynamic_modules.py), this filter counts every
request — status, decision, upstream duration, time to first token, tokens — in place of the
metrics part of the Wasm extension, which costs each request more (make bench
BENCH_ARGS=--fast-path-costs); the governance (cost, limits) stays a Wasm filter of its own.
`switchyard render` keeps the one Wasm extension for both. The families and their labels are the
same either way; filter/envoy_stats.py reads both forms.

Where no key or model has a limit or a budget, the governance filter has nothing to do but count
the cost: the virtual host then turns it off (Envoy does not build it for a request) and gives
this filter the prices instead, so it counts the cost. Both are route configuration, which a
reload replaces: a reload that adds a limit turns the governance back on.

Pure functions: Envoy configuration dicts out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from filter.config import Config
from filter.metrics import extension_config
from filter.render import dynamic_modules, governance

MODULE = "switchyard_request_metrics"
MODULE_FILE = f"lib{MODULE}.so"
FILTER_NAME = "switchyard.request_metrics"


def metrics_filter(module: Path) -> dict[str, Any]:
    """The filter; it goes last, just before the router: it sees the answer first (and removes
    the timing headers before any other filter), and its stream_complete runs after the usage
    filter's, which writes a cut answer's token counts there."""
    return dynamic_modules.module_filter(FILTER_NAME, MODULE, "request_metrics", extension_config(), module,
                                         "envoy/switchyard_request_metrics.c")


def virtual_host_filter_configs(config: Config) -> dict[str, Any]:
    """The virtual host's per-filter configuration under `switchyard up`: with no limit or budget
    anywhere, the governance's filter off and the prices (the governance's `price` lines) to this
    one; otherwise none (the governance counts the cost)."""
    if governance.enforces(config):
        return {}
    prices = "".join(f"{line}\n" for line in governance.price_lines(config))
    return {
        governance.FILTER_NAME: {"@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig", "disabled": True},
        FILTER_NAME: dynamic_modules.per_route(MODULE, "prices", prices),
    }
