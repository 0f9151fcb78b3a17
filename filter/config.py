"""Typed configuration: the Plano YAML format plus Switchyard's `routing:` and `gateway:` sections.

`load_config(path)` reads, checks and builds the whole configuration once at start-up. Every
problem is one `ConfigError` whose message names the file and the key path; nothing starts on a
bad file. The objects built here are frozen and shared read-only by every request.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

import yaml

from filter.providers import (
    CATALOGUE,
    DEFAULT_ANTHROPIC_VERSION,
    DEFAULT_AZURE_API_VERSION,
    Interface,
)
from router_model.engine import Route


class ConfigError(Exception):
    """A configuration problem, already worded for the user: `file: key.path: what is wrong`."""


class Secret:
    """A provider or client key. Its repr and str never show the value."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str):
        self._value = value
        self.source = source  # "$ENV_NAME" or "literal": safe to print

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.source})"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where a provider's requests go, split the way Envoy's cluster and route need it."""

    scheme: str  # "http" | "https"
    host: str
    port: int
    path_prefix: str  # "" or "/openai/v1" — no trailing slash

    @property
    def tls(self) -> bool:
        return self.scheme == "https"


@dataclass(frozen=True, slots=True)
class Provider:
    slug: str  # "openai/gpt-4o": what clients name and what x-switchyard-model shows
    provider: str  # "openai"
    model_id: str  # "gpt-4o": what the upstream is told
    interface: Interface
    upstream: Upstream | None  # None for the in-gateway echo provider
    access_key: Secret | None
    default: bool
    routes: tuple[Route, ...]
    cluster: str  # the Envoy cluster (and routing-header value) serving this entry
    azure_api_version: str
    anthropic_version: str
    max_tokens: int  # Anthropic requires max_tokens; used when a translated request has none


@dataclass(frozen=True, slots=True)
class Chain:
    """A failover chain: the primary model, then its fallbacks in order. Envoy serves it with an
    aggregate cluster whose retries walk the members; each attempt is rewritten for its member."""

    name: str  # the aggregate cluster (and routing-header value)
    members: tuple[Provider, ...]


@dataclass(frozen=True, slots=True)
class Failover:
    retries: int = 1  # further attempts on the same model before moving to the next one
    first_byte_timeout_s: float = 15.0  # an attempt with no response headers by then fails over
    cooldown_s: float = 30.0  # a model that keeps failing is skipped this long
    failures_before_cooldown: int = 3  # consecutive failures that start a cool-down
    retry_on_status: tuple[int, ...] = (429, 500, 502, 503, 504)

    @property
    def attempts_per_model(self) -> int:
        return self.retries + 1


@dataclass(frozen=True, slots=True)
class Listener:
    address: str = "0.0.0.0"
    port: int = 12000
    timeout_s: float = 30.0
    message_format: str = "openai"


@dataclass(frozen=True, slots=True)
class Routing:
    engine: str = "embedded"  # "embedded" | "arch-router" | "none" (routed requests → default)
    endpoint: str | None = None
    model: str = "Arch-Router"
    timeout_s: float = 1.0
    routed_models: tuple[str, ...] = ("auto",)
    unknown_model: str = "reject"  # "reject" | "route" | "default"
    cache_size: int = 1024


@dataclass(frozen=True, slots=True)
class Gateway:
    admin_port: int = 9901
    filter_port: int = 50051
    workers: int = 1
    metrics_port: int = 9090
    max_request_bytes: int = 16 * 1024 * 1024
    log_level: str = "info"
    # Stream Envoy's access log to the workers (batched, after the answer) for the metrics.
    usage_metrics: bool = True
    # Literal and alias requests that need nothing of Python are checked, rewritten and sent by
    # Envoy alone (filter/fast_path.py); everything else still goes through the filter.
    fast_path: bool = False
    # When set, every request must present one of these (Bearer or x-api-key), else 401.
    client_keys: tuple[Secret, ...] = ()
    # OTLP/HTTP traces endpoint (e.g. http://collector:4318/v1/traces), JSON encoding.
    otlp_endpoint: str | None = None
    service_name: str = "switchyard"


