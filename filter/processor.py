"""The ext_proc service: one gRPC stream per HTTP request, read top to bottom here.

Envoy sends the request headers, then the whole buffered body; the filter answers with either
an immediate response (errors, /v1/models, the routing decision endpoint, the echo provider) or a
rewritten request plus the `x-switchyard-provider` header that makes Envoy pick the provider's
route. The response headers of forwarded requests come back too: an answer that must be translated
between API families is rewritten here, and the body of every SSE answer is relayed by the filter
(filter/stream_guard.py), which ends it in the client's format if it outlives the listener timeout.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import AsyncIterator

import orjson
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc

from filter import echo, ext_proc
from filter.catalog import Catalog
from filter.config import Chain, Config, Provider
from filter.errors import ClientApi, GatewayError, error_body, request_too_large, unauthorized
from filter.governance import ModelAccess
from filter.failover import AttemptRewriter, attempt_envelope, chain_of
from filter.count_tokens import count_answer, estimate_input_tokens
from filter.embeddings import build_embeddings_request, embeddings_decision
from filter.inbound import (
    PREFERENCE_METADATA_KEY,
    ClientRequest,
    client_credentials,
    parse_client_request,
    parse_embeddings_request,
)
from filter.latency import LatencyBoard
from filter.metrics import Metrics
from filter.providers import Interface
from filter.resolve import Decision, DecisionKind, RoutingPlan, decide_route, resolve
from filter.response_rewriter import ResponseRewriter
from filter.responses_store import StoredResponses
from filter.routing import Router
from filter.stream_guard import StreamGuard, fast_stream_api, is_event_stream, relay_fast_stream, stream_deadline
from filter.sessions import AFFINITY_HEADER, Routed, Sessions
from filter.state import Store
from filter.tracing import SpanExporter, TraceContext, start_trace
from filter.translation import ChatStreamToMessages, TranslationError, chat_response_to_messages
from filter.upstream import (
    CLIENT_AUTH_HEADERS,
    ResponseTranslation,
    UpstreamRequest,
    asks_for_usage,
    build_upstream_request,
    responses_context,
    upstream_api,
)

log = logging.getLogger("switchyard.filter")

ROUTING_HEADER = "x-switchyard-provider"
# Set by Envoy's governance extension on its own refusals (envoy/switchyard_governance.c).
LIMITED_HEADER = "x-switchyard-limited"
# Decisions where the client named the model: a native request to it is sent as written.
NAMED = (DecisionKind.LITERAL, DecisionKind.ALIAS)


OFF_LOOP_PARSE_BYTES = 16 * 1024
PREFERENCE_MARK = PREFERENCE_METADATA_KEY.encode()
INTERNAL_ERROR = GatewayError(500, "the gateway failed on this request (logged); nothing was sent upstream",
                              code="internal_error")


class Endpoint(Enum):
    PROXY = "proxy"
    MODELS = "models"
    DECISION = "decision"
    EMBEDDINGS = "embeddings"
    COUNT_TOKENS = "count_tokens"


# path → (method, client API, what the gateway does with it)
ENDPOINTS: dict[str, tuple[str, ClientApi, Endpoint]] = {
    "/v1/chat/completions": ("POST", ClientApi.CHAT, Endpoint.PROXY),
    "/v1/messages": ("POST", ClientApi.MESSAGES, Endpoint.PROXY),
    "/v1/responses": ("POST", ClientApi.RESPONSES, Endpoint.PROXY),
    "/v1/models": ("GET", ClientApi.CHAT, Endpoint.MODELS),
    "/v1/embeddings": ("POST", ClientApi.CHAT, Endpoint.EMBEDDINGS),
    "/v1/messages/count_tokens": ("POST", ClientApi.MESSAGES, Endpoint.COUNT_TOKENS),
    "/routing/v1/chat/completions": ("POST", ClientApi.CHAT, Endpoint.DECISION),
    "/routing/v1/messages": ("POST", ClientApi.MESSAGES, Endpoint.DECISION),
    "/routing/v1/responses": ("POST", ClientApi.RESPONSES, Endpoint.DECISION),
}


@dataclass(slots=True)
class Exchange:
    """What one HTTP request's stream remembers between ext_proc messages."""

    api: ClientApi = ClientApi.CHAT
    endpoint: Endpoint = Endpoint.PROXY
    query: str = ""
    path: str = ""  # as the client sent it without the query, for the access log
    headers: dict[str, str] = field(default_factory=dict)
    rewriter: ResponseRewriter | None = None  # set when the answer must be translated
    trace: TraceContext | None = None
    client: str | None = None  # the name of the client key presented (gateway.client_keys)
    started: float = 0.0  # time.monotonic() at the request headers: a stream's deadline counts from it
    model: str = ""  # the model that serves it, for the metrics of a cut stream
    guard: StreamGuard | None = None  # set when the filter relays an SSE answer
    refusal: tuple[GatewayError, tuple] | None = None  # an error decided on the headers, answered after the body


