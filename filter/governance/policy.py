"""What the configuration says of each client key and each model: pure functions, built once per
configuration.

**Entities.** Limits count per entity: a client key (`c:<name>`, its own `limits` or else
`gateway.limits.default`, and its `budget`) and a model (`m:<provider/model>`, the entry's
`limits`, all clients together). A request counts against its key and the model that serves it.

**Models a key may use** (`models:` of a key). A request may go ahead when
- the name it sent (a provider slug, a bare model id, an alias, a routed name such as `auto`) is
  listed, or
- the model that serves it is listed (its slug, its bare id, or `provider/*` for a wildcard
  entry's ids), or
- it was routed and its route is listed.
A routed request (`auto`, no model, an unknown name with `unknown_model: route`) is routed among
the routes the key may use: a listed route, or one whose serving model is listed; when `auto`
itself is listed, among all. The router's "other" (and its failures) go to the default model when
the key may use it, else to the first route the key may use. When none is left: 403.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Mapping

from filter.config import Config, Provider
from filter.errors import GatewayError
from filter.resolve import Decision, DecisionKind, RoutingPlan


@dataclass(frozen=True, slots=True)
class Policy:
    """The limits of one entity; None: no limit of that kind."""

    entity: str  # "c:<key name>" | "m:<provider/model>"
    rpm: int | None = None
    tpm: int | None = None
    usd: float | None = None  # a budget, with its period
    period: str | None = None  # "day" | "month"

    @property
    def is_key(self) -> bool:
        return self.entity.startswith("c:")

    @property
    def name(self) -> str:
        return self.entity[2:]


def key_entity(name: str) -> str:
    return f"c:{name}"


def model_entity(slug: str) -> str:
    return f"m:{slug}"


def policies(config: Config) -> dict[str, Policy]:
    """Every entity with a limit or a budget, by entity name."""
    out: dict[str, Policy] = {}
    for key in config.gateway.client_keys:
        limits = key.limits or config.gateway.default_limits
        if limits is None and key.budget is None:
            continue
        entity = key_entity(key.name)
        out[entity] = Policy(entity, limits.rpm if limits else None, limits.tpm if limits else None,
                             key.budget.usd if key.budget else None, key.budget.period if key.budget else None)
    for provider in config.providers:
        if provider.limits is not None:
            entity = model_entity(provider.slug)
            out[entity] = Policy(entity, provider.limits.rpm, provider.limits.tpm)
    return out


def served_names(config: Config, provider: Provider) -> set[str]:
    """The names under which `provider` may be listed in a key's `models`."""
    names = {provider.slug}
    if config.by_model_id.get(provider.model_id) is provider:
        names.add(provider.model_id)
    if provider.wildcard:  # an id passed through by `provider/*`
        names.add(f"{provider.provider}/*")
    return names


@dataclass(frozen=True, slots=True)
class KeyPolicy:
    name: str
    models: frozenset[str] | None  # None: every model


class ModelAccess:
    """Which models, aliases and routes each client key may use (403 otherwise)."""

    def __init__(self, config: Config):
        self.config = config
        self.keys: Mapping[str, KeyPolicy] = {
            k.name: KeyPolicy(k.name, frozenset(k.models) if k.models is not None else None)
            for k in config.gateway.client_keys
        }

    def allowed(self, client: str | None) -> frozenset[str] | None:
        key = self.keys.get(client) if client is not None else None
        return key.models if key is not None else None

    def narrow(self, client: str | None, requested: str | None, outcome: Decision | RoutingPlan) -> Decision | RoutingPlan:
        """The resolution as this key may have it: a decision it may use, or the routes it may
        use. Raises the 403."""
        allowed = self.allowed(client)
        if allowed is None:
            return outcome
        if isinstance(outcome, Decision):
            self.check(client, requested, outcome)
            return outcome
        narrowed = restrict_plan(self.config, outcome, allowed, self._routing_listed(allowed, requested))
        if narrowed is None:
            raise model_not_allowed(client or "", requested or "auto", allowed)
        return narrowed

    def check(self, client: str | None, requested: str | None, decision: Decision) -> None:
        allowed = self.allowed(client)
        if allowed is None:
            return
        routed = decision.kind in (DecisionKind.PREFERENCE, DecisionKind.DEFAULT) and self._routed(requested)
        if not permitted(self.config, allowed, requested, decision, routed and self._routing_listed(allowed, requested)):
            raise model_not_allowed(client or "", requested or decision.provider.slug, allowed)

    def _routed(self, requested: str | None) -> bool:
        return not requested or requested in self.config.routing.routed_models or (
            self.config.routing.unknown_model == "route" and requested not in self.config.model_names)

    def _routing_listed(self, allowed: frozenset[str], requested: str | None) -> bool:
        """The key may use preference routing over every route: it lists the routed name it sent
        (or, when it sent none, any routed name)."""
        routed_models = self.config.routing.routed_models
        if not requested:
            return any(name in allowed for name in routed_models)
        return requested in routed_models and requested in allowed


def permitted(config: Config, allowed: frozenset[str], requested: str | None, decision: Decision,
              routing_listed: bool = False) -> bool:
    if routing_listed:
        return True
    if requested and requested in allowed and decision.kind in (DecisionKind.LITERAL, DecisionKind.ALIAS):
        return True
    if decision.route is not None and decision.route in allowed:
        return True
    if decision.kind in (DecisionKind.PREFERENCE, DecisionKind.DEFAULT) and any(
            route in allowed and decision.provider in pool.models for route, pool in config.route_pools.items()):
        return True  # the router's fallback for a key restricted to routes: a model of one of them
    return bool(served_names(config, decision.provider) & allowed)


def restrict_plan(config: Config, plan: RoutingPlan, allowed: frozenset[str],
                  routing_listed: bool) -> Decision | RoutingPlan | None:
    """The routes of `plan` that the key may use, and a fallback it may use; a decision when no
    route is left but the default may serve; None when nothing may."""
    if routing_listed:
        return plan
    usable = tuple(route for route in plan.routes
                   if route.name in allowed or served_names(config, plan.owners[route.name]) & allowed)
    fallback_ok = bool(served_names(config, plan.fallback) & allowed)
    if not usable:
        return plan.decision(DecisionKind.DEFAULT, None, plan.fallback) if fallback_ok else None
    fallback = plan.fallback if fallback_ok else plan.owners[usable[0].name]
    return dataclasses.replace(plan, routes=usable, fallback=fallback)


def model_not_allowed(client: str, requested: str, allowed: frozenset[str]) -> GatewayError:
    return GatewayError(403, f"the key {client!r} may not use {requested!r}; it may use: {', '.join(sorted(allowed))}",
                        code="model_not_allowed", param="model")
