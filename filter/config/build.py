"""Building the runtime configuration from a checked file: the rules that span several keys.

`parse_config(raw, file, env)` validates the parsed YAML against the schema, then resolves what
depends on more than one key — duplicate models, default providers, alias targets and cycles,
failover chains, routes and the models that serve them, client keys — into the frozen objects of
`filter/config/model.py`. Plano's two formats (v0.3: routes under providers, object listeners;
v0.4: top-level ranked routes, list listeners) both land in the same objects. Pure apart from
reading `env`.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any, Mapping
from urllib.parse import urlsplit

from pydantic import ValidationError

from filter.config import schema as s
from filter.config.errors import ConfigError, fail, from_validation_error
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
from filter.providers import CATALOGUE, DEFAULT_ANTHROPIC_VERSION, DEFAULT_AZURE_API_VERSION, Interface
from router_model.engine import Route

# Plano's provider_interface values: Claude speaks Anthropic's API, the others OpenAI's.
PLANO_INTERFACES = {
    "claude": Interface.ANTHROPIC, "plano": Interface.OPENAI, "deepseek": Interface.OPENAI,
    "groq": Interface.OPENAI, "mistral": Interface.OPENAI, "xiaomi": Interface.OPENAI,
    "gemini": Interface.OPENAI, "chatgpt": Interface.OPENAI, "digitalocean": Interface.OPENAI,
    "vercel": Interface.OPENAI, "openrouter": Interface.OPENAI, "moonshotai": Interface.OPENAI,
}
DEFAULT_ROUTER_MODELS = {"arch-router": "Arch-Router", "plano-orchestrator": "Plano-Orchestrator"}
_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?(?:-[A-Za-z0-9.]+)?$")


def cluster_name(slug: str) -> str:
    """Envoy cluster names are free-form, but a tidy one reads better in stats."""
    return "provider_" + re.sub(r"[^A-Za-z0-9_.-]", "_", slug)


def upstream_from_url(url: str, default_prefix: str) -> Upstream:
    """`scheme://host[:port][/path]` as Plano reads it: no path → the provider's default prefix;
    a path → that path replaces it. Raises ValueError naming what is wrong."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not hold credentials (user:password@): set access_key instead")
    if parts.query or parts.fragment or url.rstrip().endswith(("?", "#")):
        raise ValueError(f"{url!r} has a query or fragment, which a base URL cannot carry")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{url!r} has an invalid port") from None
    if port == 0:
        raise ValueError(f"{url!r} has port 0")
    port = port or (443 if parts.scheme == "https" else 80)
    path = parts.path.rstrip("/")
    return Upstream(parts.scheme, parts.hostname, port, path if path else default_prefix)


def default_prefix(prefix: str, interface: Interface) -> str:
    """The path a provider's endpoints live under when `base_url` names only a host."""
    known = CATALOGUE.get(prefix)
    if interface is Interface.AZURE_OPENAI:
        return "/openai/deployments"  # then /{deployment}/chat/completions, as Plano builds it
    if known is not None and known.base_url is not None and known.interface is interface:
        return urlsplit(known.base_url).path.rstrip("/")
    if known is not None and known.default_prefix is not None and known.interface is interface:
        return known.default_prefix
    return "/v1"


