"""Which configured model serves a request: the precedence rules of the README, as pure functions.

1. `provider/model` of a configured entry → that entry            (literal)
2. the bare model id of exactly one entry → that entry            (literal)
3. a key of `model_aliases` → its target                          (alias)
4. no model, a routed name (`auto`), or — with unknown_model: route — any other name, while
   routes exist (configured or sent with the request) → the router decides   (preference)
5. otherwise a `default: true` entry → it                          (default)
6. otherwise an error that lists the configured models and aliases
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping
from enum import Enum

from filter.config import Chain, Config, Provider
from filter.errors import GatewayError
from filter.inbound import RequestPreference
from router_model.engine import Route


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


@dataclass(frozen=True, slots=True)
class RoutingPlan:
    """Rule 4: the router must pick among `routes`; `owners` maps each route to its provider."""

    routes: tuple[Route, ...]
    owners: Mapping[str, Provider]
    fallback: Provider  # serves "other", unknown routes and router failures
    chains: Mapping[str, Chain]  # failover chains by provider slug


def resolve(config: Config, model: str | None, preferences: tuple[RequestPreference, ...] | None) -> Decision | RoutingPlan:
    """Apply the precedence rules. Raises GatewayError for rule 6 and bad per-request preferences."""
    plan = _routing_plan(config, preferences)  # validates per-request preferences even when unused

    if model:
        provider = config.by_slug.get(model) or config.by_model_id.get(model)
        if provider is not None:
            return Decision(provider, DecisionKind.LITERAL, chain=config.provider_chains.get(provider.slug))
        provider = config.aliases.get(model)
        if provider is not None:
            return Decision(provider, DecisionKind.ALIAS, chain=config.alias_chains.get(model))

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


def _default(config: Config) -> Decision:
    provider = config.default_provider
    assert provider is not None
    return Decision(provider, DecisionKind.DEFAULT, chain=config.provider_chains.get(provider.slug))


def _routing_plan(config: Config, preferences: tuple[RequestPreference, ...] | None) -> RoutingPlan | None:
    if preferences is None:
        if not config.route_owner:
            return None
        return RoutingPlan(config.routes, config.route_owner, config.default_provider,  # type: ignore[arg-type]
                           config.provider_chains)

    owners: dict[str, Provider] = {}
    routes: list[Route] = []
    for pref in preferences:
        providers = [_lookup(config, name, pref.route.name) for name in pref.models]
        if pref.route.name in owners:
            raise GatewayError(400, f"routing preference {pref.route.name!r} is given twice", param="routing_preferences")
        owners[pref.route.name] = providers[0]
        routes.append(pref.route)
    if not routes:
        return None
    fallback = config.default_provider or owners[routes[0].name]
    return RoutingPlan(tuple(routes), owners, fallback, config.provider_chains)


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
        return Decision(plan.fallback, DecisionKind.DEFAULT, chain=plan.chains.get(plan.fallback.slug))
    return Decision(provider, DecisionKind.PREFERENCE, route, plan.chains.get(provider.slug))
