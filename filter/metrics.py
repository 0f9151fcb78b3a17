"""Prometheus metrics of the filter, correct across several worker processes.

Names follow the OpenTelemetry GenAI semantic conventions where one exists (`gen_ai_*`), and
`switchyard_*` otherwise. Each worker writes its samples to files in PROMETHEUS_MULTIPROC_DIR
(set by the supervisor before the workers start); the supervisor serves the merged view.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_UPSTREAM_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160)
_TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576)


@dataclass(frozen=True, slots=True)
class Labels:
    """Who served a request, as the metrics label it."""

    client_api: str
    provider: str
    model: str
    decision: str
    route: str


def status_class(status: int) -> str:
    return f"{status // 100}xx"


class Metrics:
    """The filter's collectors. One instance per worker, built at start-up."""

    def __init__(self, registry: CollectorRegistry | None = None):
        registry = registry or CollectorRegistry()
        # prometheus_client keeps every labelled child for the process's life; so does this map.
        self._children: dict[tuple, object] = {}
        self._counts: dict[tuple, int] = {}
        self._observed: dict[tuple, list[float]] = {}
        self.requests = Counter(
            "switchyard_requests", "Requests by client API, serving model, decision kind, route and status class",
            ["client_api", "provider", "model", "decision", "route", "status_class"], registry=registry)
        self.routing_duration = Histogram(
            "switchyard_routing_decision_duration_seconds", "Time to reach a preference-routing decision",
            ["engine"], buckets=_LATENCY_BUCKETS, registry=registry)
        self.router_decisions = Counter(
            "switchyard_router_decisions", "Router outcomes: route, other, timeout, error, cached",
            ["engine", "outcome"], registry=registry)
        self.token_usage = Histogram(
            "gen_ai_client_token_usage", "Tokens per request read from provider responses",
            ["gen_ai_provider_name", "gen_ai_request_model", "gen_ai_token_type"], buckets=_TOKEN_BUCKETS,
            registry=registry)
        self.operation_duration = Histogram(
            "gen_ai_client_operation_duration_seconds", "Upstream request duration, first byte sent to last received",
            ["gen_ai_provider_name", "gen_ai_request_model", "error_type"], buckets=_UPSTREAM_BUCKETS,
            registry=registry)
        self.time_to_first_token = Histogram(
            "gen_ai_server_time_to_first_token_seconds", "Time from forwarding the request to the first response byte",
            ["gen_ai_provider_name", "gen_ai_request_model"], buckets=_UPSTREAM_BUCKETS, registry=registry)
        self.session_decisions = Counter(
            "switchyard_session_decisions", "Preference decisions by session outcome: routed (a new user turn), "
            "pinned (the turn's or session's model, no router call), cold (a continuation of an unknown turn), "
            "store_error (the store failed: decided as cold)", ["outcome"], registry=registry)
        self.failovers = Counter(
            "switchyard_failovers", "Requests moved to a fallback model, by reason",
            ["from_model", "to_model", "reason"], registry=registry)

    # Per finished request, from the access log (filter/observer.py): gathered, then written by
    # `flush` once per batch of log entries.

    def request(self, labels: Labels, status: int) -> None:
        key = (self.requests, (labels.client_api, labels.provider, labels.model, labels.decision, labels.route,
                               status_class(status)))
        self._counts[key] = self._counts.get(key, 0) + 1

    def upstream_call(self, provider: str, model: str, error_type: str, seconds: float) -> None:
        self._observe(self.operation_duration, (provider, model, error_type), seconds)

    def first_token(self, provider: str, model: str, seconds: float) -> None:
        self._observe(self.time_to_first_token, (provider, model), seconds)

    def tokens(self, provider: str, model: str, input_tokens: int, output_tokens: int, cached_tokens: int) -> None:
        for kind, count in (("input", input_tokens), ("output", output_tokens), ("cached_input", cached_tokens)):
            self._observe(self.token_usage, (provider, model, kind), count)

    def flush(self) -> None:
        """Write what `request`, `upstream_call`, `first_token` and `tokens` gathered. Each write
        to a multi-process collector is a locked write to a shared file: one per label set and
        histogram bucket per batch, not one per request and observation."""
        counts, observed = self._counts, self._observed
        self._counts, self._observed = {}, {}
        for (metric, labels), count in counts.items():
            self._child(metric, labels).inc(count)
        for (metric, labels), values in observed.items():
            _observe_all(self._child(metric, labels), values)

    def _observe(self, metric: Histogram, labels: tuple[str, ...], value: float) -> None:
        self._observed.setdefault((metric, labels), []).append(value)

    # Per routing decision, from the request path: written at once.

    def router(self, engine: str, outcome: str, seconds: float) -> None:
        self.router_decisions.labels(engine, outcome).inc()
        self.routing_duration.labels(engine).observe(seconds)

    def session(self, outcome: str) -> None:
        self._child(self.session_decisions, (outcome,)).inc()

    def _child(self, metric, labels: tuple[str, ...]):
        """`metric.labels(*labels)`, remembered: prometheus_client's lookup costs about as much as
        the write itself."""
        key = (metric, labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child


def _observe_all(child, values: list[float]) -> None:
    """`child.observe(v)` for every v, with one write per bucket touched and one to the sum.
    prometheus_client (pinned) has no bulk observe; this does what its `Histogram.observe` does
    per value: the sum grows by the value, and the first bucket whose bound holds it by one.
    tests/unit/test_metrics.py checks the result against `observe`."""
    hits = [0] * len(child._upper_bounds)
    for value in values:
        hits[bisect.bisect_left(child._upper_bounds, value)] += 1
    child._sum.inc(sum(values))
    for bucket, count in zip(child._buckets, hits):
        if count:
            bucket.inc(count)
