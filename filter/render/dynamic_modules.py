"""Switchyard's Envoy dynamic modules (C filters in envoy/, built by `make install`) as Envoy
configuration: where Envoy runs them, and the HTTP filter entry that loads one.

They run only where Envoy runs with this checkout's files (`switchyard up`): `switchyard render`
produces Envoy configuration for another container or a team's own Envoy, which cannot load a
file of ours, and keeps Envoy's built-in filters and the filter's relay in their place. They also
need the metrics extension (gateway.usage_metrics), which counts what they report.

Pure functions: Envoy configuration dicts out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from filter.config import Config

SEARCH_PATH_ENV = "ENVOY_DYNAMIC_MODULES_SEARCH_PATH"  # where Envoy finds lib<module>.so


class ModuleMissing(Exception):
    """A compiled module is not there: `make install` builds it from its C source in envoy/."""


def in_envoy(config: Config, local: bool) -> bool:
    """Whether Envoy runs the modules: `local` (Envoy loads our files) with the metrics extension on."""
    return local and config.gateway.usage_metrics


def module_filter(name: str, module: str, filter_name: str, settings: str, path: Path, source: str) -> dict[str, Any]:
    """The HTTP filter `name`, filter `filter_name` of lib<module>.so (at `path`, built from
    `source`), given `settings` as a string."""
    if not path.is_file():
        raise ModuleMissing(f"{path} is missing: run `make install`, which builds it from {source}")
    return {
        "name": name,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
            "dynamic_module_config": {"name": module},
            "filter_name": filter_name,
            "filter_config": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": settings},
        },
    }


def per_route(module: str, name: str, text: str) -> dict[str, Any]:
    """Per-route configuration `text` for lib<module>.so's filter (route or virtual host), which
    Envoy hands to the module once per route update, parsed by it, as `name`."""
    return {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilterPerRoute",
        "dynamic_module_config": {"name": module},
        "per_route_config_name": name,
        "filter_config": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": text},
    }
