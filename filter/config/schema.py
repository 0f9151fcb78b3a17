"""The configuration file's schema: Plano's format (v0.3 and v0.4) plus Switchyard's sections.

Pydantic checks shape and types and tracks the key path of every problem; the leaf types below
carry the wording of their errors (`expected a port number, got a string`), so that
`filter/config/errors.py` can print `file: key.path: problem` for the first one. Cross-field
rules (duplicates, alias targets, routes and their models) are checked when the runtime objects
are built (`filter/config/build.py`). Nothing here reads the environment except `$ENV` keys,
through the validation context.
"""

from __future__ import annotations

import ipaddress
import math
import re
from typing import Annotated, Any, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, PlainValidator, Tag, ValidationInfo
from pydantic_core import PydanticCustomError

from filter.config.model import Secret

# --------------------------------------------------------------------------- leaf types


def type_name(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number"}.get(type(value), type(value).__name__)


def fail(message: str) -> PydanticCustomError:
    # Passed as context, so that braces in a user's value are never read as placeholders.
    return PydanticCustomError("switchyard", "{message}", {"message": message})


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise fail(f"expected a string, got {type_name(value)}")
    if not value.strip():
        raise fail("must not be empty")
    if any(ord(c) < 32 and c not in "\t" for c in value):
        raise fail("must not contain line breaks or control characters")
    return value


def _text(value: Any) -> str:
    """A description or an example: free text, line breaks allowed."""
    if not isinstance(value, str):
        raise fail(f"expected a string, got {type_name(value)}")
    if not value.strip():
        raise fail("must not be empty")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise fail(f"expected true or false, got {type_name(value)}")
    return value


def _integer(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(f"expected {what}, got {type_name(value)}")
    return value


# The validator factories below run once, at import, to build the Annotated types: their checks
# are module-level functions, so that tests (and `make mutation`) reach them call by call.
def _bounded_int(low: int, high: int, what: str = "an integer"):  # pragma: no mutate block
    return lambda value: _check_bounded_int(value, low, high, what)


def _check_bounded_int(value: Any, low: int, high: int, what: str) -> int:
    number = _integer(value, what)
    if number < low:
        raise fail(f"must be at least {low}, got {number}")
    if number > high:
        raise fail(f"must be at most {high}, got {number}")
    return number


def _port(value: Any) -> int:
    port = _integer(value, "a port number")
    if not 0 <= port < 65536:
        raise fail(f"port {port} is out of range 0-65535")
    return port


def _number(low: float, high: float):  # pragma: no mutate block
    return lambda value: _check_number(value, low, high)


def _check_number(value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise fail(f"expected a number, got {type_name(value)}")
    if math.isnan(value) or math.isinf(value):
        raise fail(f"expected a finite number, got {value}")
    if not low <= value <= high:
        raise fail(f"must be between {low:g} and {high:g}, got {value:g}")
    return float(value)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
MIN_DURATION_S = 0.001  # Envoy's durations count milliseconds; less would render as "no timeout"
DAY_S = 86400.0


def parse_duration(value: Any) -> float | None:
    """`500ms`, `1s`, `1.5s`, `2m`, `1h`, or a bare number of seconds → seconds; None if unreadable
    or not a positive finite amount."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            return None
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None


def _duration(high_s: float = DAY_S):  # pragma: no mutate block
    return lambda value: _check_duration(value, high_s)


def _check_duration(value: Any, high_s: float) -> float:
    seconds = parse_duration(value)
    if seconds is None:
        raise fail(f"bad duration {value!r} (use e.g. 500ms, 1s, 1.5s, 2m)")
    if seconds < MIN_DURATION_S:
        raise fail(f"duration {value!r} is shorter than 1ms")
    if seconds > high_s:
        raise fail(f"duration {value!r} is longer than the maximum of {_format_seconds(high_s)}")
    return seconds


def _format_seconds(seconds: float) -> str:
    return f"{seconds / 3600:g}h" if seconds >= 3600 else f"{seconds:g}s"


_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


def _address(value: Any) -> str:
    text = _string(value)
    try:
        ipaddress.ip_address(text)
        return text
    except ValueError:
        pass
    if not _HOSTNAME.match(text):
        raise fail(f"{text!r} is not an IP address or a host name")
    return text


def _choice(*options: str):  # pragma: no mutate block
    return lambda value: _check_choice(value, options)


def _check_choice(value: Any, options: tuple[str, ...]) -> str:
    text = _string(value)
    if text not in options:
        raise fail(f"{text!r} is not one of {', '.join(options)}")
    return text


def _secret(value: Any, info: ValidationInfo) -> Secret:
    """A literal, or `$NAME` / `${NAME}` read from the environment (set and non-empty). Keys must
    be one line without spaces: a key file read with a trailing newline would make every request
    fail upstream."""
    if not isinstance(value, str):
        raise fail(f"expected a string, got {type_name(value)}")
    text = value
    env = (info.context or {}).get("env", {})
    if text.startswith("$"):
        name = text[1:].strip("{}")
        if name not in env or not env[name]:
            raise fail(f"environment variable ${name} is not set")
        secret, where = env[name], f"the value of ${name}"
        source = f"${name}"
    else:
        secret, where, source = text, "the key", "literal"
    if not secret.strip():
        raise fail("must not be empty")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in secret):
        raise fail(f"{where} contains whitespace or a control character (a trailing newline?); "
                   "keys must be one word")
    return Secret(secret, source)


_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")
# Headers the gateway itself sets or that would change how the request is framed or routed.
RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection", "te", "upgrade",
                              "keep-alive", "proxy-connection", "authorization", "x-api-key", "api-key",
                              "anthropic-version", "traceparent", "tracestate"})


def _header_name(value: Any) -> str:
    text = _string(value)
    if not _TOKEN.match(text):
        raise fail(f"{text!r} is not an HTTP header name")
    lowered = text.lower()
    if lowered in RESERVED_HEADERS or lowered.startswith(("x-switchyard-", "x-envoy-", ":")):
        raise fail(f"{text!r} is set by the gateway (credentials: access_key or passthrough_auth; Host: http_host)")
    return lowered


def _header_value(value: Any, info: ValidationInfo) -> Secret:
    """A literal or `$NAME` read from the environment; one line, at most 4 KiB. Kept as a Secret:
    values such as account ids are never printed."""
    if not isinstance(value, str):
        raise fail(f"expected a string, got {type_name(value)}")
    env = (info.context or {}).get("env", {})
    source = "literal"
    text = value
    if value.startswith("$"):
        name = value[1:].strip("{}")
        if name not in env:
            raise fail(f"environment variable ${name} is not set")
        text, source = env[name], f"${name}"
    if any(ord(c) < 32 and c != "\t" or ord(c) == 127 for c in text):
        raise fail("must not contain line breaks or control characters")
    if len(text) > 4096:
        raise fail("is longer than 4096 characters")
    return Secret(text, source)


def _host_header(value: Any) -> str:
    """`host` or `host:port` (IPv6 in brackets), as the Host header carries it."""
    text = _string(value)
    host, sep, port = text.rpartition(":")
    if not sep or "]" in port:
        host, port = text, ""
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise fail(f"{text!r} has an invalid port")
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(bare)
    except ValueError:
        if not _HOSTNAME.match(bare):
            raise fail(f"{text!r} is not a host name (optionally :port)") from None
    return text


Str = Annotated[str, PlainValidator(_string)]
Text = Annotated[str, PlainValidator(_text)]
Bool = Annotated[bool, PlainValidator(_bool)]
Port = Annotated[int, PlainValidator(_port)]
Address = Annotated[str, PlainValidator(_address)]
Duration = Annotated[float, PlainValidator(_duration())]
SecretRef = Annotated[Secret, PlainValidator(_secret)]
HeaderName = Annotated[str, PlainValidator(_header_name)]
HeaderValue = Annotated[Secret, PlainValidator(_header_value)]
HostHeader = Annotated[str, PlainValidator(_host_header)]
PositiveInt = Annotated[int, PlainValidator(_bounded_int(1, 2**31 - 1))]
Count = Annotated[int, PlainValidator(_bounded_int(0, 2**31 - 1))]


def bounded(low: int, high: int) -> Any:  # pragma: no mutate block (run at import)
    return Annotated[int, PlainValidator(_bounded_int(low, high))]


def choice(*options: str) -> Any:  # pragma: no mutate block (run at import)
    return Annotated[str, PlainValidator(_choice(*options))]


def number(low: float, high: float) -> Any:  # pragma: no mutate block (run at import)
    return Annotated[float, PlainValidator(_number(low, high))]


def duration(high_s: float) -> Any:  # pragma: no mutate block (run at import)
    return Annotated[float, PlainValidator(_duration(high_s))]


# --------------------------------------------------------------------------- sections


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Listeners: Plano's list form (v0.4) or the older object form.

class ListenerItem(Section):
    type: choice("model", "prompt", "agent")
    name: Str | None = None
    address: Address | None = None
    port: Port | None = None
    timeout: Duration | None = None
    # Plano keys that Switchyard does not implement (reported as ignored).
    router: Str | None = None
    max_retries: bounded(0, 5) | None = None
    agents: list[Any] | None = None
    input_filters: list[Any] | None = None
    output_filters: list[Any] | None = None


class LegacyListener(Section):
    address: Address | None = None
    port: Port | None = None
    timeout: Duration | None = None
    message_format: choice("openai", "anthropic") | None = None


class LegacyListeners(Section):
    egress_traffic: LegacyListener | None = None
    ingress_traffic: LegacyListener | None = None  # Plano's prompt gateway: ignored


def _listener_form(value: Any) -> str:
    return "@list" if isinstance(value, list) else "@object"


Listeners = Annotated[
    Union[Annotated[list[ListenerItem], Tag("@list")], Annotated[LegacyListeners, Tag("@object")]],
    Discriminator(_listener_form),
]


# Providers and routes.

class InlineRoute(Section):
    name: Str
    description: Text
    examples: list[Text] | None = None


class SelectionPolicy(Section):
    prefer: choice("cheapest", "fastest", "none")


class TopRoute(Section):
    name: Str
    description: Text
    models: list[Str] = Field(min_length=1)
    selection_policy: SelectionPolicy | None = None
    examples: list[Text] | None = None


class LimitsEntry(Section):
    rpm: PositiveInt | None = None
    tpm: PositiveInt | None = None


class PricesEntry(Section):
    input: number(0, 1_000_000) | None = None
    output: number(0, 1_000_000) | None = None
    cached_input: number(0, 1_000_000) | None = None


class ModelInfoEntry(Section):
    context_window: PositiveInt | None = None
    max_output_tokens: PositiveInt | None = None
    unsupported_params: list[Str] | None = None


class ProviderEntry(Section):
    model: Str
    name: Str | None = None
    access_key: SecretRef | None = None
    default: Bool | None = None
    base_url: Str | None = None
    provider_interface: Str | None = None
    routing_preferences: list[InlineRoute] | None = None
    api_version: Str | None = None
    anthropic_version: Str | None = None
    max_tokens: PositiveInt | None = None
    fallbacks: list[Str] | None = None
    limits: LimitsEntry | None = None
    prices: PricesEntry | None = None
    model_info: ModelInfoEntry | None = None
    # Plano's: forward the client's credential instead of access_key; the Host header sent
    # upstream; extra headers sent upstream (values may be $ENV).
    passthrough_auth: Bool | None = None
    http_host: HostHeader | None = None
    headers: dict[HeaderName, HeaderValue] | None = None


class AliasEntry(Section):
    target: Str
    fallbacks: list[Str] | None = None


# Routing.

class SessionCache(Section):
    type: choice("memory", "redis") | None = None
    url: Str | None = None
    tenant_header: Str | None = None


class RoutingSection(Section):
    engine: choice("embedded", "arch-router", "plano-orchestrator", "none") | None = None
    endpoint: Str | None = None
    model: Str | None = None
    timeout: Duration | None = None
    routed_models: list[Str] | None = None
    unknown_model: choice("reject", "route", "default") | None = None
    cache_size: bounded(0, 1_000_000) | None = None
    min_confidence: number(0, 1) | None = None  # a confidence: the best route's share, 0-1
    turn_pinning: Bool | None = None
    harness_envelopes: list[Str] | None = None
    session_ttl: duration(30 * DAY_S) | None = None
    session_max_entries: bounded(1, 1_000_000) | None = None
    # Plano's names for the same settings.
    route_on_user_only: Bool | None = None
    session_ttl_seconds: bounded(1, 30 * 86400) | None = None
    session_cache: SessionCache | None = None
    # Plano keys that Switchyard does not implement (reported as ignored).
    routing_budget: dict[str, Any] | None = None
    llm_provider: Str | None = None


# Gateway.

class ClientKeyEntry(Section):
    name: Str
    key: SecretRef
    limits: LimitsEntry | None = None
    budget: BudgetEntry | None = None
    models: list[Str] | None = None


class BudgetEntry(Section):
    usd: number(0.000001, 1e9)
    period: choice("day", "month") | None = None


ClientKeyEntry.model_rebuild()


def _key_form(value: Any) -> str:
    return "@entry" if isinstance(value, dict) else "@key"


ClientKeyItem = Annotated[
    Union[Annotated[SecretRef, Tag("@key")], Annotated[ClientKeyEntry, Tag("@entry")]],
    Discriminator(_key_form),
]


def _keys_form(value: Any) -> str:
    return "@list" if isinstance(value, list) else "@one"


ClientKeys = Annotated[
    Union[Annotated[list[ClientKeyItem], Tag("@list")], Annotated[SecretRef, Tag("@one")]],
    Discriminator(_keys_form),
]


class GatewayLimits(Section):
    default: LimitsEntry | None = None
    fail_closed: Bool | None = None


class StoreEntry(Section):
    url: Str | None = None
    key_prefix: Str | None = None
    password: SecretRef | None = None


class TracingEntry(Section):
    otlp_endpoint: Str | None = None
    service_name: Str | None = None


class GatewaySection(Section):
    admin_port: Port | None = None
    filter_port: Port | None = None
    workers: bounded(1, 64) | None = None
    metrics_port: Port | None = None
    metrics_address: Address | None = None
    max_request_bytes: bounded(1024, 1024**3) | None = None
    max_response_bytes: bounded(1024, 4 * 1024**3) | None = None
    log_level: choice("debug", "info", "warning", "error") | None = None
    usage_metrics: Bool | None = None
    fast_path: Bool | None = None
    client_keys: ClientKeys | None = None
    limits: GatewayLimits | None = None
    store: StoreEntry | None = None
    tracing: TracingEntry | None = None
    max_connections: bounded(16, 1_000_000) | None = None
    request_headers_timeout: Duration | None = None
    idle_timeout: Duration | None = None
    socket_dir: Str | None = None


class FailoverSection(Section):
    retries: bounded(0, 5) | None = None
    first_byte_timeout: Duration | None = None
    cooldown: Duration | None = None
    failures_before_cooldown: bounded(1, 1_000_000) | None = None


# Plano sections outside Switchyard's scope: their own keys are checked (a typo is still an
# error), their values are not used.

class PlanoTracing(Section):
    random_sampling: Any = None
    trace_arch_internal: Any = None
    opentracing_grpc_endpoint: Any = None
    span_attributes: Any = None
    exporters: Any = None


class PlanoOverrides(Section):
    prompt_target_intent_matching_threshold: Any = None
    optimize_context_window: Any = None
    use_agent_orchestrator: Any = None
    disable_signals: Any = None
    upstream_connect_timeout: Any = None
    upstream_tls_ca_path: Any = None
    llm_routing_model: Any = None
    agent_orchestration_model: Any = None
    orchestrator_model_context_length: Any = None


class PlanoStateStorage(Section):
    type: Any = None
    connection_string: Any = None


class ConfigFile(Section):
    version: Str | None = None
    listeners: Listeners | None = None
    model_providers: list[ProviderEntry] | None = None
    llm_providers: list[ProviderEntry] | None = None
    model_aliases: dict[str, AliasEntry] | None = None
    routing_preferences: list[TopRoute] | None = None
    routing: RoutingSection | None = None
    gateway: GatewaySection | None = None
    failover: FailoverSection | None = None
    # Plano keys that Switchyard does not implement (reported as ignored).
    tracing: PlanoTracing | None = None
    overrides: PlanoOverrides | None = None
    state_storage: PlanoStateStorage | None = None
    agents: Any = None
    filters: Any = None
    endpoints: Any = None
    system_prompt: Any = None
    prompt_targets: Any = None
    ratelimits: Any = None
    mode: Any = None
    prompt_guards: Any = None
    model_metrics_sources: Any = None
    prompt_caching: Any = None


# What each ignored key is, for its warning line.
IGNORED_TOP_LEVEL = {
    "tracing": "Plano's tracing settings (Switchyard's are gateway.tracing)",
    "overrides": "Plano's overrides",
    "state_storage": "Plano's state storage (Switchyard keeps shared state in gateway.store)",
    "agents": "agents",
    "filters": "filter chains",
    "endpoints": "prompt-target endpoints",
    "system_prompt": "the prompt gateway's system prompt",
    "prompt_targets": "prompt targets",
    "ratelimits": "Plano's rate limits (Switchyard's are gateway.limits and per-key limits)",
    "mode": "Plano's mode",
    "prompt_guards": "prompt guards",
    "model_metrics_sources": "model metrics sources",
    "prompt_caching": "prompt caching settings",
}
