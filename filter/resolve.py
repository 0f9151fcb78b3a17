"""Which configured model serves a request: the precedence rules of the README, as pure functions.

1. `provider/model` of a configured entry → that entry            (literal)
2. the bare model id of exactly one entry → that entry            (literal)
3. a key of `model_aliases` → its target                          (alias)
4. `provider/<any id>` where `provider/*` is configured → that entry, the id passed through
                                                                   (literal)
5. no model, a routed name (`auto`), or — with unknown_model: route — any other name, while
   routes exist (configured or sent with the request) → the router decides; the route's pool
   in its order serves (`filter/pools.py`)                        (preference)
6. otherwise a `default: true` entry → it                          (default)
7. otherwise an error that lists the configured models and aliases
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Mapping
from enum import Enum

from filter import pools
from filter.config import Chain, Config, Provider, RoutePool
from filter.errors import GatewayError
from filter.inbound import RequestPreference
from router_model.engine import Route

# A model id a wildcard entry passes through: what providers' ids look like, bounded (it becomes
# the upstream's `model`, a response header and a metric label).
_WILDCARD_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+/-]{0,127}$")


class DecisionKind(str, Enum):
    LITERAL = "literal"
    ALIAS = "alias"
    PREFERENCE = "preference"
    DEFAULT = "default"
    FALLBACK = "fallback"


@dataclass(frozen=True, slots=True)
class Decision:
    provider: Provider
    kind: DecisionKind
    route: str | None = None
    chain: Chain | None = None  # set when the model has fallbacks: Envoy walks them on failure
    # The models that may serve, in order (the route's ranked pool); empty: the chain's members,
    # else the provider alone (see `candidates`).
    models: tuple[Provider, ...] = ()

    @property
    def candidates(self) -> tuple[Provider, ...]:
        if self.models:
            return self.models
        return self.chain.members if self.chain is not None else (self.provider,)


@dataclass(frozen=True, slots=True)
class RoutingPlan:
    """Rule 5: the router must pick among `routes`; `owners` maps each route to the model that
    serves it now (the first of its pool's order)."""

    routes: tuple[Route, ...]
    owners: Mapping[str, Provider]
    fallback: Provider  # serves "other", unknown routes and router failures
    chains: Mapping[str, Chain]  # failover chains by provider slug (a model's own fallbacks)
    # A route's pool: the models in the order that serves, and the chain Envoy walks for it.
    pools: Mapping[str, tuple[Provider, ...]] = field(default_factory=dict)
    route_chains: Mapping[str, Chain] = field(default_factory=dict)
    # How a request that no route fits is served: the default provider, or the model the request
    # named when it brought routes of its own.
    fallback_kind: DecisionKind | None = None
    fallback_chain: Chain | None = None

    def chain_for(self, route: str | None, provider: Provider) -> Chain | None:
        """The failover chain when `provider` serves `route` (None: the default's)."""
        chain = self.route_chains.get(route) if route else None
        if chain is not None and chain.members[0] is provider:
            return chain
        return self.chains.get(provider.slug)

    def decision(self, kind: DecisionKind, route: str | None, provider: Provider) -> Decision:
        if route is None and provider is self.fallback and self.fallback_kind is not None:
            return Decision(provider, self.fallback_kind, None, self.fallback_chain)
        models = self.pools.get(route, ()) if route else ()
        chain = self.chain_for(route, provider)
        # A pool of one, or a pinned model that is not the pool's first, needs no list of its own.
        ranked = models if len(models) > 1 and models[0] is provider else ()
        return Decision(provider, kind, route, chain, ranked)


def resolve(config: Config, model: str | None, preferences: tuple[RequestPreference, ...] | None,
            latency: Mapping[str, float] | None = None) -> Decision | RoutingPlan:
    """Apply the precedence rules. Raises GatewayError for rule 7 and bad per-request preferences.
    `latency` (seconds per model slug, as Envoy observed) orders the pools that prefer the fastest."""
    plan = _routing_plan(config, preferences, latency)  # validates per-request preferences even when unused

    named = _named(config, model) if model else None
    if named is not None:
        if preferences is not None and plan is not None:
            # A request that brings its own routes asks to be routed (Plano's routing API); the
            # model it names serves when no route fits.
            return dataclasses.replace(plan, fallback=named.provider, fallback_kind=named.kind,
                                       fallback_chain=named.chain)
        return named

    routed_name = not model or model in config.routing.routed_models
    unknown_policy = config.routing.unknown_model
    if routed_name or unknown_policy == "route":
        if plan is not None:
            return plan
        if config.default_provider is not None:
            return _default(config)
    elif unknown_policy == "default" and config.default_provider is not None:
        return _default(config)

    known = ", ".join(config.model_names)
    if not model:
        raise GatewayError(400, f"no model given and no default model is configured; known models: {known}", param="model")
    raise GatewayError(404, f"model {model!r} is not configured; known models and aliases: {known}", param="model", code="model_not_found")


def _named(config: Config, model: str) -> Decision | None:
    """Rules 1–4: the model a request names, or None."""
    provider = config.by_slug.get(model) or config.by_model_id.get(model)
    if provider is not None:
        return Decision(provider, DecisionKind.LITERAL, chain=config.provider_chains.get(provider.slug))
    provider = config.aliases.get(model)
    if provider is not None:
        return Decision(provider, DecisionKind.ALIAS, chain=config.alias_chains.get(model))
    provider = wildcard_provider(config, model)
    if provider is not None:
        return Decision(provider, DecisionKind.LITERAL)
    return None


def wildcard_provider(config: Config, model: str) -> Provider | None:
    """`openai/gpt-5` with an `openai/*` entry: that entry for the id `gpt-5` (a bad id is a 400)."""
    prefix, sep, model_id = model.partition("/")
    entry = config.wildcards.get(prefix) if sep else None
    if entry is None:
        return None
    if not _WILDCARD_ID.match(model_id):
        raise GatewayError(400, f"model {model!r}: {model_id!r} is not a model id (letters, digits and ._:@+/-, "
                                f"at most 128 characters)", param="model")
    # The entry's cluster, key and settings; the id the client named.
    return dataclasses.replace(entry, slug=model, model_id=model_id)


def _default(config: Config) -> Decision:
    provider = config.default_provider
    assert provider is not None
    return Decision(provider, DecisionKind.DEFAULT, chain=config.provider_chains.get(provider.slug))


def _routing_plan(config: Config, preferences: tuple[RequestPreference, ...] | None,
                  latency: Mapping[str, float] | None) -> RoutingPlan | None:
    if preferences is None:
        if not config.route_pools:
            return None
        orders = {name: pools.order(pool, latency) for name, pool in config.route_pools.items()}
        chains = {name: chain for name, order in orders.items()
                  if len(order) > 1 and (chain := config.pool_chains.get(pools.slugs(order))) is not None}
        return RoutingPlan(config.routes, {name: order[0] for name, order in orders.items()},
                           config.default_provider, config.provider_chains, orders, chains)  # type: ignore[arg-type]

    owners: dict[str, Provider] = {}
    routes: list[Route] = []
    orders: dict[str, tuple[Provider, ...]] = {}
    chains: dict[str, Chain] = {}
    for pref in preferences:
        written = tuple(_lookup(config, name, pref.route.name) for name in pref.models)
        if pref.route.name in owners:
            raise GatewayError(400, f"routing preference {pref.route.name!r} is given twice", param="routing_preferences")
        pool = RoutePool(pref.route, written, pref.prefer, pools.static_order(written, pref.prefer))  # type: ignore[arg-type]
        providers = pools.order(pool, latency)
        owners[pref.route.name] = providers[0]
        orders[pref.route.name] = providers
        # A request's own pool fails over when the configuration renders that order already.
        chain = config.pool_chains.get(pools.slugs(providers)) if len(providers) > 1 else None
        if chain is not None:
            chains[pref.route.name] = chain
        routes.append(pref.route)
    if not routes:
        return None
    fallback = config.default_provider or owners[routes[0].name]
    return RoutingPlan(tuple(routes), owners, fallback, config.provider_chains, orders, chains)


def _lookup(config: Config, name: str, route: str) -> Provider:
    provider = config.by_slug.get(name) or config.by_model_id.get(name) or config.aliases.get(name)
    if provider is None:
        raise GatewayError(
            400,
            f"routing preference {route!r} names model {name!r}, which is not configured; "
            f"known models and aliases: {', '.join(config.model_names)}",
            param="routing_preferences",
        )
    return provider


def decide_route(plan: RoutingPlan, route: str | None) -> Decision:
    """Turn the router's answer into a decision; no route or an unknown one → the fallback."""
    provider = plan.owners.get(route) if route else None
    if provider is None:
        return plan.decision(DecisionKind.DEFAULT, None, plan.fallback)
    return plan.decision(DecisionKind.PREFERENCE, route, provider)
