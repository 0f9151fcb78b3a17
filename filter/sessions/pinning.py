"""One model per turn of an agent loop, and per session when the client asks for affinity.

For a request that preference routing decides (rule 4), `Sessions.decide`:

1. reads the conversation once and builds what the router may see (`view.py`);
2. finds its session (`keys.py`): `x-model-affinity`, else — with `routing.turn_pinning` — the
   implicit key;
3. reuses the pinned model, without asking the router, when the request continues a turn
   (`turns.py`) or names an explicit session; otherwise routes and pins the answer.

Outcomes, counted and logged: `routed` (a new user turn was decided), `pinned` (reused, no router
call), `cold` (a continuation whose turn was unknown: decided once, then pinned), `store_error`
(the store failed: decided as if cold; the request is served all the same).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum
from typing import Awaitable, Callable, Mapping

import orjson

from filter.config import Routing
from filter.resolve import Decision, DecisionKind, RoutingPlan
from filter.sessions.conversation import read_conversation
from filter.sessions.envelopes import Envelopes
from filter.sessions.keys import SessionKey, affinity_id, explicit_key, implicit_key
from filter.sessions.turns import starts_user_turn
from filter.sessions.view import router_view
from filter.state import Store, StoreError, Table

log = logging.getLogger("switchyard.sessions")

class Outcome(str, Enum):
    ROUTED = "routed"
    PINNED = "pinned"
    COLD = "cold"
    STORE_ERROR = "store_error"


@dataclass(frozen=True, slots=True)
class Routed:
    """A preference decision and how it was reached."""

    decision: Decision
    router_ms: float | None  # None: no router call
    session: str | None = None  # for `x-switchyard-session`; None when no session applies
    pinned: bool = False
    outcome: Outcome | None = None


# Asks the router about the conversation view; returns its decision and the time it took.
RouteCall = Callable[[list[dict]], Awaitable[tuple[Decision, float]]]


class Sessions:
    """Built per configuration (`routing:` settings); the store outlives reloads."""

    def __init__(self, settings: Routing, store: Store | None):
        self.turn_pinning = settings.turn_pinning
        self.tenant_header = settings.tenant_header
        self.store = store  # None: no sessions (the router still reads only the user's words)
        self.envelopes = Envelopes(settings.harness_envelopes)
        self.table = Table("sessions", ttl_s=settings.session_ttl_s, max_entries=settings.session_max_entries,
                           max_value_bytes=4096)

    async def decide(self, plan: RoutingPlan, api, body: dict, model: str | None, headers: Mapping[str, str],
                     client: str | None, route: RouteCall) -> Routed:
        """`client`: the name of the client key the request presented, if keys are configured."""
        conversation = read_conversation(api, body)
        view = router_view(conversation, self.envelopes)
        key = self._key(conversation, model, headers, client)
        if key is None:
            decision, router_ms = await route(view)
            return Routed(decision, router_ms)

        # An explicit session keeps its model across user turns; an implicit one only within a turn.
        reuse = key.explicit or not starts_user_turn(conversation, self.envelopes)
        store_failed = stale = False
        if reuse:
            try:
                stored = await self.store.get(self.table, key.storage)
            except StoreError as exc:
                store_failed = True
                log.debug("session %s: store read failed: %s", key.id, exc)
                stored = None
            pin = pinned_decision(plan, stored)
            if pin is not None:
                return Routed(pin, None, key.id, True, Outcome.PINNED)
            stale = stored is not None  # a pin this configuration cannot serve any more

        decision, router_ms = await route(view)
        value = pin_value(decision)
        try:
            if reuse and not stale:
                # Steps of one loop may race on several workers: the first pin written wins.
                winner = await self.store.put_if_absent(self.table, key.storage, value)
                decision = pinned_decision(plan, winner) or decision
            else:
                await self.store.put(self.table, key.storage, value)
        except StoreError as exc:
            store_failed = True
            log.debug("session %s: store write failed: %s", key.id, exc)
        if store_failed:
            outcome = Outcome.STORE_ERROR
        else:
            outcome = Outcome.COLD if reuse else Outcome.ROUTED
        return Routed(decision, router_ms, key.id, False, outcome)

    def _key(self, conversation, model: str | None, headers: Mapping[str, str], client: str | None) -> SessionKey | None:
        affinity = affinity_id(headers)  # checked even without a store: a bad header is a 400 either way
        if self.store is None:
            return None
        # Sessions are scoped by the client key's name and, if configured, a tenant header.
        scope = client or ""
        if self.tenant_header:
            scope = f"{scope}\x1f{headers.get(self.tenant_header, '')}"
        if affinity is not None:
            return explicit_key(affinity, scope, model)
        if self.turn_pinning:
            return implicit_key(conversation, scope, model)
        return None


def pin_value(decision: Decision) -> bytes:
    return orjson.dumps({"model": decision.provider.slug, "route": decision.route})


def pinned_decision(plan: RoutingPlan, stored: bytes | None) -> Decision | None:
    """The decision a stored pin stands for under this request's routes, or None when the pin is
    unreadable or names a model this plan cannot choose (a reload removed it, other per-request
    preferences): such a session is decided again."""
    if not stored:
        return None
    try:
        pin = orjson.loads(stored)
        slug, route = pin["model"], pin.get("route")
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    owner = plan.owners.get(route) if isinstance(route, str) else None
    if owner is not None and owner.slug == slug:
        return plan.decision(DecisionKind.PREFERENCE, route, owner)
    if route is None and plan.fallback.slug == slug:
        return plan.decision(DecisionKind.DEFAULT, None, plan.fallback)
    # The model is still a candidate, under another route name: the model is what stays pinned.
    for name, provider in plan.owners.items():
        if provider.slug == slug:
            return plan.decision(DecisionKind.PREFERENCE, name, provider)
    if plan.fallback.slug == slug:
        return plan.decision(DecisionKind.DEFAULT, None, plan.fallback)
    return None