class Processor(external_processor_pb2_grpc.ExternalProcessorServicer):
    def __init__(self, config: Config, router: Router | None, metrics: Metrics, spans: SpanExporter | None = None,
                 store: Store | None = None, latency: LatencyBoard | None = None):
        self.metrics = metrics
        self.spans = spans
        self.store = store  # the shared store (filter/state/); None: no sessions
        self.stored_responses = StoredResponses(store)  # previous_response_id for translated answers
        self.latency = latency or LatencyBoard(None)  # Envoy's timings per model, for `prefer: fastest`
        self.apply(config, router)

    def apply(self, config: Config, router: Router | None) -> None:
        """Switch to a (re)loaded configuration: everything derived from it is rebuilt here and
        swapped in one step, so a request sees either the old or the new state, never a mix."""
        models_body = _models_list(config)
        client_keys = [(k.key.reveal().encode(), k.name) for k in config.gateway.client_keys]
        catalog = Catalog.of(config)
        attempts = AttemptRewriter(config, self.metrics, catalog, self.stored_responses)
        sessions = Sessions(config.routing, self.store)
        access = ModelAccess(config)  # the models, aliases and routes each client key may use
        (self.config, self.router, self.catalog, self.attempts, self.sessions,
         self._models_body, self._client_keys, self.access) = (config, router, catalog, attempts, sessions,
                                                               models_body, client_keys, access)

    async def Process(self, request_iterator: AsyncIterator, context) -> AsyncIterator:  # noqa: N802 (gRPC name)
        chain = chain_of(context)
        if chain is not None:  # an attempt of a failover chain, from the aggregate cluster's filter
            async for reply in self.attempts.process(chain, request_iterator):
                yield reply
            return
        fast_stream = fast_stream_api(context)
        if fast_stream is not None:  # the answer to a stream Envoy forwarded alone (the fast path)
            async for reply in relay_fast_stream(fast_stream, request_iterator, self.stream_guard):
                yield reply
            return
        exchange = Exchange()
        async for message in request_iterator:
            phase = message.WhichOneof("request")
            if phase in ("request_headers", "request_body"):
                try:
                    if phase == "request_headers":
                        reply = self.on_request_headers(exchange, message.request_headers)
                    else:
                        reply = await self.on_request_body(exchange, message.request_body.body)
                except Exception:  # a bug must not reach the client as an internal message
                    log.exception("request failed inside the gateway; answered 500, nothing sent upstream")
                    reply = self._error(exchange, INTERNAL_ERROR)
            elif phase == "response_headers":
                yield self.on_response_headers(exchange, message.response_headers)
                if exchange.guard is not None:  # an SSE answer: the filter relays it to its end
                    async for reply in exchange.guard.relay(request_iterator):
                        yield reply
                    return
                continue
            elif phase == "response_body":
                body = message.response_body
                reply = self.on_response_body(exchange, body.body, body.end_of_stream)
                await self.stored_responses.keep(exchange.rewriter, exchange.client)
            else:  # trailers: never asked for
                continue
            yield reply

    # ------------------------------------------------------------------ request headers

    def on_request_headers(self, ex: Exchange, message):
        ex.started = time.monotonic()
        ex.headers = ext_proc.header_values(message)
        ex.trace = start_trace(ex.headers.get("traceparent"))
        path, _, query = ex.headers.get(":path", "/").partition("?")
        ex.path = path  # logged: never the query, which may carry a key (?key=…)
        ex.query = f"?{query}" if query else ""
        if path.startswith("/v1/messages") or path.startswith("/routing/v1/messages"):
            ex.api = ClientApi.MESSAGES  # so that even a 401 or 404 comes in Anthropic's shape
        if self._client_keys:
            ex.client = self._authorized(ex.headers)
        if self._client_keys and ex.client is None:
            return self._error(ex, unauthorized())
        route = ENDPOINTS.get(path.rstrip("/") or "/")
        if route is None:
            return self._refuse(ex, message, GatewayError(404, f"unknown path {path!r}; Switchyard serves "
                                                               f"{', '.join(ENDPOINTS)}", code="not_found"))
        method, ex.api, ex.endpoint = route
        if ex.headers.get(":method") != method:
            return self._refuse(ex, message, GatewayError(405, f"{path} accepts {method} only",
                                                          code="method_not_allowed"), headers=(("allow", method),))
        if ex.endpoint is Endpoint.MODELS:
            return ext_proc.immediate(200, self._models_body, metadata=self._base_metadata(ex))
        content_type = ex.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if content_type != "application/json":
            return self._refuse(ex, message, GatewayError(415, f"content-type must be application/json, got "
                                                               f"{content_type!r}", code="unsupported_media_type"))
        encoding = ex.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):  # gzip was decoded by Envoy already
            return self._refuse(ex, message, GatewayError(415, f"content-encoding {encoding!r} is not supported: send "
                                                               "the body uncompressed or gzip-compressed",
                                                          code="unsupported_media_type"))
        if message.end_of_stream:
            return self._error(ex, GatewayError(400, "request body is empty: expected a JSON object"))
        # A proxied answer's headers come back: it may need translating, or be a stream to guard.
        return ext_proc.continue_request_headers(watch_response=ex.endpoint is Endpoint.PROXY)

    def _refuse(self, ex: Exchange, message, error: GatewayError, headers: tuple = ()):
        """An error decided on the headers of a request that has a body: answered once the body is in,
        so that Envoy has read the whole request whatever the timing (its access log then counts the
        same bytes on every path). A client without a valid key is refused at once instead."""
        if message.end_of_stream:
            return self._error(ex, error, headers=headers)
        ex.refusal = (error, headers)
        return ext_proc.continue_request_headers(watch_response=False)

    def _authorized(self, headers: dict[str, str]) -> str | None:
        """The name of the client key presented, or None. Either credential may be the valid one
        (an SDK may send a stale x-api-key beside Bearer). Every pair is compared in constant
        time: no early exit that leaks which one is close."""
        matches = [name for given in client_credentials(headers) for key, name in self._client_keys
                   if hmac.compare_digest(given, key)]
        return matches[0] if matches else None

    # ------------------------------------------------------------------ request body: the decision

    async def on_request_body(self, ex: Exchange, raw: bytes):
        if len(raw) > self.config.gateway.max_request_bytes:
            return self._error(ex, request_too_large(self.config.gateway.max_request_bytes))
        if ex.refusal is not None:
            return self._error(ex, ex.refusal[0], headers=ex.refusal[1])
        if ex.endpoint is Endpoint.EMBEDDINGS:
            return self._embeddings(ex, raw)
        try:
            if len(raw) > OFF_LOOP_PARSE_BYTES and PREFERENCE_MARK in raw:
                # Per-request preferences as YAML take milliseconds per kilobyte: not on the loop.
                request = await asyncio.to_thread(parse_client_request, ex.api, raw)
            else:
                request = parse_client_request(ex.api, raw)
            if ex.api is ClientApi.RESPONSES:
                await self.stored_responses.expand(request.body, ex.client)
            routed = await self.decide(request, ex)
        except GatewayError as exc:
            return self._error(ex, exc)

        decision, router_ms = routed.decision, routed.router_ms
        provider = decision.provider
        ex.model = provider.slug
        metadata = {**self._base_metadata(ex), "model": provider.slug, "route": decision.route,
                    "decision": decision.kind.value, "provider": provider.provider,
                    "router_ms": round(router_ms, 3) if router_ms is not None else None, **_session_metadata(routed)}
        log.debug("decision %s %s route=%s session=%s", decision.kind.value, provider.slug, decision.route,
                  routed.outcome and routed.outcome.value)

        if provider.wildcard:
            metadata["model_label"] = f"{provider.provider}/*"  # metrics count the entry, not each id
        if ex.endpoint is Endpoint.DECISION:
            return ext_proc.immediate(200, decision_answer(routed, ex.trace, metadata["router_ms"]), metadata=metadata)

        if ex.endpoint is Endpoint.COUNT_TOKENS:
            return await self._count_tokens(ex, request, decision, metadata)
        if provider.interface is Interface.ECHO:
            reply = self._echo(ex, request, routed, metadata)
            await self.stored_responses.keep(ex.rewriter, ex.client)
            return reply
        if decision.chain is not None:
            try:
                return self._forward_to_chain(ex, request, decision.chain, metadata)
            except GatewayError as exc:
                return self._error(ex, exc)

        try:
            upstream = build_upstream_request(request, provider, ex.headers, ex.query, self.catalog.spec(provider),
                                              client_named_model=decision.kind in NAMED)
        except TranslationError as exc:  # a request the provider's API cannot express
            return self._error(ex, GatewayError(400, f"{provider.slug} cannot take this request: {exc.message}",
                                                param=exc.param))
        except GatewayError as exc:  # e.g. translated one level deeper than the gateway writes
            return self._error(ex, exc)
        if upstream.translation is not None:
            ex.rewriter = ResponseRewriter(upstream.translation, stream=request.stream, model=provider.slug,
                                           responses=upstream.responses,
                                           max_bytes=self.config.gateway.max_response_bytes,
                                           usage_chunk=upstream.usage_chunk)
        # The answer's wire format, for counting its tokens (filter/observer.py).
        metadata["upstream_api"] = upstream_api(provider, ex.api).value
        return self._forward(ex, provider, upstream, metadata)

    def _forward(self, ex: Exchange, provider: Provider, upstream: UpstreamRequest, metadata: dict):
        if upstream.fitted:  # → the x-switchyard-fitted header and the access log
            metadata["fitted"] = ", ".join(upstream.fitted)
        return ext_proc.forward_request(
            [(ROUTING_HEADER, provider.cluster), *upstream.set_headers,
             ("traceparent", ex.trace.traceparent(ex.trace.upstream_span))],
            [*upstream.remove_headers, AFFINITY_HEADER],  # the gateway's, not the provider's
            upstream.body,
            metadata=metadata,
        )

    def _embeddings(self, ex: Exchange, raw: bytes):
        """POST /v1/embeddings: the named model's own endpoint (filter/embeddings.py), no failover."""
        try:
            request = parse_embeddings_request(raw)
            decision = embeddings_decision(self.config, request)
            self.access.check(ex.client, request.model, decision)
        except GatewayError as exc:
            return self._error(ex, exc)
        provider = decision.provider
        metadata = {**self._base_metadata(ex), "model": provider.slug, "decision": decision.kind.value,
                    "provider": provider.provider, "upstream_api": ClientApi.CHAT.value}
        return self._forward(ex, provider, build_embeddings_request(request, provider, ex.headers, ex.query), metadata)

    async def _count_tokens(self, ex: Exchange, request: ClientRequest, decision: Decision, metadata: dict):
        """POST /v1/messages/count_tokens: Anthropic counts for its own models; for any other the
        gateway answers an estimate (filter/count_tokens.py), and says so in a header."""
        provider = decision.provider
        if provider.interface is Interface.ANTHROPIC:
            upstream = build_upstream_request(request, provider, ex.headers, ex.query, self.catalog.spec(provider),
                                              client_named_model=decision.kind in NAMED,
                                              endpoint="messages/count_tokens")
            return self._forward(ex, provider, upstream, {**metadata, "upstream_api": ClientApi.MESSAGES.value})
        count = estimate_input_tokens(request.body)  # linear in the body, which the gateway bounds
        return ext_proc.immediate(200, count_answer(count), metadata=metadata,
                                  headers=[("x-switchyard-model", provider.slug), ("x-switchyard-token-count", "estimate")])

    def _forward_to_chain(self, ex: Exchange, request: ClientRequest, chain: Chain, metadata: dict):
        """A model with fallbacks: Envoy's retries walk the chain, and each attempt is rewritten
        for its member by the attempt rewriter (filter/failover.py). The client's request travels
        in an envelope with what the attempts need to know of the client."""
        body = attempt_envelope(request, ex.api, ex.query, ex.headers, ex.client)
        # Envoy reads token counts after the attempt rewriter translated the answer: the client's format.
        metadata.update(upstream_api=ex.api.value, chain=chain.name)
        return ext_proc.forward_request(
            [(ROUTING_HEADER, chain.name), ("content-length", str(len(body))),
             ("traceparent", ex.trace.traceparent(ex.trace.upstream_span))],
            [*CLIENT_AUTH_HEADERS, AFFINITY_HEADER],
            body,
            metadata=metadata,
        )

    async def decide(self, request: ClientRequest, ex: Exchange) -> Routed:
        outcome = resolve(self.config, request.model, request.preferences, self.latency.snapshot())
        # A client key restricted to some models: a 403, or only the routes it may use.
        outcome = self.access.narrow(ex.client, request.model, outcome)
        if isinstance(outcome, Decision):
            return Routed(outcome, None)
        # Preference routing, once per user turn of an agent loop (filter/sessions/).
        routed = await self.sessions.decide(outcome, ex.api, request.body, request.model, ex.headers, ex.client,
                                            lambda view: self._route(outcome, view, ex.trace))
        if routed.outcome is not None:
            self.metrics.session(routed.outcome.value)
        self.access.check(ex.client, request.model, routed.decision)  # a pinned model too
        return routed

    async def _route(self, plan: RoutingPlan, view: list[dict], trace: TraceContext) -> tuple[Decision, float]:
        """Ask the router about `view`, the part of the conversation it may read."""
        if self.router is None:
            return decide_route(plan, None), 0.0
        started = time.time_ns()
        headers = {"traceparent": trace.traceparent(trace.router_span)}
        answer = await self.router.choose(plan.routes, view, headers)
        engine = self.router.engine.name
        self.metrics.router(engine, answer.outcome, answer.elapsed_ms / 1000.0)
        if self.spans is not None:
            self.spans.span("switchyard.routing", trace.trace_id, trace.router_span, trace.request_span, started,
                            time.time_ns(), {"switchyard.router.engine": engine, "switchyard.router.outcome": answer.outcome,
                                             "switchyard.route": answer.route or ""},
                            error=answer.outcome in ("timeout", "error"))
        return decide_route(plan, answer.route), answer.elapsed_ms

    def _echo(self, ex: Exchange, request: ClientRequest, routed: Routed, metadata: dict):
        decision = routed.decision
        provider = decision.provider
        text = echo.echo_text(request, provider.slug, decision.route)
        headers = [("x-switchyard-model", provider.slug)]
        if decision.route:
            headers.append(("x-switchyard-route", decision.route))
        if routed.session is not None:
            headers += [("x-switchyard-session", routed.session), ("x-switchyard-pinned", metadata["pinned"])]
        if ex.api is ClientApi.RESPONSES:  # the echo's chat answer, translated as a provider's would be
            ex.rewriter = ResponseRewriter(ResponseTranslation.CHAT_TO_RESPONSES, stream=request.stream,
                                           model=provider.model_id, responses=responses_context(request.body))
            ex.rewriter.on_headers(200)
            made = echo.echo_stream if request.stream else echo.echo_completion
            body = ex.rewriter.on_body(made(text, provider.model_id), True)
            content_type = "text/event-stream" if request.stream else "application/json"
            return ext_proc.immediate(200, body, content_type=content_type, headers=headers, metadata=metadata)
        if request.stream:  # a Chat client gets the usage chunk only when it asked, as from OpenAI
            body = echo.echo_stream(text, provider.model_id, usage=ex.api is not ClientApi.CHAT or asks_for_usage(request.body))
            if ex.api is ClientApi.MESSAGES:
                translator = ChatStreamToMessages(model=provider.model_id)
                body = translator.feed(body) + translator.finish()
            return ext_proc.immediate(200, body, content_type="text/event-stream", headers=headers, metadata=metadata)
        body = echo.echo_completion(text, provider.model_id)
        if ex.api is ClientApi.MESSAGES:
            body = orjson.dumps(chat_response_to_messages(orjson.loads(body), model=provider.model_id))
        return ext_proc.immediate(200, body, headers=headers, metadata=metadata)

    # ------------------------------------------------------------------ response: translation only

    def on_response_headers(self, ex: Exchange, message):
        """The answer's headers. An SSE answer's body is relayed by `ex.guard` (translated if need
        be), which ends it if it outlives the listener timeout; any other is translated chunk by
        chunk (`on_response_body`) or skipped."""
        headers = ext_proc.header_values(message)
        if LIMITED_HEADER in headers:  # a limit's refusal is in the client's format already
            return ext_proc.response_headers(stream_body=False)
        status = int(headers.get(":status", "200"))
        set_headers, remove_headers = ex.rewriter.on_headers(status) if ex.rewriter is not None else ((), ())
        if is_event_stream(status, headers.get("content-type")):
            ex.guard = self.stream_guard(ex.api, ex.started, ex.model, ex.rewriter)
            return ext_proc.relayed_response_headers(set_headers, remove_headers)
        return ext_proc.response_headers(set_headers, remove_headers, stream_body=ex.rewriter is not None)

    def on_response_body(self, ex: Exchange, chunk: bytes, end_of_stream: bool):
        assert ex.rewriter is not None  # the body phase is only turned on for rewritten answers
        return ext_proc.replace_response_chunk(ex.rewriter.on_body(chunk, end_of_stream))

    def stream_guard(self, api: ClientApi, started: float, model: str,
                     rewriter: ResponseRewriter | None = None) -> StreamGuard:
        """The relay of one SSE answer's body, with its deadline."""
        timeout = self.config.listener.timeout_s

        def cut() -> None:
            log.warning("%s stream from %s still running at the listener timeout (%gs): ended by the gateway",
                        api.value, model or "?", timeout)
            if not self.config.gateway.usage_metrics:  # otherwise Envoy's metrics extension counts it
                self.metrics.stream_cut(api.value, model)

        keep = (lambda: self.stored_responses.keep(rewriter)) if rewriter is not None else None
        return StreamGuard(api, stream_deadline(started, timeout), timeout, rewriter,
                           self.config.gateway.max_response_bytes, cut, keep)

    # ------------------------------------------------------------------ helpers

    def _error(self, ex: Exchange, error: GatewayError, headers=()):
        return ext_proc.immediate(error.status, error_body(ex.api, error), headers=headers,
                                  details=f"switchyard_{error.code or 'bad_request'}", metadata=self._base_metadata(ex))

    @staticmethod
    def _base_metadata(ex: Exchange) -> dict:
        """What Envoy's access log (and so the metrics and spans, filter/observer.py) learns of every
        request, answered here or forwarded."""
        metadata = {"api": ex.api.value, "path": ex.path}
        if ex.client is not None:  # the key's name: logs, metrics and limits read it
            metadata["client"] = ex.client
        if ex.trace is not None:
            metadata.update(ex.trace.as_metadata())
        return metadata