def parse_version(text: str | None) -> tuple[int, int]:
    if text is None:
        return (0, 3)
    match = _VERSION.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a configuration version (Plano's v0.1 … v0.4.0)")
    return int(match.group(1)), int(match.group(2))


class _Builder:
    def __init__(self, file: str, raw: s.ConfigFile, env: Mapping[str, str]):
        self.file = file
        self.raw = raw
        self.env = env
        self.warnings: list[str] = []

    def fail(self, path: str, message: str) -> ConfigError:
        return fail(self.file, path, message)

    def ignored(self, path: str, what: str) -> None:
        self.warnings.append(f"{self.file}: {path}: ignored — {what}, which Switchyard does not implement")

    # ------------------------------------------------------------------ the whole file

    def build(self) -> Config:
        raw = self.raw
        try:
            version = parse_version(raw.version)
        except ValueError as exc:
            raise self.fail("version", str(exc)) from None
        for key, what in s.IGNORED_TOP_LEVEL.items():
            if getattr(raw, key) is not None and key != "overrides":
                self.ignored(key, what)

        providers_key, entries = self._provider_entries()
        providers = tuple(self._provider(entry, f"{providers_key}[{i}]") for i, entry in enumerate(entries))
        by_slug: dict[str, Provider] = {}
        id_count: dict[str, int] = {}
        for i, p in enumerate(providers):
            if p.slug in by_slug:
                raise self.fail(f"{providers_key}[{i}].model", f"duplicate model {p.slug!r}")
            by_slug[p.slug] = p
            if not p.wildcard:
                id_count[p.model_id] = id_count.get(p.model_id, 0) + 1
        # Rule 2 of the precedence: a bare model id resolves only when exactly one provider has it.
        by_model_id = {p.model_id: p for p in providers if not p.wildcard and id_count[p.model_id] == 1}
        ambiguous = {m for m, n in id_count.items() if n > 1}
        wildcards = {p.provider: p for p in providers if p.wildcard}

        defaults = [i for i, p in enumerate(providers) if p.default]
        if len(defaults) > 1:
            raise self.fail(f"{providers_key}[{defaults[1]}].default",
                            f"two providers are default: true ({providers[defaults[0]].slug} and "
                            f"{providers[defaults[1]].slug})")
        for i, p in enumerate(providers):
            known = CATALOGUE.get(p.provider)
            if known is not None and known.needs_key and p.access_key is None and p.interface is not Interface.ECHO \
                    and not p.passthrough_auth:
                raise self.fail(f"{providers_key}[{i}].access_key", f"is required for provider {p.provider!r}")

        aliases, alias_fallbacks = self._aliases(by_slug, by_model_id, ambiguous)
        lookup = {**by_model_id, **aliases, **by_slug}
        pools = self._route_pools(providers_key, entries, providers, lookup, version)
        if pools and not defaults:
            raise self.fail(providers_key, "routing_preferences are configured but no provider is default: true "
                                           "(the default serves requests that no route fits)")

        provider_chains = {
            p.slug: self._chain(f"{providers_key}[{i}].fallbacks", p, entries[i].fallbacks, lookup)
            for i, p in enumerate(providers) if entries[i].fallbacks
        }
        alias_chains = {
            name: self._chain(f"model_aliases.{name}.fallbacks", aliases[name], fallbacks, lookup)
            for name, fallbacks in alias_fallbacks.items() if fallbacks
        }
        # An alias without fallbacks of its own fails over like its target.
        for name, provider in aliases.items():
            if name not in alias_chains and provider.slug in provider_chains:
                alias_chains[name] = provider_chains[provider.slug]

        routing, store = self._routing(providers)
        gateway = self._gateway(store, lookup, pools)
        listener = self._listener()
        _check_ports(self, listener, gateway)
        forwarding = [i for i, p in enumerate(providers) if p.passthrough_auth]
        if forwarding and gateway.client_keys:
            raise self.fail(f"{providers_key}[{forwarding[0]}].passthrough_auth",
                            "cannot be used with gateway.client_keys: the client's one credential would be both "
                            "its key to this gateway and the key sent to the provider")
        return Config(
            path=self.file,
            listener=listener,
            providers=providers,
            aliases=aliases,
            routing=routing,
            gateway=gateway,
            by_slug=by_slug,
            by_model_id=by_model_id,
            route_owner={name: pool.order[0] for name, pool in pools.items()},
            routes=tuple(pool.route for pool in pools.values()),
            route_pools=pools,
            pool_chains=self._pool_chains(pools),
            failover=self._failover(),
            provider_chains=provider_chains,
            alias_chains=alias_chains,
            wildcards=wildcards,
            version=f"v{version[0]}.{version[1]}.0",
            warnings=tuple(self.warnings),
        )

    # ------------------------------------------------------------------ providers

    def _provider_entries(self) -> tuple[str, list[s.ProviderEntry]]:
        raw = self.raw
        if raw.model_providers is not None and raw.llm_providers is not None:
            raise self.fail("llm_providers", "give the providers once: model_providers (Plano v0.4) or "
                                             "llm_providers (older files), not both")
        key = "model_providers" if raw.model_providers is not None else "llm_providers"
        entries = raw.model_providers if raw.model_providers is not None else raw.llm_providers
        if not entries:
            raise self.fail(key, "at least one provider is required")
        return key, entries

    def _provider(self, entry: s.ProviderEntry, path: str) -> Provider:
        slug = entry.model
        prefix, sep, model_id = slug.partition("/")
        if not sep or not prefix or not model_id:
            raise self.fail(f"{path}.model", f"{slug!r} must be provider/model-id")
        wildcard = model_id == "*"
        if "*" in model_id and not wildcard:
            raise self.fail(f"{path}.model", f"{slug!r}: a wildcard entry is provider/* (any model of that provider)")
        known = CATALOGUE.get(prefix)
        interface = self._interface(entry, path, known)

        upstream = None
        if entry.base_url is not None:
            try:
                upstream = upstream_from_url(entry.base_url, default_prefix(prefix, interface))
            except ValueError as exc:
                raise self.fail(f"{path}.base_url", str(exc)) from None
        elif interface is not Interface.ECHO:
            if known is None:
                raise self.fail(f"{path}.model", f"unknown provider {prefix!r}: set base_url for an OpenAI-compatible "
                                                 f"server (known providers: {', '.join(sorted(CATALOGUE))})")
            if known.base_url is None:
                raise self.fail(f"{path}.base_url", f"is required for provider {prefix!r}")
            upstream = upstream_from_url(known.base_url, "")
        if entry.http_host is not None:
            if upstream is None:
                raise self.fail(f"{path}.http_host", "the echo provider has no upstream")
            upstream = dataclasses.replace(upstream, host_header=entry.http_host)

        passthrough = bool(entry.passthrough_auth) or (
            known is not None and known.passthrough_without_key and entry.access_key is None
            and entry.passthrough_auth is None)
        if passthrough and entry.access_key is not None:
            self.warnings.append(f"{self.file}: {path}.access_key: ignored — passthrough_auth forwards the client's "
                                 "own credential instead")
        headers = self._headers(entry, path, known)

        routes = tuple(_route(r) for r in entry.routing_preferences or ())
        return Provider(
            slug=slug,
            provider=prefix,
            model_id=model_id,
            interface=interface,
            upstream=upstream,
            access_key=None if passthrough else entry.access_key,
            default=bool(entry.default),
            routes=routes,
            cluster=cluster_name(slug),
            azure_api_version=entry.api_version or DEFAULT_AZURE_API_VERSION,
            anthropic_version=entry.anthropic_version or DEFAULT_ANTHROPIC_VERSION,
            max_tokens=entry.max_tokens or 4096,
            name=entry.name,
            limits=_limits(entry.limits),
            prices=Prices(entry.prices.input, entry.prices.output, entry.prices.cached_input) if entry.prices else None,
            model_info=ModelInfo(entry.model_info.context_window, entry.model_info.max_output_tokens,
                                 tuple(entry.model_info.unsupported_params or ())) if entry.model_info else None,
            wildcard=wildcard,
            passthrough_auth=passthrough,
            headers=headers,
        )

    def _headers(self, entry: s.ProviderEntry, path: str, known) -> tuple[tuple[str, Secret], ...]:
        """The entry's `headers`, after the provider's own defaults it does not set; a default
        read from an unset $ENV is left out."""
        own = dict(entry.headers or {})
        for name, value in (known.headers if known is not None else ()):
            if name in own:
                continue
            if value.startswith("$"):
                if not self.env.get(value[1:]):
                    continue
                own[name] = Secret(self.env[value[1:]], value)
            else:
                own[name] = Secret(value, "literal")
        return tuple(own.items())

    def _interface(self, entry: s.ProviderEntry, path: str, known) -> Interface:
        if entry.provider_interface is None:
            return known.interface if known else Interface.OPENAI
        name = entry.provider_interface
        ours = {i.value: i for i in Interface}
        if name in ours:
            return ours[name]
        if name in PLANO_INTERFACES:
            return PLANO_INTERFACES[name]
        raise self.fail(f"{path}.provider_interface", f"{name!r} is not one of "
                                                      f"{', '.join([*ours, *sorted(PLANO_INTERFACES)])}")

    # ------------------------------------------------------------------ aliases, chains, routes

    def _aliases(self, by_slug, by_model_id, ambiguous) -> tuple[dict[str, Provider], dict[str, list[str] | None]]:
        raw = self.raw.model_aliases or {}
        targets = {name: entry.target for name, entry in raw.items()}
        resolved: dict[str, Provider] = {}
        for name in targets:
            if name in by_slug:
                raise self.fail(f"model_aliases.{name}", "an alias may not shadow a configured provider/model")
            chain = [name]
            target = targets[name]
            # Aliases may point at aliases; follow the chain and refuse loops.
            while target in targets and target not in by_slug:
                if target in chain:
                    raise self.fail(f"model_aliases.{name}.target", f"alias cycle: {' -> '.join(chain + [target])}")
                chain.append(target)
                target = targets[target]
            provider = by_slug.get(target) or by_model_id.get(target)
            if provider is None:
                why = (f"{target!r} is the model id of several providers: use provider/model" if target in ambiguous
                       else f"{target!r} matches no configured provider (known: {', '.join(by_slug)})")
                raise self.fail(f"model_aliases.{name}.target", why)
            resolved[name] = provider
            if name in by_model_id:
                # Rule 2 (a bare model id) comes before rule 3 (an alias): say so rather than
                # keep an alias that can never apply.
                self.warnings.append(f"{self.file}: model_aliases.{name}: never used — {name!r} is the model id of "
                                     f"{by_model_id[name].slug}, which a request naming it gets")
        return resolved, {name: entry.fallbacks for name, entry in raw.items()}

    def _chain(self, path: str, primary: Provider, names: list[str], lookup: Mapping[str, Provider]) -> Chain:
        members = [primary]
        for i, name in enumerate(names):
            provider = lookup.get(name)
            if provider is None:
                raise self.fail(f"{path}[{i}]", f"{name!r} matches no configured provider or alias")
            if provider in members:
                raise self.fail(f"{path}[{i}]", f"{provider.slug} is already in this failover chain")
            members.append(provider)
        return self._check_chain(path, members)

    def _check_chain(self, path: str, members: list[Provider]) -> Chain:
        for provider in members:
            if provider.passthrough_auth:
                raise self.fail(path, f"{provider.slug} forwards the client's credential (passthrough_auth) and "
                                      "cannot be part of a failover chain, whose attempts must not carry it")
            if provider.upstream is None:
                raise self.fail(path, f"{provider.slug} answers inside the gateway and cannot be part of a failover chain")
            if provider.wildcard:
                raise self.fail(path, f"{provider.slug} is a wildcard entry and cannot be part of a failover chain")
        name = "failover_" + "__".join(cluster_name(p.slug).removeprefix("provider_") for p in members)
        return Chain(name, tuple(members))

    def _route_pools(self, providers_key: str, entries: list[s.ProviderEntry], providers: tuple[Provider, ...],
                     lookup: Mapping[str, Provider], version: tuple[int, int]) -> dict[str, RoutePool]:
        pools: dict[str, RoutePool] = {}
        where: dict[str, str] = {}
        for i, p in enumerate(providers):
            for j, route in enumerate(p.routes):
                path = f"{providers_key}[{i}].routing_preferences[{j}]"
                if p.wildcard:
                    raise self.fail(path, f"{p.slug} is a wildcard entry: a route needs a model")
                known = pools.get(route.name)
                if known is None:
                    pools[route.name] = RoutePool(route, (p,))
                    where[route.name] = f"{path}.name"
                    continue
                # Plano merges a route named under several providers into one pool, in file order
                # (its v0.3 → v0.4 migration); the first description is the route's.
                if route.description != known.route.description:
                    self.warnings.append(f"{self.file}: {path}.description: route {route.name!r} is also described "
                                         f"at {where[route.name]}; the first description is used")
                pools[route.name] = RoutePool(known.route, (*known.models, p))
        top = self.raw.routing_preferences
        if top is not None and version < (0, 4):
            raise self.fail("routing_preferences", f"top-level routing_preferences need version: v0.4.0 or later "
                                                   f"(this file says {self.raw.version or 'nothing, read as v0.3.0'}); "
                                                   "set version: v0.4.0, or move each route under its provider")
        for i, entry in enumerate(top or ()):
            path = f"routing_preferences[{i}]"
            if entry.name in pools:
                raise self.fail(f"{path}.name", f"route {entry.name!r} is already defined at {where[entry.name]}")
            models: list[Provider] = []
            for j, name in enumerate(entry.models):
                provider = lookup.get(name)
                if provider is None:
                    raise self.fail(f"{path}.models[{j}]", f"{name!r} matches no configured provider or alias")
                if provider in models:
                    raise self.fail(f"{path}.models[{j}]", f"{provider.slug} is already in this route's models")
                if provider.wildcard:
                    raise self.fail(f"{path}.models[{j}]", f"{provider.slug} is a wildcard entry, not a model")
                models.append(provider)
            prefer = entry.selection_policy.prefer if entry.selection_policy else "none"
            pools[entry.name] = RoutePool(_route(entry), tuple(models), prefer)  # type: ignore[arg-type]
            where[entry.name] = f"{path}.name"
        return {name: self._ranked(pool, where[name]) for name, pool in pools.items()}

    def _ranked(self, pool: RoutePool, path: str) -> RoutePool:
        from filter import pools as ranking  # reads the model table, which reads this package

        if len(pool.models) > 1:
            self._check_chain(path.removesuffix(".name"), list(pool.models))
        ranked = ranking.static_order(pool.models, pool.prefer)
        if pool.prefer == "cheapest":
            unpriced = [p.slug for p in pool.models if ranking.price_per_token(p) is None]
            if unpriced:
                self.warnings.append(f"{self.file}: {path.removesuffix('.name')}.selection_policy: no price for "
                                     f"{', '.join(unpriced)} in the model table (set the entry's prices); "
                                     "ranked last")
        return RoutePool(pool.route, pool.models, pool.prefer, ranked)

    def _pool_chains(self, pools: Mapping[str, RoutePool]) -> dict[tuple[str, ...], Chain]:
        from filter import pools as ranking

        chains: dict[tuple[str, ...], Chain] = {}
        for name, pool in pools.items():
            for order in ranking.renderable_orders(pool):
                key = ranking.slugs(order)
                if key not in chains:
                    chains[key] = self._check_chain(f"routing_preferences.{name}", list(order))
        return chains

    # ------------------------------------------------------------------ sections

    def _listener(self) -> Listener:
        raw = self.raw.listeners
        d = Listener()
        if raw is None:
            return d
        if isinstance(raw, s.LegacyListeners):
            if raw.ingress_traffic is not None:
                self.ignored("listeners.ingress_traffic", "Plano's prompt gateway listener")
            section = raw.egress_traffic or s.LegacyListener()
            return Listener(
                address=section.address or d.address,
                port=section.port if section.port is not None else d.port,
                timeout_s=section.timeout or d.timeout_s,
                message_format=section.message_format or d.message_format,
            )
        model = [(i, item) for i, item in enumerate(raw) if item.type == "model"]
        for i, item in enumerate(raw):
            if item.type != "model":
                self.ignored(f"listeners[{i}]", f"a listener of type {item.type}")
        if len(model) > 1:
            raise self.fail(f"listeners[{model[1][0]}]", "Switchyard serves one listener of type model")
        if not model:
            return d
        i, item = model[0]
        for key in ("router", "agents", "input_filters", "output_filters"):
            if getattr(item, key) is not None:
                self.ignored(f"listeners[{i}].{key}", f"Plano's listener setting {key}")
        if item.max_retries is not None:
            self.ignored(f"listeners[{i}].max_retries", "Plano's per-listener retries (Switchyard's are failover.retries)")
        return Listener(
            address=item.address or d.address,
            port=item.port if item.port is not None else d.port,
            timeout_s=item.timeout or d.timeout_s,
        )

    def _router_override(self, providers: tuple[Provider, ...], section: s.RoutingSection):
        """Plano's `overrides`: `llm_routing_model` naming a configured provider entry is the router
        (Plano sends its router calls through its own gateway to that entry, with the
        Plano-Orchestrator protocol); `orchestrator_model_context_length` is that protocol's token
        budget. Returns (endpoint, model, credential, budget) or None; other overrides are reported
        as ignored."""
        overrides = self.raw.overrides
        if overrides is None:
            return None
        used = {"orchestrator_model_context_length"}
        chosen = None
        name = overrides.llm_routing_model
        if isinstance(name, str) and name.strip():
            model_id = name.split("/", 1)[1] if "/" in name else name
            entry = next((p for p in providers if p.model_id == model_id and not p.wildcard), None)
            if entry is not None and section.engine is None and section.endpoint is None:
                if entry.upstream is None or entry.interface is not Interface.OPENAI:
                    raise self.fail("overrides.llm_routing_model", f"{entry.slug} must be an OpenAI-compatible server "
                                                                   "to serve as the router")
                up = entry.upstream
                endpoint = f"{up.scheme}://{_url_host(up)}{up.path_prefix}"
                credential = ("authorization", Secret(f"Bearer {entry.access_key.reveal()}", entry.access_key.source)) \
                    if entry.access_key is not None else None
                chosen = (endpoint, entry.model_id, credential)
                used.add("llm_routing_model")
            elif entry is not None:
                self.warnings.append(f"{self.file}: overrides.llm_routing_model: ignored — routing.engine or "
                                     "routing.endpoint is set, and routing: wins")
                used.add("llm_routing_model")
            else:
                self.warnings.append(f"{self.file}: overrides.llm_routing_model: ignored — {name!r} names no "
                                     "configured provider entry (Plano would call its hosted router; Switchyard "
                                     "calls none: add an entry for the router or set routing.engine: "
                                     "plano-orchestrator and routing.endpoint)")
                used.add("llm_routing_model")
        for key in s.PlanoOverrides.model_fields:
            if key not in used and getattr(overrides, key) is not None:
                self.ignored(f"overrides.{key}", "Plano's override")
        budget = overrides.orchestrator_model_context_length
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or not 256 <= budget <= 1_000_000):
            raise self.fail("overrides.orchestrator_model_context_length", f"expected tokens between 256 and "
                                                                           f"1000000, got {budget!r}")
        if chosen is None and budget is None:
            return None
        return (*(chosen or (None, None, None)), budget)

    def _routing(self, providers: tuple[Provider, ...]) -> tuple[Routing, s.StoreEntry | None]:
        section = self.raw.routing or s.RoutingSection()
        d = Routing()
        engine = section.engine or d.engine
        endpoint = None
        override = self._router_override(providers, section)
        router_model = None
        credential = None
        if override is not None and override[0] is not None:
            engine, (endpoint, router_model, credential) = "plano-orchestrator", override[:3]
        if section.endpoint is not None:
            endpoint = section.endpoint
            self._check_url("routing.endpoint", endpoint)
        if engine in DEFAULT_ROUTER_MODELS and endpoint is None:
            raise self.fail("routing.endpoint", f"is required when routing.engine is {engine}")
        if section.route_on_user_only is not None and section.turn_pinning is not None \
                and section.route_on_user_only != section.turn_pinning:
            raise self.fail("routing.route_on_user_only", "contradicts routing.turn_pinning (the same setting)")
        if section.session_ttl is not None and section.session_ttl_seconds is not None:
            raise self.fail("routing.session_ttl_seconds", "give one of session_ttl and session_ttl_seconds")
        if section.routing_budget is not None:
            self.ignored("routing.routing_budget", "Plano's routing budget")
        if section.llm_provider is not None:
            self.ignored("routing.llm_provider", "Plano's router provider (Switchyard's is routing.endpoint)")
        pinning = section.turn_pinning if section.turn_pinning is not None else section.route_on_user_only
        ttl = section.session_ttl or (float(section.session_ttl_seconds) if section.session_ttl_seconds else d.session_ttl_s)
        store = None
        tenant_header = None
        cache = section.session_cache
        if cache is not None:
            if cache.type == "redis":
                if cache.url is None:
                    raise self.fail("routing.session_cache.url", "is required when session_cache.type is redis")
                store = s.StoreEntry(url=cache.url)
            elif cache.url is not None:
                raise self.fail("routing.session_cache.url", "is only read when session_cache.type is redis")
            tenant_header = cache.tenant_header.lower() if cache.tenant_header else None
        routing = Routing(
            engine=engine,
            endpoint=endpoint,
            model=section.model or router_model or DEFAULT_ROUTER_MODELS.get(engine, d.model),
            timeout_s=section.timeout or d.timeout_s,
            routed_models=tuple(section.routed_models) if section.routed_models is not None else d.routed_models,
            unknown_model=section.unknown_model or d.unknown_model,
            cache_size=section.cache_size if section.cache_size is not None else d.cache_size,
            min_confidence=section.min_confidence,
            turn_pinning=pinning if pinning is not None else d.turn_pinning,
            harness_envelopes=tuple(section.harness_envelopes) if section.harness_envelopes is not None
            else d.harness_envelopes,
            session_ttl_s=ttl,
            session_max_entries=section.session_max_entries or d.session_max_entries,
            tenant_header=tenant_header,
            endpoint_credential=credential,
            token_budget=override[3] if override is not None else None,
        )
        for i, tag in enumerate(routing.harness_envelopes):
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_.:-]*", tag):
                raise self.fail(f"routing.harness_envelopes[{i}]", f"{tag!r} is not a tag name (e.g. system-reminder)")
        return routing, store

    def _gateway(self, plano_store: s.StoreEntry | None, lookup: Mapping[str, Provider],
                 pools: Mapping[str, RoutePool]) -> Gateway:
        section = self.raw.gateway or s.GatewaySection()
        d = Gateway()
        fast_path = section.fast_path if section.fast_path is not None else d.fast_path
        client_keys = self._client_keys(section.client_keys, lookup, pools)
        if section.store is not None and plano_store is not None:
            raise self.fail("routing.session_cache", "the store is set twice: keep gateway.store")
        limits = section.limits or s.GatewayLimits()
        tracing = section.tracing or s.TracingEntry()
        if tracing.otlp_endpoint is not None:
            self._check_url("gateway.tracing.otlp_endpoint", tracing.otlp_endpoint)
        return Gateway(
            admin_port=_given(section.admin_port, d.admin_port),
            filter_port=_given(section.filter_port, d.filter_port),
            workers=section.workers or d.workers,
            metrics_port=_given(section.metrics_port, d.metrics_port),
            metrics_address=section.metrics_address or d.metrics_address,
            max_request_bytes=section.max_request_bytes or d.max_request_bytes,
            max_response_bytes=section.max_response_bytes or d.max_response_bytes,
            log_level=section.log_level or d.log_level,
            usage_metrics=_given(section.usage_metrics, d.usage_metrics),
            fast_path=fast_path,
            client_keys=client_keys,
            default_limits=_limits(limits.default),
            limits_fail_closed=bool(limits.fail_closed),
            store=self._store(section.store or plano_store, "gateway.store" if section.store else "routing.session_cache"),
            otlp_endpoint=tracing.otlp_endpoint,
            service_name=tracing.service_name or d.service_name,
            max_connections=section.max_connections or d.max_connections,
            request_headers_timeout_s=section.request_headers_timeout or d.request_headers_timeout_s,
            idle_timeout_s=section.idle_timeout or d.idle_timeout_s,
            socket_dir=section.socket_dir,
        )

    def _client_keys(self, raw: Any, lookup: Mapping[str, Provider], pools: Mapping[str, RoutePool]) -> tuple[ClientKey, ...]:
        """A list (plain keys and `{name, key, …}` entries), or one string; a `$ENV` plain key may
        hold several keys separated by commas. Fail closed: a setting that yields no key at all
        is an error, never an open gateway."""
        if raw is None:
            return ()
        items = raw if isinstance(raw, list) else [raw]
        base = "gateway.client_keys"
        if not items:
            raise self.fail(base, "is an empty list: remove the setting to run without client keys")
        keys: list[ClientKey] = []
        plain = 0
        for i, item in enumerate(items):
            path = f"{base}[{i}]" if isinstance(raw, list) else base
            if isinstance(item, Secret):
                parts = [k.strip() for k in item.reveal().split(",")]
                if not all(parts):
                    raise self.fail(path, f"{item.source} holds an empty key (keys are separated by single commas)")
                for part in parts:
                    plain += 1
                    keys.append(ClientKey(name=f"key-{plain}", key=Secret(part, item.source)))
                continue
            models = None
            if item.models is not None:
                known = {*lookup, *pools, *self._routed_names()}
                for j, name in enumerate(item.models):
                    if name not in known:
                        raise self.fail(f"{path}.models[{j}]", f"{name!r} is not a configured model, alias or route")
                models = tuple(item.models)
            budget = Budget(item.budget.usd, item.budget.period or "month") if item.budget else None
            keys.append(ClientKey(item.name, item.key, _limits(item.limits), budget, models))
        names: set[str] = set()
        values: set[str] = set()
        for i, key in enumerate(keys):
            if key.name in names:
                raise self.fail(base, f"two keys are named {key.name!r}")
            if key.key.reveal() in values:
                raise self.fail(base, f"the key named {key.name!r} is given twice")
            names.add(key.name)
            values.add(key.key.reveal())
        return tuple(keys)

    def _routed_names(self) -> tuple[str, ...]:
        routing = self.raw.routing
        return tuple(routing.routed_models) if routing and routing.routed_models is not None else Routing().routed_models

    def _store(self, raw: s.StoreEntry | None, path: str) -> StoreSettings:
        d = StoreSettings()
        if raw is None:
            return d
        if raw.url is not None:
            parts = urlsplit(raw.url)
            if parts.scheme not in ("redis", "rediss", "unix"):
                raise self.fail(f"{path}.url", f"{raw.url!r} is not a redis://, rediss:// or unix:// URL")
            if parts.scheme != "unix" and not parts.hostname:
                raise self.fail(f"{path}.url", f"{raw.url!r} has no host")
            if parts.scheme == "unix" and not parts.path:
                raise self.fail(f"{path}.url", f"{raw.url!r} has no socket path")
            if parts.password:
                raise self.fail(f"{path}.url", "must not hold a password: set gateway.store.password ($ENV)")
        return StoreSettings(url=raw.url, key_prefix=raw.key_prefix or d.key_prefix, password=raw.password)

    def _failover(self) -> Failover:
        section = self.raw.failover or s.FailoverSection()
        d = Failover()
        return Failover(
            retries=_given(section.retries, d.retries),
            first_byte_timeout_s=section.first_byte_timeout or d.first_byte_timeout_s,
            cooldown_s=section.cooldown or d.cooldown_s,
            failures_before_cooldown=section.failures_before_cooldown or d.failures_before_cooldown,
        )

    def _check_url(self, path: str, url: str) -> None:
        try:
            upstream_from_url(url, "")
        except ValueError as exc:
            raise self.fail(path, str(exc)) from None


