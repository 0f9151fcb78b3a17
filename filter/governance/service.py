"""The filter workers' side of governance: Envoy's extension calls here to push what it counted
and to confirm requests close to a limit (filter/governance/protocol.py has the format).

Every call is one round trip to the shared store (`Store.add`: the counters of the minute and of
the budget period, incremented by what the call brings, or by 0 to read them): Redis across
replicas, the embedded store on one machine. A confirmation adds its request to the counters
first and then compares the totals with the limits, so two gateways asking at once cannot both
take the last request; a refused request is taken back out. When the store cannot answer, the
answer says so (the extension then admits on its own counts, or refuses with 503 when
gateway.limits.fail_closed), and the failure is logged once per outage and counted.
"""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import datetime, timezone
from typing import Callable

import grpc

from filter.config import Config
from filter.governance.policy import Policy, policies
from filter.governance.protocol import Call, ProtocolError, Refusal, Totals, format_answer, parse_call
from filter.metrics import Metrics
from filter.state import Increment, Store, StoreError
from filter.state.windows import Window, calendar_period, fixed_window

log = logging.getLogger("switchyard.governance")

SERVICE = "switchyard.governance.v1.Governance"
WINDOW_S = 60


def _base(entity: str) -> str:
    # Store keys are bounded; a very long name is hashed (names are the configuration's own).
    return entity if len(entity) <= 300 else "h:" + hashlib.sha256(entity.encode()).hexdigest()


def request_window(entity: str, minute: int) -> Window:
    return fixed_window(f"limit:{_base(entity)}:requests", WINDOW_S, minute * WINDOW_S)


def token_window(entity: str, minute: int) -> Window:
    return fixed_window(f"limit:{_base(entity)}:tokens", WINDOW_S, minute * WINDOW_S)


def period_start(period: str, now: float) -> int:
    """The start of the UTC day or month that holds `now` (the end of the one before)."""
    moment = datetime.fromtimestamp(now, timezone.utc)
    start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "month":
        start = start.replace(day=1)
    return int(start.timestamp())


def budget_period(entity: str, period: str, period_end: int) -> Window:
    return calendar_period(f"budget:{_base(entity)}", period, period_end - 1)


class Governance:
    def __init__(self, config: Config, store: Store | None, metrics: Metrics, clock: Callable[[], float] = time.time):
        self.store = store
        self.metrics = metrics
        self.clock = clock  # the workers' clock names the minutes and periods (Envoy follows it)
        self._failing = False
        self.apply(config)

    def apply(self, config: Config) -> None:
        self.policies: dict[str, Policy] = policies(config)
        self.fail_closed = config.gateway.limits_fail_closed

    def handler(self) -> grpc.GenericRpcHandler:
        """Raw bytes in and out (no protobuf): the extension writes the text itself."""
        return grpc.method_handlers_generic_handler(SERVICE, {"Sync": grpc.unary_unary_rpc_method_handler(self.sync)})

    async def sync(self, request: bytes, context) -> bytes:
        try:
            call = parse_call(request)
        except ProtocolError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return await self.answer(call)

    async def answer(self, call: Call) -> bytes:
        now = self.clock()
        minute = int(now // WINDOW_S)
        checks = [entity for entity in dict.fromkeys(call.checks) if entity in self.policies]
        increments: list[Increment] = []
        slots: list[tuple[str, int, int, int | None, int | None, int | None]] = []  # entity, minute, period, slots
        for delta in call.deltas:
            policy = self.policies.get(delta.entity)
            if policy is None:  # removed by a reload while Envoy still counted it
                continue
            extra = 1 if delta.entity in checks else 0
            # What Envoy counted is fresh: this minute's, or the last one's right after it ended.
            # A confirmation counts in this worker's minute, whatever Envoy's clock says.
            window = delta.window if delta.window in (minute, minute - 1) and not extra else minute
            period = policy.period
            period_end = 0
            if period:  # the same for the budget period: this one, or the one that just ended
                period_end = int(calendar_period("p", period, now).resets_at)
                if not extra and delta.period_end == period_start(period, now):
                    period_end = delta.period_end

            def slot(window: Window, amount: float) -> int:
                increments.append(Increment(window.key, amount, window.ttl_s))
                return len(increments) - 1

            requests = slot(request_window(delta.entity, window), delta.requests + extra) \
                if policy.rpm is not None else None
            tokens = slot(token_window(delta.entity, window), delta.tokens) if policy.tpm is not None else None
            usd = slot(budget_period(delta.entity, period, period_end), delta.usd) \
                if policy.usd is not None and period else None
            slots.append((delta.entity, window, period_end, requests, tokens, usd))
        now_ms = int(now * 1000)
        if self.store is None:
            return format_answer(False, [], checked=bool(checks), now_ms=now_ms)
        try:
            values = await self.store.add(increments) if increments else await self.store.read([])
        except StoreError as exc:
            self._failed(exc)
            return format_answer(False, [], checked=bool(checks), now_ms=now_ms)
        self._answered()

        totals = {entity: Totals(entity, minute, values[r] if r is not None else 0.0,
                                 values[t] if t is not None else 0.0, period, values[u] if u is not None else 0.0)
                  for entity, minute, period, r, t, u in slots}
        refusal = self._verdict(checks, totals) if checks else None
        if refusal is not None:
            totals = await self._take_back(checks, slots, totals)
        return format_answer(True, list(totals.values()), refusal, checked=bool(checks), now_ms=now_ms)

    def _verdict(self, checks: list[str], totals: dict[str, Totals]) -> Refusal | None:
        """The budget first (the longest wait), then requests and tokens, key before model."""
        for entity in checks:
            policy, total = self.policies[entity], totals.get(entity)
            if total is not None and policy.usd is not None and total.usd >= policy.usd:
                return Refusal(entity, "budget")
        for entity in checks:
            policy, total = self.policies[entity], totals.get(entity)
            if total is None:
                continue
            if policy.rpm is not None and total.requests > policy.rpm:
                return Refusal(entity, "requests")
            if policy.tpm is not None and total.tokens >= policy.tpm:
                return Refusal(entity, "tokens")
        return None

    async def _take_back(self, checks: list[str], slots, totals: dict[str, Totals]) -> dict[str, Totals]:
        """A refused request does not count: its +1 comes off the request counters again."""
        undo = []
        for entity, minute, _, requests, _, _ in slots:
            if entity in checks and requests is not None:
                window = request_window(entity, minute)
                undo.append(Increment(window.key, -1.0, window.ttl_s))
                t = totals[entity]
                totals[entity] = Totals(entity, t.window, t.requests - 1, t.tokens, t.period_end, t.usd)
        try:
            await self.store.add(undo)
        except StoreError as exc:
            self._failed(exc)
        return totals

    def _failed(self, exc: StoreError) -> None:
        self.metrics.limits_store_error()
        if not self._failing:
            self._failing = True
            log.warning("rate limits and budgets cannot reach the shared store (%s): %s", exc,
                        "requests with limits are refused with 503 (gateway.limits.fail_closed)" if self.fail_closed
                        else "requests are admitted on each gateway's own counts (fail open)")

    def _answered(self) -> None:
        if self._failing:
            self._failing = False
            log.warning("rate limits and budgets reach the shared store again")
