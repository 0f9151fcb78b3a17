"""The typed configuration the gateway runs on: frozen objects built once at start-up.

Everything here is read-only and shared by every request. `filter/config/build.py` makes these
from a checked file; nothing else constructs them (tests aside).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Mapping

from filter.providers import Interface
from router_model.engine import Route


class Secret:
    """A provider or client key. Its repr and str never show the value."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str):
        self._value = value
        self.source = source  # "$ENV_NAME" or "literal": safe to print

    def reveal(self) -> str:
        return self._value

    def __eq__(self, other: object) -> bool:
        # Reload compares configurations: the same key from the same place is the same secret.
        return isinstance(other, Secret) and other._value == self._value and other.source == self.source

    def __hash__(self) -> int:
        return hash((self.source, len(self._value)))

    def __repr__(self) -> str:
        return f"Secret({self.source})"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where a provider's requests go, split the way Envoy's cluster and route need it."""

    scheme: str  # "http" | "https"
    host: str  # a name or an IP address, IPv6 without brackets
    port: int
    path_prefix: str  # "" or "/openai/v1" — no trailing slash; the endpoint suffix is appended
    host_header: str | None = None  # Plano's http_host: the Host header, when not the URL's

    @property
    def tls(self) -> bool:
        return self.scheme == "https"

    @property
    def authority(self) -> str:
        """The Host header: http_host, else the host with the port only when it is not the
        scheme's, IPv6 in brackets."""
        if self.host_header:
            return self.host_header
        host = f"[{self.host}]" if ":" in self.host else self.host
        default_port = 443 if self.tls else 80
        return host if self.port == default_port else f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Requests and tokens (input + output) per minute; None means no limit of that kind."""

    rpm: int | None = None
    tpm: int | None = None


@dataclass(frozen=True, slots=True)
class Budget:
    usd: float
    period: Literal["day", "month"]


@dataclass(frozen=True, slots=True)
class Prices:
    """USD per million tokens; a provider entry's override of the model table."""

    input: float | None = None
    output: float | None = None
    cached_input: float | None = None


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A provider entry's override of the model table (what the model accepts)."""

    context_window: int | None = None
    max_output_tokens: int | None = None
    unsupported_params: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Provider:
    slug: str  # "openai/gpt-4o": what clients name and what x-switchyard-model shows
    provider: str  # "openai"
    model_id: str  # "gpt-4o": what the upstream is told ("*" for a wildcard entry)
    interface: Interface
    upstream: Upstream | None  # None for the in-gateway echo provider
    access_key: Secret | None
    default: bool
    routes: tuple[Route, ...]
    cluster: str  # the Envoy cluster (and routing-header value) serving this entry
    azure_api_version: str
    anthropic_version: str
    max_tokens: int  # Anthropic requires max_tokens; used when a translated request has none
    name: str | None = None  # Plano's optional label
    limits: RateLimits | None = None
    prices: Prices | None = None
    model_info: ModelInfo | None = None
    # `openai/*`: any model id of this provider, passed through as the client named it.
    wildcard: bool = False
    # Plano's passthrough_auth: the client's own credential goes upstream (access_key unused).
    passthrough_auth: bool = False
    # Plano's headers: sent upstream on every request, after the credential (values kept secret).
    headers: tuple[tuple[str, Secret], ...] = ()


@dataclass(frozen=True, slots=True)
class Chain:
    """A failover chain: the primary model, then its fallbacks in order. Envoy serves it with an
    aggregate cluster whose retries walk the members; each attempt is rewritten for its member."""

    name: str  # the aggregate cluster (and routing-header value)
    members: tuple[Provider, ...]


@dataclass(frozen=True, slots=True)
class RoutePool:
    """A route and the models that may serve it, in order: the first serves, the rest are its
    failover chain. `prefer` reorders the pool (cheapest by price, fastest by observed latency)."""

    route: Route
    models: tuple[Provider, ...]  # as written
    prefer: Literal["cheapest", "fastest", "none"] = "none"
    # The order that serves when nothing is observed at run time: by price for `cheapest` (the
    # model table's, fixed at start-up), as written otherwise. Empty: `models`.
    ranked: tuple[Provider, ...] = ()

    @property
    def order(self) -> tuple[Provider, ...]:
        return self.ranked or self.models


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
    port: int = 12000  # 0: an ephemeral port, reported when the gateway is ready
    timeout_s: float = 30.0
    message_format: str = "openai"


DEFAULT_ENVELOPES = ("system-reminder", "user-prompt-submit-hook", "environment_details")


