"""The governance extension (envoy/switchyard_governance.c) as Envoy configuration: its plugin
configuration, and the settings it reads from the virtual host's metadata — limits and budgets by
entity, prices by model, and the gateway's error bodies — which change with the routes on a
reload. Also which client keys may take each fast route (the fast path's Lua reads it).

Pure functions: a `Config` in, Envoy configuration dicts and text out.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from filter.catalog import Catalog
from filter.config import Config
from filter.errors import ClientApi, GatewayError, error_body
from filter.governance.policy import ModelAccess, permitted, policies
from filter.governance.protocol import encode_name
from filter.resolve import Decision

EXTENSION_FILE = "switchyard_governance.wasm"
FILTER_NAME = "switchyard.governance"
METADATA_NAMESPACE = "switchyard.governance"
# How often each Envoy pushes its own counts and pulls the store's totals, and how long a call may take.
SYNC_MS = 200
TIMEOUT_MS = 500
_SENTINEL = "\x00"


def plugin_configuration(cluster: str = "switchyard_filter") -> str:
    """The module's static settings (its filter: filter/render/wasm.py): the workers' cluster it
    calls, how often it syncs, how long a call may take."""
    return f"cluster {cluster}\nsync_ms {SYNC_MS}\ntimeout_ms {TIMEOUT_MS}\n"


def local_reply_mapper() -> dict[str, Any]:
    """The first of Envoy's local-reply mappers: the extension's own refusals (their request
    carries `x-switchyard-limited`) keep their body; the later mappers rewrite other 5xx."""
    return {"filter": {"header_filter": {"header": {"name": "x-switchyard-limited", "present_match": True}}}}


def _number(value: float | int | None) -> str:
    return "-" if value is None else repr(float(value))


def _bodies() -> list[str]:
    """The gateway's own error bodies around a message the extension writes: prefix and suffix
    per client API and kind (429 rate, 429 budget, 503 fail closed)."""
    lines = []
    errors = {
        "rate": GatewayError(429, _SENTINEL, code="rate_limit_exceeded"),
        "quota": GatewayError(429, _SENTINEL, code="insufficient_quota"),
        "unavailable": GatewayError(503, _SENTINEL, code="limits_unavailable"),
    }
    for api in ClientApi:
        for kind, error in errors.items():
            body = error_body(api, error).decode()
            if kind == "quota" and api is not ClientApi.MESSAGES:  # OpenAI's own exhausted-quota shape
                body = orjson.dumps({"error": {"message": _SENTINEL, "type": "insufficient_quota", "param": None,
                                               "code": "insufficient_quota"}}).decode()
            prefix, marker, suffix = body.partition(orjson.dumps(_SENTINEL).decode()[1:-1])
            assert marker, "the message is a JSON string of the body"
            lines.append(f"body {api.value} {kind} {encode_name(prefix)} {encode_name(suffix)}")
    return lines


def settings_text(config: Config, catalog: Catalog | None = None) -> str:
    """What the extension reads: `fail_closed`, one `limit` line per entity with limits or a
    budget, one `price` line (USD per token) per model with a price, and the error bodies."""
    lines = [f"fail_closed {1 if config.gateway.limits_fail_closed else 0}"]
    for policy in policies(config).values():
        lines.append(f"limit {encode_name(policy.entity)} {_number(policy.rpm)} {_number(policy.tpm)} "
                     f"{_number(policy.usd)} {policy.period or '-'}")
    lines += price_lines(config, catalog)
    lines += _bodies()
    return "\n".join(lines) + "\n"


def enforces(config: Config) -> bool:
    """Whether any key or model has a limit or a budget: without one, the governance filter has
    nothing to do but count the cost, which the native request metrics can do in its place."""
    return bool(policies(config))


def price_lines(config: Config, catalog: Catalog | None = None) -> list[str]:
    """One `price <model> <input> <output> <cached>` line (USD per token) per model with a price."""
    catalog = catalog or Catalog.of(config)
    lines = []
    for provider in config.providers:
        prices = catalog.price(provider) if not provider.wildcard else None
        if provider.wildcard and provider.prices is not None and provider.prices.input is not None \
                and provider.prices.output is not None:
            # A wildcard entry serves many ids: priced only by its own `prices`, under its name.
            cached = provider.prices.cached_input if provider.prices.cached_input is not None else provider.prices.input
            per_token = (provider.prices.input / 1e6, provider.prices.output / 1e6, cached / 1e6)
            lines.append(f"price {encode_name(provider.slug)} {per_token[0]!r} {per_token[1]!r} {per_token[2]!r}")
        elif prices is not None:
            i, o, c = prices.per_token
            lines.append(f"price {encode_name(provider.slug)} {i!r} {o!r} {c!r}")
    return lines


def governance_metadata(config: Config, catalog: Catalog | None = None) -> dict[str, str]:
    """The virtual host's `switchyard.governance` metadata: the settings and their version."""
    text = settings_text(config, catalog)
    return {"version": hashlib.sha256(text.encode()).hexdigest()[:16], "config": text}


def fast_route_clients(config: Config, name: str, decision: Decision) -> list[str] | None:
    """The client keys that may take a fast route (a model name served by Envoy alone); None:
    every key (no check). A key that may not is handed to the filter, which answers its 403."""
    access = ModelAccess(config)
    keys = config.gateway.client_keys
    allowed = [k.name for k in keys if access.allowed(k.name) is None
               or permitted(config, access.allowed(k.name), name, decision)]
    return None if len(allowed) == len(keys) else allowed
