"""Failover across providers: rewriting each attempt of a retried request for its own provider.

Envoy serves a model with fallbacks through an aggregate cluster of its chain's members; its
retry policy moves each retry to the next priority (the same model again, then the next model).
Retries re-run only *upstream* HTTP filters, so the aggregate cluster carries an upstream ext_proc
(its gRPC streams carry the initial metadata `x-switchyard-attempt: <chain>`), and each member's
endpoints carry metadata naming the member, which Envoy sends as an attribute of the picked host.
This module answers those streams: the client's request in, the member's path, credentials and
body out, and the answer translated back when the member speaks the other API family.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import AsyncIterator

import orjson
from envoy.config.core.v3.base_pb2 import Metadata
from envoy.service.ext_proc.v3.external_processor_pb2 import (
    BodyMutation,
    BodyResponse,
    CommonResponse,
    ProcessingResponse,
)
from google.protobuf import text_format

from filter import ext_proc
from filter.catalog import Catalog
from filter.config import Chain, Config, Provider
from filter.errors import ClientApi, GatewayError, error_body
from filter.inbound import ClientRequest, encode_json, parse_client_request
from filter.metrics import Metrics
from filter.response_rewriter import ResponseRewriter
from filter.responses_store import StoredResponses
from filter.translation import TranslationError
from filter.upstream import ANTHROPIC_HEADERS, CLIENT_AUTH_HEADERS, build_upstream_request, client_named

log = logging.getLogger("switchyard.failover")

ATTEMPT_METADATA = "x-switchyard-attempt"
# Envoy keeps one request header map across retries, so an attempt's header changes are seen by
# the next one; the original request body, though, is replayed to every attempt. What each
# attempt must know of the client therefore travels in the body, in this envelope.
ENVELOPE_KEY = "switchyard_attempt"
ENVELOPE_HEADERS = ("anthropic-version", "anthropic-beta")


def attempt_envelope(request: ClientRequest, api: ClientApi, query: str, headers: dict[str, str],
                     key_name: str | None = None) -> bytes:
    """One line of what the attempts must know of the client, then the request as the client's
    body was parsed: side by side, not nested, so a chain takes as deep a body as one model.
    `key_name`: the client key's (stored Responses answers are kept under it)."""
    client = {"api": api.value, "query": query, "headers": {k: headers[k] for k in ENVELOPE_HEADERS if k in headers},
              "key": key_name}
    return orjson.dumps({ENVELOPE_KEY: client}) + b"\n" + encode_json(request.body)


def open_envelope(raw: bytes) -> tuple[ClientApi, str, dict[str, str], bytes]:
    line, _, body = raw.partition(b"\n")  # orjson writes no raw newline
    client = orjson.loads(line)[ENVELOPE_KEY]
    return ClientApi(client["api"]), client["query"], client["headers"], body


def envelope_key_name(raw: bytes) -> str | None:
    return orjson.loads(raw.partition(b"\n")[0])[ENVELOPE_KEY].get("key")


@dataclass(slots=True)
class Attempt:
    member: Provider
    chain: Chain | None
    number: int  # 1 for the first try (x-envoy-attempt-count)
    rewriter: ResponseRewriter | None = None
    answered: bool = False
    started: float = 0.0
    fitted: str = ""  # what this attempt's body changed for its model (x-switchyard-fitted)
    key_name: str | None = None  # the client key's name, from the envelope


def _client_api(raw: bytes) -> ClientApi:
    """The client's API family from an envelope, for an error in its shape (OpenAI's if unreadable)."""
    try:
        return open_envelope(raw)[0]
    except (ValueError, KeyError, TypeError):
        return ClientApi.CHAT


def picked_member(message) -> str | None:
    """The chain member Envoy picked for this attempt, from the host's metadata attribute."""
    attributes = message.attributes.get("envoy.filters.http.ext_proc")
    if attributes is None or "xds.upstream_host_metadata" not in attributes.fields:
        return None
    metadata = Metadata()
    try:
        text_format.Parse(attributes.fields["xds.upstream_host_metadata"].string_value, metadata)
    except text_format.ParseError:
        return None
    member = metadata.filter_metadata.get("switchyard")
    return member.fields["member"].string_value if member and "member" in member.fields else None


def chain_of(context) -> str | None:
    """The chain an attempt stream is for, or None for the downstream filter's own streams."""
    for key, value in context.invocation_metadata() or ():
        if key == ATTEMPT_METADATA:
            return value
    return None


