"""Prometheus metrics: what the filter counts itself, and the families Envoy counts for it.

Names follow the OpenTelemetry GenAI semantic conventions where one exists (`gen_ai_*`), and
`switchyard_*` otherwise. Per-request metrics (requests, upstream duration, time to first token,
token usage) are computed inside Envoy, for every request whether the filter saw it or not, by
the Wasm extension `envoy/switchyard_metrics.c`; `REQUEST_FAMILIES` says what they are and
`filter/envoy_stats.py` reads them back. The filter keeps what only it knows: routing decisions
and failovers. Each worker writes its samples to files in PROMETHEUS_MULTIPROC_DIR (set by the
supervisor before the workers start); the supervisor's /metrics serves both, merged.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# Upstream durations and token counts: Envoy's extension is configured with these bounds.
UPSTREAM_BUCKETS = ("0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "20", "40", "80", "160")
TOKEN_BUCKETS = ("1", "4", "16", "64", "256", "1024", "4096", "16384", "65536", "262144", "1048576")


@dataclass(frozen=True, slots=True)
class Family:
    """A per-request metric family that Envoy computes."""

    name: str
    help: str
    labels: tuple[str, ...]
    buckets: tuple[str, ...] | None = None  # None: a counter
    seconds: bool = False  # the extension sums nanoseconds; the family is in seconds
    scale: float = 1.0  # a counter Envoy counts in integer units (nano-USD): its value times this
    optional: bool = False  # left out of /metrics while Envoy has counted nothing in it


REQUESTS = Family(
    "switchyard_requests", "Requests by client API, serving model, decision kind, route, status class and client key",
    ("client_api", "provider", "model", "decision", "route", "status_class", "client"))
OPERATION_DURATION = Family(
    "gen_ai_client_operation_duration_seconds", "Upstream request duration, first byte sent to last received",
    ("gen_ai_provider_name", "gen_ai_request_model", "error_type"), UPSTREAM_BUCKETS, seconds=True)
TIME_TO_FIRST_TOKEN = Family(
    "gen_ai_server_time_to_first_token_seconds", "Time from forwarding the request to the first response byte",
    ("gen_ai_provider_name", "gen_ai_request_model"), UPSTREAM_BUCKETS, seconds=True)
TOKEN_USAGE = Family(
    "gen_ai_client_token_usage", "Tokens per request read from provider responses",
    ("gen_ai_provider_name", "gen_ai_request_model", "gen_ai_token_type"), TOKEN_BUCKETS)
# Counted by the governance extension (envoy/switchyard_governance.c).
COST = Family(
    "switchyard_cost_usd", "Spend in USD from each answer's token counts and the model table's prices, by client key "
    "and model", ("client", "provider", "model"), scale=1e-9)
RATE_LIMITED = Family(
    "switchyard_rate_limited", "Requests refused by a limit: key_requests, key_tokens, model_requests, model_tokens, "
    "budget, unavailable (store unreachable with gateway.limits.fail_closed)", ("client", "model", "limit"))
LIMITS_UNCHECKED = Family(
    "switchyard_limits_unchecked", "Requests admitted on one gateway's own counts because the shared store could not "
    "confirm them (fail open)", ())
# With gateway.usage_metrics off the filter counts the streams it cut itself (Metrics.streams_cut),
# and this family, empty then, is left out of /metrics.
STREAMS_CUT = Family(
    "switchyard_streams_cut", "SSE answers the gateway ended itself: the provider was still streaming at the "
    "listener timeout", ("client_api", "model"), optional=True)
REQUEST_FAMILIES = (REQUESTS, OPERATION_DURATION, TIME_TO_FIRST_TOKEN, TOKEN_USAGE, COST, RATE_LIMITED, LIMITS_UNCHECKED,
                    STREAMS_CUT)


def extension_config() -> str:
    """The Wasm extension's configuration: the bucket bounds it counts into."""
    return f"duration_seconds {' '.join(UPSTREAM_BUCKETS)}\ntokens {' '.join(TOKEN_BUCKETS)}\n"


class Metrics:
    """The filter's own collectors. One instance per worker, built at start-up."""

    def __init__(self, registry: CollectorRegistry | None = None):
        registry = registry or CollectorRegistry()
        self.routing_duration = Histogram(
            "switchyard_routing_decision_duration_seconds", "Time to reach a preference-routing decision",
            ["engine"], buckets=_LATENCY_BUCKETS, registry=registry)
        self.router_decisions = Counter(
            "switchyard_router_decisions", "Router outcomes: route, other, timeout, error, cached",
            ["engine", "outcome"], registry=registry)
        self.session_decisions = Counter(
            "switchyard_session_decisions", "Preference decisions by session outcome: routed (a new user turn), "
            "pinned (the turn's or session's model, no router call), cold (a continuation of an unknown turn), "
            "store_error (the store failed: decided as cold)", ["outcome"], registry=registry)
        self.streams_cut = Counter(STREAMS_CUT.name, STREAMS_CUT.help, list(STREAMS_CUT.labels), registry=registry)
        self.failovers = Counter(
            "switchyard_failovers", "Requests moved to a fallback model, by reason",
            ["from_model", "to_model", "reason"], registry=registry)
        self.limit_store_errors = Counter(
            "switchyard_limits_store_errors", "Rate-limit and budget calls the shared store could not answer",
            registry=registry)

    def router(self, engine: str, outcome: str, seconds: float) -> None:
        self.router_decisions.labels(engine, outcome).inc()
        self.routing_duration.labels(engine).observe(seconds)

    def session(self, outcome: str) -> None:
        self.session_decisions.labels(outcome).inc()

    def limits_store_error(self) -> None:
        self.limit_store_errors.inc()

    def stream_cut(self, client_api: str, model: str) -> None:
        self.streams_cut.labels(client_api, model).inc()