def decision_answer(routed: Routed, trace: TraceContext, router_ms: float | None) -> bytes:
    """The decision endpoint's answer, in Plano's shape (`models`: the ranked models, first serves,
    the next on 429/5xx; `route`; `trace_id`; `session_id`, `pinned`) plus Switchyard's own
    (`model`, `decision`, `router_ms`)."""
    decision = routed.decision
    return orjson.dumps({
        "models": [p.slug for p in decision.candidates],
        "route": decision.route,
        "trace_id": trace.trace_id,
        "session_id": routed.session,
        "pinned": routed.pinned,
        "model": decision.provider.slug,
        "decision": decision.kind.value,
        "router_ms": router_ms,
    })


def _session_metadata(routed: Routed) -> dict:
    """For `x-switchyard-session` / `x-switchyard-pinned` (set by Envoy) and the access log."""
    if routed.session is None:
        return {}
    return {"session": routed.session, "pinned": "true" if routed.pinned else "false",
            "session_outcome": routed.outcome.value if routed.outcome else None}


def _models_list(config: Config) -> bytes:
    """GET /v1/models: providers' models and aliases in OpenAI's list format, built once."""
    def entry(name: str, owner: str) -> dict:
        return {"id": name, "object": "model", "created": 0, "owned_by": owner}

    data = [entry(p.slug, p.provider) for p in config.providers]
    data += [entry(alias, provider.provider) for alias, provider in config.aliases.items()]
    return orjson.dumps({"object": "list", "data": data})