@dataclass(frozen=True, slots=True)
class Routing:
    engine: str = "embedded"  # "embedded" | "arch-router" | "plano-orchestrator" | "none"
    endpoint: str | None = None
    model: str = "Arch-Router"
    timeout_s: float = 1.0
    routed_models: tuple[str, ...] = ("auto",)
    unknown_model: str = "reject"  # "reject" | "route" | "default"
    cache_size: int = 1024
    # The embedded engine's "other" threshold; None keeps the engine's fitted one.
    min_confidence: float | None = None
    # Decide once per user turn; agent-loop steps reuse the turn's model.
    turn_pinning: bool = True
    # Tags of harness envelopes (`<system-reminder>…</system-reminder>`) that are not user text.
    harness_envelopes: tuple[str, ...] = DEFAULT_ENVELOPES
    session_ttl_s: float = 600.0
    session_max_entries: int = 10_000
    # A request header whose value scopes sessions (Plano's session_cache.tenant_header).
    tenant_header: str | None = None
    # (header, key) the router endpoint needs: set when Plano's overrides.llm_routing_model names a
    # configured provider entry that has an access_key.
    endpoint_credential: tuple[str, Secret] | None = None
    # The router's conversation budget in tokens (Plano's orchestrator_model_context_length);
    # None: the engine's own (Arch-Router 2,048, Plano-Orchestrator 8,192).
    token_budget: int | None = None


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """Where the state the gateway shares lives: None url = the embedded store of one machine."""

    url: str | None = None  # redis://, rediss:// (TLS) or unix:// (a Redis socket)
    key_prefix: str = "switchyard:"
    password: Secret | None = None


@dataclass(frozen=True, slots=True)
class ClientKey:
    name: str  # labels metrics, logs and spans; never the key
    key: Secret
    limits: RateLimits | None = None
    budget: Budget | None = None
    models: tuple[str, ...] | None = None  # model names, aliases or routes this key may use


@dataclass(frozen=True, slots=True)
class Gateway:
    admin_port: int = 9901
    filter_port: int = 50051
    workers: int = 1
    metrics_port: int = 9090
    metrics_address: str = "127.0.0.1"
    max_request_bytes: int = 16 * 1024 * 1024
    max_response_bytes: int = 64 * 1024 * 1024
    log_level: str = "info"
    # Count requests, upstream duration, time to first token and tokens inside Envoy.
    usage_metrics: bool = True
    # Literal and alias requests that need nothing of Python are checked, rewritten and sent by
    # Envoy alone (filter/render/fast_path.py); everything else still goes through the filter.
    fast_path: bool = True
    # When set, every request must present one of these (Bearer or x-api-key), else 401.
    client_keys: tuple[ClientKey, ...] = ()
    default_limits: RateLimits | None = None
    limits_fail_closed: bool = False
    store: StoreSettings = StoreSettings()
    # OTLP/HTTP traces endpoint (e.g. http://collector:4318/v1/traces), JSON encoding.
    otlp_endpoint: str | None = None
    service_name: str = "switchyard"
    max_connections: int = 4096
    request_headers_timeout_s: float = 10.0
    idle_timeout_s: float = 300.0
    socket_dir: str | None = None  # the filter workers' Unix sockets; None: the private runtime dir


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
    route_pools: Mapping[str, RoutePool] = field(repr=False, default_factory=dict)
    failover: Failover = Failover()
    # Failover chains by the name the client used: a provider slug (its `fallbacks`) or an alias
    # (the alias's own `fallbacks`, else its target's).
    provider_chains: Mapping[str, Chain] = field(repr=False, default_factory=dict)
    alias_chains: Mapping[str, Chain] = field(repr=False, default_factory=dict)
    # Failover chains of route pools, by the order of their members' slugs: every order the
    # pool may be served in (filter/pools.py), each its own aggregate cluster in Envoy.
    pool_chains: Mapping[tuple[str, ...], Chain] = field(repr=False, default_factory=dict)
    # `openai/*` entries by provider prefix.
    wildcards: Mapping[str, Provider] = field(repr=False, default_factory=dict)
    version: str = "v0.3.0"
    # One line per key of the file that is accepted but not implemented (Plano compatibility).
    warnings: tuple[str, ...] = ()

    @property
    def chains(self) -> list[Chain]:
        unique = {c.name: c for c in (*self.provider_chains.values(), *self.alias_chains.values(),
                                      *self.pool_chains.values())}
        return list(unique.values())

    @property
    def default_provider(self) -> Provider | None:
        return next((p for p in self.providers if p.default), None)

    @property
    def model_names(self) -> list[str]:
        """Every name a client may send: provider slugs and aliases."""
        return [p.slug for p in self.providers] + list(self.aliases)