class AttemptRewriter:
    def __init__(self, config: Config, metrics: Metrics, catalog: Catalog | None = None,
                 stored_responses: StoredResponses | None = None):
        self.config = config
        self.metrics = metrics
        self.catalog = catalog if catalog is not None else Catalog.of(config)
        self.stored_responses = stored_responses or StoredResponses(None)
        self._chains = {chain.name: chain for chain in config.chains}

    async def process(self, chain_name: str, messages: AsyncIterator) -> AsyncIterator[ProcessingResponse]:
        chain = self._chains.get(chain_name)
        attempt: Attempt | None = None
        async for message in messages:
            phase = message.WhichOneof("request")
            if phase == "request_headers":
                member = self.config.by_slug.get(picked_member(message) or "")
                if chain is None or member is None:  # removed by a reload while Envoy still had it
                    yield ext_proc.immediate(503, b'{"error": {"message": "model is no longer configured", '
                                                  b'"type": "server_error", "param": null, "code": null}}')
                    return
                headers = ext_proc.header_values(message.request_headers)
                attempt = Attempt(member, chain, int(headers.get("x-envoy-attempt-count", "1") or 1),
                                  started=time.monotonic())
                yield ext_proc.CONTINUE_HEADERS
            elif attempt is None:
                continue
            elif phase == "request_body":
                yield self._rewrite_request(attempt, message.request_body.body)
            elif phase == "response_headers":
                attempt.answered = True
                yield self._on_response_headers(attempt, message.response_headers)
            elif phase == "response_body":
                body = message.response_body
                out = attempt.rewriter.on_body(body.body, body.end_of_stream) if attempt.rewriter else body.body
                await self.stored_responses.keep(attempt.rewriter, attempt.key_name)
                yield ext_proc.replace_response_chunk(out)
        if attempt is not None and not attempt.answered:
            # No response at all: refused connection, reset, or no first byte within the per-try
            # timeout. Envoy moves on to the next attempt if one is left.
            timed_out = time.monotonic() - attempt.started >= self.config.failover.first_byte_timeout_s * 0.9
            self._count_failover(attempt, "timeout" if timed_out else "connect_failure")

    def _rewrite_request(self, attempt: Attempt, raw: bytes) -> ProcessingResponse:
        try:
            api, query, client_headers, body = open_envelope(raw)
            attempt.key_name = envelope_key_name(raw)
            request = parse_client_request(api, body)
            member = attempt.member
            upstream = build_upstream_request(request, member, client_headers, query, self.catalog.spec(member),
                                              client_named_model=client_named(request, member, self.config.aliases))
        except GatewayError as exc:  # e.g. a translation one level too deep for this member
            return ext_proc.immediate(exc.status, error_body(_client_api(raw), exc))
        except (TranslationError, ValueError, KeyError) as exc:
            # The downstream filter checked this body already; refuse rather than send it raw.
            log.warning("attempt for %s cannot be rewritten: %s", attempt.member.slug, exc)
            error = GatewayError(400, f"the request cannot be sent to the fallback model {attempt.member.slug}")
            return ext_proc.immediate(400, error_body(_client_api(raw), error))
        if upstream.translation is not None:
            attempt.rewriter = ResponseRewriter(upstream.translation, stream=request.stream, model=attempt.member.slug,
                                                responses=upstream.responses,
                                                max_bytes=self.config.gateway.max_response_bytes,
                                                usage_chunk=upstream.usage_chunk)
        attempt.fitted = ", ".join(upstream.fitted)
        # Whatever an earlier attempt set for its own provider is overwritten or removed here.
        set_names = {name for name, _ in upstream.set_headers}
        stale = [h for h in (*CLIENT_AUTH_HEADERS, *ANTHROPIC_HEADERS, "accept-encoding") if h not in set_names]
        return ProcessingResponse(
            request_body=BodyResponse(
                response=CommonResponse(
                    header_mutation=ext_proc.mutation(upstream.set_headers, {*upstream.remove_headers, *stale}),
                    body_mutation=BodyMutation(body=upstream.body),
                )
            )
        )

    def _on_response_headers(self, attempt: Attempt, message) -> ProcessingResponse:
        status = int(ext_proc.header_values(message).get(":status", "0"))
        if status in self.config.failover.retry_on_status and attempt.number < self._attempts(attempt):
            self._count_failover(attempt, f"http_{status}")
            return ext_proc.CONTINUE_RESPONSE_HEADERS  # Envoy discards this answer and retries
        set_headers = [("x-switchyard-model", attempt.member.slug)]
        if attempt.fitted:
            set_headers.append(("x-switchyard-fitted", attempt.fitted))
        if attempt.rewriter is None:
            return ext_proc.response_headers(set_headers, stream_body=False)
        more, remove = attempt.rewriter.on_headers(status)
        return ext_proc.response_headers(set_headers + more, remove, stream_body=True)

    def _attempts(self, attempt: Attempt) -> int:
        members = len(attempt.chain.members) if attempt.chain else 1
        return members * self.config.failover.attempts_per_model

    def _count_failover(self, attempt: Attempt, reason: str) -> None:
        if attempt.chain is None or attempt.number >= self._attempts(attempt):
            return  # the last attempt failing is the request failing, not a failover
        per_model = self.config.failover.attempts_per_model
        members = attempt.chain.members
        # The next attempt retries this model while it has tries left, then moves down the chain
        # (a model in its cool-down is skipped by Envoy; the label names the configured next one).
        index = min((attempt.number - 1) // per_model, len(members) - 1)
        retry_same = attempt.number % per_model != 0
        target = members[index] if retry_same else members[min(index + 1, len(members) - 1)]
        log.info("attempt %d on %s failed (%s); next: %s", attempt.number, attempt.member.slug, reason, target.slug)
        self.metrics.failovers.labels(attempt.member.slug, target.slug, reason).inc()
