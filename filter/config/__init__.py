"""Typed configuration: the Plano YAML format (v0.3 and v0.4) plus Switchyard's `routing:`,
`gateway:` and `failover:` sections.

`load_config(path)` reads, checks and builds the whole configuration once at start-up. Every
problem is one `ConfigError` whose message names the file and the key path; nothing starts on a
bad file. Keys Plano has and Switchyard does not implement are accepted and listed in
`config.warnings`, one line each. The objects built are frozen and shared read-only by every
request.

- `loader.py` — YAML within bounds (no anchors or aliases, size, depth, duplicate keys)
- `schema.py` — the file's shape and types (pydantic), with Switchyard's wording of errors
- `build.py`  — the rules across keys, into the runtime objects of `model.py`
- `errors.py` — `file: key.path: problem`
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import yaml

from filter.config.build import cluster_name, parse_config, upstream_from_url
from filter.config.errors import ConfigError
from filter.config.loader import YamlLimitError, load_yaml
from filter.config.model import (
    Budget,
    Chain,
    ClientKey,
    Config,
    Failover,
    Gateway,
    Listener,
    ModelInfo,
    Prices,
    Provider,
    RateLimits,
    RoutePool,
    Routing,
    Secret,
    StoreSettings,
    Upstream,
)
from filter.config.schema import parse_duration

__all__ = [
    "Budget", "Chain", "ClientKey", "Config", "ConfigError", "Failover", "Gateway", "Listener", "ModelInfo",
    "Prices", "Provider", "RateLimits", "RoutePool", "Routing", "Secret", "StoreSettings", "Upstream",
    "cluster_name", "load_config", "parse_config", "parse_duration", "upstream_from_url",
]


def load_config(path: str | os.PathLike, env: Mapping[str, str] | None = None) -> Config:
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{file}: not valid UTF-8") from None
    try:
        raw = load_yaml(text)
    except YamlLimitError as exc:
        raise ConfigError(f"{file}: not accepted as YAML: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{file}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    except RecursionError:  # a pathological document the limits did not catch first
        raise ConfigError(f"{file}: not accepted as YAML: nested too deeply") from None
    return parse_config(raw, file, env)