@dataclass(frozen=True)
class Config:
    path: str
    listener: Listener
    providers: tuple[Provider, ...]
    aliases: Mapping[str, Provider]  # alias name → the provider it finally resolves to
    routing: Routing
    gateway: Gateway
    # Lookup tables built once so that resolution is a dict hit per request.
    by_slug: Mapping[str, Provider] = field(repr=False, default_factory=dict)
    by_model_id: Mapping[str, Provider] = field(repr=False, default_factory=dict)
    route_owner: Mapping[str, Provider] = field(repr=False, default_factory=dict)
    routes: tuple[Route, ...] = ()  # every configured route, in file order
    failover: Failover = Failover()
    # Failover chains by the name the client used: a provider slug (its `fallbacks`) or an alias
    # (the alias's own `fallbacks`, else its target's).
    provider_chains: Mapping[str, Chain] = field(repr=False, default_factory=dict)
    alias_chains: Mapping[str, Chain] = field(repr=False, default_factory=dict)

    @property
    def chains(self) -> list[Chain]:
        unique = {c.name: c for c in (*self.provider_chains.values(), *self.alias_chains.values())}
        return list(unique.values())

    @property
    def default_provider(self) -> Provider | None:
        return next((p for p in self.providers if p.default), None)

    @property
    def model_names(self) -> list[str]:
        """Every name a client may send: provider slugs and aliases."""
        return [p.slug for p in self.providers] + list(self.aliases)


# --------------------------------------------------------------------------- reading helpers


class _Reader:
    """Walks the parsed YAML with the key path at hand, so every error can name it."""

    def __init__(self, file: str):
        self.file = file

    def fail(self, path: str, message: str) -> ConfigError:
        where = f"{path}: " if path else ""
        return ConfigError(f"{self.file}: {where}{message}")

    def mapping(self, value: Any, path: str, allowed: set[str]) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a mapping, got {_type_name(value)}")
        for key in value:
            if key not in allowed:
                child = f"{path}.{key}" if path else str(key)
                raise self.fail(child, f"unknown key (allowed: {', '.join(sorted(allowed))})")
        return value

    def typed(self, value: Any, path: str, kind: type | tuple[type, ...], what: str) -> Any:
        # bool is an int in Python; a YAML `true` must not pass as a port number.
        if isinstance(value, bool) and kind is not bool:
            raise self.fail(path, f"expected {what}, got a boolean")
        if not isinstance(value, kind):
            raise self.fail(path, f"expected {what}, got {_type_name(value)}")
        return value

    def string(self, value: Any, path: str) -> str:
        text = self.typed(value, path, str, "a string")
        if not text.strip():
            raise self.fail(path, "must not be empty")
        return text

    def port(self, value: Any, path: str) -> int:
        port = self.typed(value, path, int, "a port number")
        if not 0 < port < 65536:
            raise self.fail(path, f"port {port} is out of range 1-65535")
        return port

    def positive_int(self, value: Any, path: str) -> int:
        number = self.typed(value, path, int, "an integer")
        if number < 1:
            raise self.fail(path, f"must be at least 1, got {number}")
        return number

    def duration(self, value: Any, path: str) -> float:
        seconds = parse_duration(value)
        if seconds is None:
            raise self.fail(path, f"bad duration {value!r} (use e.g. 500ms, 1s, 1.5s, 2m)")
        return seconds

    def choice(self, value: Any, path: str, options: tuple[str, ...]) -> str:
        text = self.string(value, path)
        if text not in options:
            raise self.fail(path, f"{text!r} is not one of {', '.join(options)}")
        return text

    def secret(self, value: Any, path: str, env: Mapping[str, str]) -> Secret:
        text = self.string(value, path)
        if text.startswith("$"):
            name = text[1:].strip("{}")
            if name not in env or not env[name]:
                raise self.fail(path, f"environment variable ${name} is not set")
            return Secret(env[name], f"${name}")
        return Secret(text, "literal")


