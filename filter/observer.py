"""Spans from Envoy's access log, off the request path (with `gateway.tracing` only).

Envoy's gRPC access logger (`envoy.access_loggers.http_grpc`) streams one entry per finished
request to the filter workers, in batches, after the client has its answer. An entry carries what
Envoy measured (status, the upstream's first and last byte) and the dynamic metadata of the
request: the decision (`switchyard`) the filter or the fast path set, with its trace and span
ids. The request and upstream-call spans are built from it. Metrics are not counted here: Envoy
counts them itself (envoy/switchyard_metrics.c).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import AsyncIterator

from envoy.service.accesslog.v3 import als_pb2, als_pb2_grpc

from filter.resolve import DecisionKind
from filter.tracing import SpanExporter

log = logging.getLogger("switchyard.observer")

MODEL_HEADER = "x-switchyard-model"
NAMESPACE = "switchyard"


@dataclass(frozen=True, slots=True)
class Served:
    """Who served a request, as its spans name it."""

    client_api: str
    provider: str
    model: str
    decision: str
    route: str
    client: str = ""  # the client key's name (gateway.client_keys), never the key


def span_attributes(served: Served, status: int, path: str) -> dict[str, str | int]:
    attributes: dict[str, str | int] = {
        "http.response.status_code": status, "url.path": path, "switchyard.client_api": served.client_api,
        "switchyard.model": served.model, "switchyard.decision": served.decision, "switchyard.route": served.route}
    if served.client:
        attributes["switchyard.client"] = served.client
    return attributes


def _fields(metadata, namespace: str) -> dict:
    struct = metadata.filter_metadata.get(namespace)
    if struct is None:
        return {}
    out = {}
    for key, value in struct.fields.items():
        kind = value.WhichOneof("kind")
        out[key] = value.string_value if kind == "string_value" else value.number_value if kind == "number_value" \
            else value.bool_value if kind == "bool_value" else None
    return out


def _seconds(duration) -> float:
    return duration.seconds + duration.nanos / 1e9


def _ns(timestamp) -> int:
    return timestamp.seconds * 1_000_000_000 + timestamp.nanos


class ResponseObserver(als_pb2_grpc.AccessLogServiceServicer):
    def __init__(self, spans: SpanExporter | None):
        self.spans = spans

    async def StreamAccessLogs(self, request_iterator: AsyncIterator, context) -> als_pb2.StreamAccessLogsResponse:  # noqa: N802
        async for message in request_iterator:
            if self.spans is None:
                continue
            for entry in message.http_logs.log_entry:
                try:
                    self.record(entry)
                except Exception:  # one odd entry must not end the stream (and lose the rest)
                    log.exception("could not export the spans of an access log entry")
        return als_pb2.StreamAccessLogsResponse()

    def record(self, entry) -> None:
        decision = _fields(entry.common_properties.metadata, NAMESPACE)
        trace_id = decision.get("trace_id")
        if self.spans is None or not trace_id:
            return
        status = entry.response.response_code.value
        model = decision.get("model") or ""
        kind = decision.get("decision") or ""
        provider = decision.get("provider") or ""
        # With failover the model that answered may be a fallback: the attempt's header says which.
        served_by = entry.response.response_headers.get(MODEL_HEADER) or model
        if model and served_by != model:
            model, kind, provider = served_by, DecisionKind.FALLBACK.value, served_by.partition("/")[0]
        elif decision.get("model_label"):
            model = decision["model_label"]  # a wildcard entry's requests carry the entry's name (`openai/*`)
        served = Served(decision.get("api") or "", provider, model, kind, decision.get("route") or "",
                        decision.get("client") or "")
        common = entry.common_properties
        start = _ns(common.start_time)
        end = start + int(_seconds(common.duration) * 1e9)
        self.spans.span("switchyard.request", trace_id, decision["request_span"], decision.get("parent_span") or None,
                        start, end, span_attributes(served, status, decision.get("path") or ""), server=True,
                        error=status >= 500)
        if common.HasField("time_to_first_upstream_tx_byte") and decision.get("upstream_span"):
            sent = start + int(_seconds(common.time_to_first_upstream_tx_byte) * 1e9)
            done = start + int(_seconds(common.time_to_last_upstream_rx_byte) * 1e9) \
                if common.HasField("time_to_last_upstream_rx_byte") else end
            self.spans.span(f"chat {served.model}", trace_id, decision["upstream_span"], decision["request_span"],
                            sent, done, {"gen_ai.request.model": served.model, "gen_ai.provider.name": served.provider,
                                         "http.response.status_code": status}, error=status >= 400)
