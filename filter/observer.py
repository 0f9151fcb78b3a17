"""Metrics and spans from Envoy's access log, off the request path.

Envoy's gRPC access logger (`envoy.access_loggers.http_grpc`) streams one entry per finished
request to the filter workers, in batches, after the client has its answer. An entry carries what
Envoy measured (status, attempts, the upstream's first and last byte) and the dynamic metadata of
the request: the filter's decision (`switchyard`) and the token counts that Envoy's
`json_to_metadata` filter (JSON answers) and a small Lua filter (SSE answers) read from the
provider's response (`switchyard.usage`). Watching responses this way costs a fraction of a
per-request gRPC stream.
"""

from __future__ import annotations

import logging
from typing import AsyncIterator

from envoy.service.accesslog.v3 import als_pb2, als_pb2_grpc

from filter.metrics import Labels, Metrics
from filter.resolve import DecisionKind
from filter.tracing import SpanExporter

log = logging.getLogger("switchyard.observer")

MODEL_HEADER = "x-switchyard-model"
NAMESPACE = "switchyard"
USAGE_NAMESPACE = "switchyard.usage"


def span_attributes(labels: Labels, status: int, path: str) -> dict[str, str | int]:
    return {"http.response.status_code": status, "url.path": path, "switchyard.client_api": labels.client_api,
            "switchyard.model": labels.model, "switchyard.decision": labels.decision, "switchyard.route": labels.route}


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
    def __init__(self, metrics: Metrics, spans: SpanExporter | None):
        self.metrics = metrics
        self.spans = spans

    async def StreamAccessLogs(self, request_iterator: AsyncIterator, context) -> als_pb2.StreamAccessLogsResponse:  # noqa: N802
        async for message in request_iterator:
            for entry in message.http_logs.log_entry:
                try:
                    self.record(entry)
                except Exception:  # one odd entry must not end the stream (and lose the rest)
                    log.exception("could not account an access log entry")
            self.metrics.flush()
        return als_pb2.StreamAccessLogsResponse()

    def record(self, entry) -> None:
        common = entry.common_properties
        decision = _fields(common.metadata, NAMESPACE)
        status = entry.response.response_code.value
        model = decision.get("model") or ""
        kind = decision.get("decision") or ""
        provider = decision.get("provider") or ""
        # With failover the model that answered may be a fallback: the attempt's header says which.
        served = entry.response.response_headers.get(MODEL_HEADER) or model
        if model and served != model:
            model, kind, provider = served, DecisionKind.FALLBACK.value, served.partition("/")[0]
        elif decision.get("model_label"):
            # A wildcard entry's requests are counted under the entry (`openai/*`): the ids clients
            # name must not grow the label sets.
            model = decision["model_label"]
        labels = Labels(decision.get("api") or "", provider, model, kind, decision.get("route") or "")
        self.metrics.request(labels, status)

        forwarded = common.HasField("time_to_first_upstream_tx_byte")
        if forwarded and model:
            sent = _seconds(common.time_to_first_upstream_tx_byte)
            finished = common.HasField("time_to_last_upstream_rx_byte")
            error_type = str(status) if status >= 400 else ("" if finished else "incomplete")
            end = _seconds(common.time_to_last_upstream_rx_byte) if finished else _seconds(common.duration)
            self.metrics.upstream_call(provider, model, error_type, max(0.0, end - sent))
            if status < 400 and common.HasField("time_to_first_upstream_rx_byte"):
                first = _seconds(common.time_to_first_upstream_rx_byte)
                self.metrics.first_token(provider, model, max(0.0, first - sent))
            usage = _fields(common.metadata, USAGE_NAMESPACE)
            if status < 400 and usage:
                self._tokens(provider, model, decision.get("upstream_api") or "openai", usage)
        self._export_spans(entry, decision, labels, status)

    def _tokens(self, provider: str, model: str, wire_format: str, usage: dict) -> None:
        cached = int(usage.get("cached_tokens") or 0)
        prompt = int(usage.get("input_tokens") or 0)
        if wire_format == "anthropic":
            # Anthropic's input_tokens leaves out cache reads and writes; count every prompt token.
            prompt += cached + int(usage.get("cache_write_tokens") or 0)
        self.metrics.tokens(provider, model, prompt, int(usage.get("output_tokens") or 0), cached)

    def _export_spans(self, entry, decision: dict, labels: Labels, status: int) -> None:
        trace_id = decision.get("trace_id")
        if self.spans is None or not trace_id:
            return
        common = entry.common_properties
        start = _ns(common.start_time)
        end = start + int(_seconds(common.duration) * 1e9)
        self.spans.span("switchyard.request", trace_id, decision["request_span"], decision.get("parent_span") or None,
                        start, end, span_attributes(labels, status, decision.get("path") or ""), server=True,
                        error=status >= 500)
        if common.HasField("time_to_first_upstream_tx_byte") and decision.get("upstream_span"):
            sent = start + int(_seconds(common.time_to_first_upstream_tx_byte) * 1e9)
            done = start + int(_seconds(common.time_to_last_upstream_rx_byte) * 1e9) \
                if common.HasField("time_to_last_upstream_rx_byte") else end
            self.spans.span(f"chat {labels.model}", trace_id, decision["upstream_span"], decision["request_span"],
                            sent, done, {"gen_ai.request.model": labels.model, "gen_ai.provider.name": labels.provider,
                                         "http.response.status_code": status}, error=status >= 400)