def _type_name(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: Any) -> float | None:
    """`500ms`, `1s`, `1.5s`, `2m`, or a bare number of seconds → seconds; None if unreadable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if value > 0 else None
    if not isinstance(value, str):
        return None
    match = _DURATION.match(value)
    if not match:
        return None
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    return seconds if seconds > 0 else None


def parse_upstream(url: str) -> Upstream | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    return Upstream(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))


def cluster_name(slug: str) -> str:
    """Envoy cluster names are free-form, but a tidy one reads better in stats."""
    return "provider_" + re.sub(r"[^A-Za-z0-9_.-]", "_", slug)


# --------------------------------------------------------------------------- sections

_TOP_KEYS = {"version", "listeners", "llm_providers", "model_aliases", "routing", "gateway", "failover"}
_FAILOVER_KEYS = {"retries", "first_byte_timeout", "cooldown", "failures_before_cooldown"}
_LISTENER_KEYS = {"address", "port", "timeout", "message_format"}
_PROVIDER_KEYS = {
    "model",
    "access_key",
    "default",
    "base_url",
    "provider_interface",
    "routing_preferences",
    "api_version",
    "anthropic_version",
    "max_tokens",
    "fallbacks",
}
_PREFERENCE_KEYS = {"name", "description"}
_ROUTING_KEYS = {"engine", "endpoint", "model", "timeout", "routed_models", "unknown_model", "cache_size"}
_GATEWAY_KEYS = {
    "admin_port", "filter_port", "workers", "metrics_port", "max_request_bytes", "log_level", "usage_metrics",
    "fast_path", "client_keys", "tracing",
}
_INTERFACES = tuple(i.value for i in Interface)


def _listener(r: _Reader, raw: Any) -> Listener:
    listeners = r.mapping(raw, "listeners", {"egress_traffic"})
    section = r.mapping(listeners.get("egress_traffic"), "listeners.egress_traffic", _LISTENER_KEYS)
    base = "listeners.egress_traffic"
    defaults = Listener()
    return Listener(
        address=r.string(section.get("address", defaults.address), f"{base}.address"),
        port=r.port(section.get("port", defaults.port), f"{base}.port"),
        timeout_s=r.duration(section.get("timeout", "30s"), f"{base}.timeout"),
        message_format=r.choice(
            section.get("message_format", defaults.message_format),
            f"{base}.message_format",
            ("openai", "anthropic"),
        ),
    )


def _provider(r: _Reader, raw: Any, path: str, env: Mapping[str, str]) -> Provider:
    entry = r.mapping(raw, path, _PROVIDER_KEYS)
    if "model" not in entry:
        raise r.fail(f"{path}.model", "is required (provider/model-id)")
    slug = r.string(entry["model"], f"{path}.model")
    prefix, sep, model_id = slug.partition("/")
    if not sep or not prefix or not model_id:
        raise r.fail(f"{path}.model", f"{slug!r} must be provider/model-id")

    known = CATALOGUE.get(prefix)
    if "provider_interface" in entry:
        interface = Interface(
            r.choice(entry["provider_interface"], f"{path}.provider_interface", _INTERFACES)
        )
    else:
        interface = known.interface if known else Interface.OPENAI

    upstream = None
    if "base_url" in entry:
        url = r.string(entry["base_url"], f"{path}.base_url")
        upstream = parse_upstream(url)
        if upstream is None:
            raise r.fail(f"{path}.base_url", f"{url!r} is not an http(s) URL with a host")
    elif interface is not Interface.ECHO:
        if known is None:
            raise r.fail(
                f"{path}.model",
                f"unknown provider {prefix!r}: set base_url for an OpenAI-compatible server "
                f"(known providers: {', '.join(sorted(CATALOGUE))})",
            )
        if known.base_url is None:
            raise r.fail(f"{path}.base_url", f"is required for provider {prefix!r}")
        upstream = parse_upstream(known.base_url)

    access_key = None
    if "access_key" in entry:
        access_key = r.secret(entry["access_key"], f"{path}.access_key", env)

    prefs = r.typed(entry.get("routing_preferences", []), f"{path}.routing_preferences", list, "a list")
    routes = []
    for j, pref in enumerate(prefs):
        where = f"{path}.routing_preferences[{j}]"
        pref = r.mapping(pref, where, _PREFERENCE_KEYS)
        routes.append(
            Route(
                name=r.string(pref.get("name"), f"{where}.name"),
                description=r.string(pref.get("description"), f"{where}.description"),
            )
        )

    return Provider(
        slug=slug,
        provider=prefix,
        model_id=model_id,
        interface=interface,
        upstream=upstream,
        access_key=access_key,
        default=r.typed(entry.get("default", False), f"{path}.default", bool, "true or false"),
        routes=tuple(routes),
        cluster=cluster_name(slug),
        azure_api_version=r.string(
            entry.get("api_version", DEFAULT_AZURE_API_VERSION), f"{path}.api_version"
        ),
        anthropic_version=r.string(
            entry.get("anthropic_version", DEFAULT_ANTHROPIC_VERSION), f"{path}.anthropic_version"
        ),
        max_tokens=r.positive_int(entry.get("max_tokens", 4096), f"{path}.max_tokens"),
    )


def _routing(r: _Reader, raw: Any) -> Routing:
    section = r.mapping(raw, "routing", _ROUTING_KEYS)
    d = Routing()
    engine = r.choice(section.get("engine", d.engine), "routing.engine", ("embedded", "arch-router", "none"))
    endpoint = None
    if "endpoint" in section:
        endpoint = r.string(section["endpoint"], "routing.endpoint")
        if parse_upstream(endpoint) is None:
            raise r.fail("routing.endpoint", f"{endpoint!r} is not an http(s) URL with a host")
    if engine == "arch-router" and endpoint is None:
        raise r.fail("routing.endpoint", "is required when routing.engine is arch-router")
    routed = r.typed(section.get("routed_models", list(d.routed_models)), "routing.routed_models", list, "a list")
    return Routing(
        engine=engine,
        endpoint=endpoint,
        model=r.string(section.get("model", d.model), "routing.model"),
        timeout_s=r.duration(section.get("timeout", "1s"), "routing.timeout"),
        routed_models=tuple(r.string(m, f"routing.routed_models[{i}]") for i, m in enumerate(routed)),
        unknown_model=r.choice(
            section.get("unknown_model", d.unknown_model),
            "routing.unknown_model",
            ("reject", "route", "default"),
        ),
        cache_size=r.typed(section.get("cache_size", d.cache_size), "routing.cache_size", int, "an integer"),
    )


def _client_keys(r: _Reader, raw: Any, env: Mapping[str, str]) -> tuple[Secret, ...]:
    """A list of keys, or one string; a `$ENV` value may hold several keys separated by commas."""
    items = raw if isinstance(raw, list) else [raw]
    keys: list[Secret] = []
    for i, item in enumerate(items):
        path = f"gateway.client_keys[{i}]" if isinstance(raw, list) else "gateway.client_keys"
        secret = r.secret(item, path, env)
        keys.extend(Secret(k.strip(), secret.source) for k in secret.reveal().split(",") if k.strip())
    return tuple(keys)


def _gateway(r: _Reader, raw: Any, env: Mapping[str, str]) -> Gateway:
    section = r.mapping(raw, "gateway", _GATEWAY_KEYS)
    d = Gateway()
    fast_path = r.typed(section.get("fast_path", d.fast_path), "gateway.fast_path", bool, "true or false")
    if fast_path and section.get("client_keys"):
        # Envoy alone cannot compare client keys in constant time without holding them in its config.
        raise r.fail("gateway.fast_path", "cannot be used with gateway.client_keys: fast requests never reach "
                                          "the filter, which is what checks client keys")
    return Gateway(
        admin_port=r.port(section.get("admin_port", d.admin_port), "gateway.admin_port"),
        filter_port=r.port(section.get("filter_port", d.filter_port), "gateway.filter_port"),
        workers=r.positive_int(section.get("workers", d.workers), "gateway.workers"),
        metrics_port=r.port(section.get("metrics_port", d.metrics_port), "gateway.metrics_port"),
        max_request_bytes=r.positive_int(
            section.get("max_request_bytes", d.max_request_bytes), "gateway.max_request_bytes"
        ),
        log_level=r.choice(
            section.get("log_level", d.log_level), "gateway.log_level", ("debug", "info", "warning", "error")
        ),
        usage_metrics=r.typed(section.get("usage_metrics", d.usage_metrics), "gateway.usage_metrics", bool, "true or false"),
        fast_path=fast_path,
        client_keys=_client_keys(r, section["client_keys"], env) if section.get("client_keys") else (),
        **_tracing(r, section.get("tracing")),
    )


def _tracing(r: _Reader, raw: Any) -> dict[str, Any]:
    section = r.mapping(raw, "gateway.tracing", {"otlp_endpoint", "service_name"})
    settings: dict[str, Any] = {}
    if "otlp_endpoint" in section:
        endpoint = r.string(section["otlp_endpoint"], "gateway.tracing.otlp_endpoint")
        if parse_upstream(endpoint) is None:
            raise r.fail("gateway.tracing.otlp_endpoint", f"{endpoint!r} is not an http(s) URL with a host")
        settings["otlp_endpoint"] = endpoint
    if "service_name" in section:
        settings["service_name"] = r.string(section["service_name"], "gateway.tracing.service_name")
    return settings


def _resolve_aliases(
    r: _Reader, raw: Any, by_slug: Mapping[str, Provider], by_model_id: Mapping[str, Provider], ambiguous: set[str]
) -> tuple[dict[str, Provider], dict[str, Any]]:
    """Aliases resolved to providers, and each alias's raw `fallbacks` (checked with the chains)."""
    aliases_raw = r.mapping(raw, "model_aliases", set(raw or {}))
    targets: dict[str, str] = {}
    fallbacks: dict[str, Any] = {}
    for name, spec in aliases_raw.items():
        path = f"model_aliases.{name}"
        if not isinstance(name, str):
            raise r.fail(path, "alias names must be strings")
        entry = r.mapping(spec, path, {"target", "fallbacks"})
        if "target" not in entry:
            raise r.fail(f"{path}.target", "is required")
        targets[name] = r.string(entry["target"], f"{path}.target")
        if "fallbacks" in entry:
            fallbacks[name] = entry["fallbacks"]

    resolved: dict[str, Provider] = {}
    for name in targets:
        chain = [name]
        target = targets[name]
        # Aliases may point at aliases; follow the chain and refuse loops.
        while target in targets and target not in by_slug:
            if target in chain:
                loop = " -> ".join(chain + [target])
                raise r.fail(f"model_aliases.{name}.target", f"alias cycle: {loop}")
            chain.append(target)
            target = targets[target]
        provider = by_slug.get(target) or by_model_id.get(target)
        if provider is None:
            why = (
                f"{target!r} is the model id of several providers: use provider/model"
                if target in ambiguous
                else f"{target!r} matches no configured provider (known: {', '.join(by_slug)})"
            )
            raise r.fail(f"model_aliases.{name}.target", why)
        resolved[name] = provider
    return resolved, fallbacks