def _url_host(up: Upstream) -> str:
    host = f"[{up.host}]" if ":" in up.host else up.host
    return host if up.port == (443 if up.tls else 80) else f"{host}:{up.port}"


def _given(value, default):
    return default if value is None else value


def _route(entry: s.InlineRoute | s.TopRoute) -> Route:
    return Route(entry.name, entry.description, tuple(entry.examples or ()))


def _limits(entry: s.LimitsEntry | None) -> RateLimits | None:
    if entry is None or (entry.rpm is None and entry.tpm is None):
        return None
    return RateLimits(entry.rpm, entry.tpm)


def _check_ports(builder: _Builder, listener: Listener, gateway: Gateway) -> None:
    """Two of the gateway's own sockets on one port can never both bind (0: each its own)."""
    ports = [("listeners", listener.port), ("gateway.admin_port", gateway.admin_port),
             ("gateway.metrics_port", gateway.metrics_port)]
    seen: dict[int, str] = {}
    for path, port in ports:
        if port and port in seen:
            raise builder.fail(path, f"port {port} is also {seen[port]}'s")
        seen[port] = path


# --------------------------------------------------------------------------- entry point


def parse_config(raw: Any, file: str, env: Mapping[str, str] | None = None) -> Config:
    """Build the typed configuration from parsed YAML. Pure apart from reading `env`."""
    env = os.environ if env is None else env
    if not isinstance(raw, dict):
        raise fail(file, "", f"the configuration must be a YAML mapping, expected a mapping, got {s.type_name(raw)}")
    try:
        checked = s.ConfigFile.model_validate(raw, context={"env": env})
    except ValidationError as exc:
        raise from_validation_error(file, s.ConfigFile, exc) from None
    return _Builder(file, checked, env).build()