def _failover(r: _Reader, raw: Any) -> Failover:
    section = r.mapping(raw, "failover", _FAILOVER_KEYS)
    d = Failover()
    retries = r.typed(section.get("retries", d.retries), "failover.retries", int, "an integer")
    if not 0 <= retries <= 5:
        raise r.fail("failover.retries", f"must be between 0 and 5, got {retries}")
    return Failover(
        retries=retries,
        first_byte_timeout_s=r.duration(section.get("first_byte_timeout", "15s"), "failover.first_byte_timeout"),
        cooldown_s=r.duration(section.get("cooldown", "30s"), "failover.cooldown"),
        failures_before_cooldown=r.positive_int(
            section.get("failures_before_cooldown", d.failures_before_cooldown), "failover.failures_before_cooldown"),
    )


def _chain(r: _Reader, path: str, primary: Provider, raw: Any, lookup: Mapping[str, Provider]) -> Chain:
    names = r.typed(raw, path, list, "a list of model names")
    members = [primary]
    for i, name in enumerate(names):
        where = f"{path}[{i}]"
        provider = lookup.get(r.string(name, where))
        if provider is None:
            raise r.fail(where, f"{name!r} matches no configured provider or alias")
        if provider in members:
            raise r.fail(where, f"{provider.slug} is already in this failover chain")
        members.append(provider)
    for provider in members:
        if provider.upstream is None:
            raise r.fail(path, f"{provider.slug} answers inside the gateway and cannot be part of a failover chain")
    name = "failover_" + "__".join(cluster_name(p.slug).removeprefix("provider_") for p in members)
    return Chain(name, tuple(members))


# --------------------------------------------------------------------------- entry point


def parse_config(raw: Any, file: str, env: Mapping[str, str] | None = None) -> Config:
    """Build the typed configuration from parsed YAML. Pure apart from reading `env`."""
    env = os.environ if env is None else env
    r = _Reader(file)
    top = r.mapping(raw, "", _TOP_KEYS)
    if not isinstance(raw, dict):
        raise r.fail("", "the configuration must be a YAML mapping")

    providers_raw = r.typed(top.get("llm_providers"), "llm_providers", list, "a list of providers")
    if not providers_raw:
        raise r.fail("llm_providers", "at least one provider is required")
    providers = tuple(
        _provider(r, entry, f"llm_providers[{i}]", env) for i, entry in enumerate(providers_raw)
    )

    by_slug: dict[str, Provider] = {}
    model_id_count: dict[str, int] = {}
    for i, p in enumerate(providers):
        if p.slug in by_slug:
            raise r.fail(f"llm_providers[{i}].model", f"duplicate model {p.slug!r}")
        by_slug[p.slug] = p
        model_id_count[p.model_id] = model_id_count.get(p.model_id, 0) + 1
    # Rule 2 of the precedence: a bare model id resolves only when exactly one provider has it.
    by_model_id = {p.model_id: p for p in providers if model_id_count[p.model_id] == 1}
    ambiguous = {m for m, n in model_id_count.items() if n > 1}

    defaults = [i for i, p in enumerate(providers) if p.default]
    if len(defaults) > 1:
        raise r.fail(
            f"llm_providers[{defaults[1]}].default",
            f"two providers are default: true ({providers[defaults[0]].slug} and {providers[defaults[1]].slug})",
        )

    route_owner: dict[str, Provider] = {}
    for i, p in enumerate(providers):
        for j, route in enumerate(p.routes):
            if route.name in route_owner:
                raise r.fail(
                    f"llm_providers[{i}].routing_preferences[{j}].name",
                    f"route {route.name!r} is already defined by {route_owner[route.name].slug}",
                )
            route_owner[route.name] = p
    if route_owner and not defaults:
        raise r.fail(
            "llm_providers",
            "routing_preferences are configured but no provider is default: true "
            "(the default serves requests that no route fits)",
        )

    for i, p in enumerate(providers):
        needs_key = CATALOGUE[p.provider].needs_key if p.provider in CATALOGUE else False
        if needs_key and p.access_key is None and p.interface is not Interface.ECHO:
            raise r.fail(f"llm_providers[{i}].access_key", f"is required for provider {p.provider!r}")

    aliases, alias_fallbacks = _resolve_aliases(r, top.get("model_aliases"), by_slug, by_model_id, ambiguous)
    for name in aliases:
        if name in by_slug:
            raise r.fail(f"model_aliases.{name}", "an alias may not shadow a configured provider/model")

    lookup = {**by_model_id, **aliases, **by_slug}
    provider_chains = {
        p.slug: _chain(r, f"llm_providers[{i}].fallbacks", p, providers_raw[i]["fallbacks"], lookup)
        for i, p in enumerate(providers)
        if providers_raw[i].get("fallbacks")
    }
    alias_chains = {
        name: _chain(r, f"model_aliases.{name}.fallbacks", aliases[name], raw_list, lookup)
        for name, raw_list in alias_fallbacks.items()
        if raw_list
    }
    # An alias without fallbacks of its own fails over like its target.
    for name, provider in aliases.items():
        if name not in alias_chains and provider.slug in provider_chains:
            alias_chains[name] = provider_chains[provider.slug]

    return Config(
        path=file,
        listener=_listener(r, top.get("listeners")),
        providers=providers,
        aliases=aliases,
        routing=_routing(r, top.get("routing")),
        gateway=_gateway(r, top.get("gateway"), env),
        by_slug=by_slug,
        by_model_id=by_model_id,
        route_owner=route_owner,
        routes=tuple(r for p in providers for r in p.routes),
        failover=_failover(r, top.get("failover")),
        provider_chains=provider_chains,
        alias_chains=alias_chains,
    )


def load_config(path: str | os.PathLike, env: Mapping[str, str] | None = None) -> Config:
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read: {exc.strerror or exc}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{file}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    return parse_config(raw, file, env)

