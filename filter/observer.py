"""The response observer: metrics and spans from each upstream answer, off the request path.

A second ext_proc filter in observability mode sends this module the provider's response headers
and streamed body; Envoy does not wait for answers, so nothing here delays the client. The first
filter's decision arrives as forwarded `switchyard` metadata.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import AsyncIterator

from filter import ext_proc
from filter.errors import ClientApi
from filter.metrics import Labels, Metrics
from filter.resolve import DecisionKind
from filter.tracing import SpanExporter
from filter.usage_meter import UsageMeter


@dataclass(slots=True)
class Observation:
    """What the observer learns about one upstream response."""

    labels: Labels
    provider: str
    model: str
    sent_at: float
    meter: UsageMeter
    status: int = 0
    first_byte_at: float | None = None


def span_attributes(labels: Labels, status: int, path: str) -> dict[str, str | int]:
    return {"http.response.status_code": status, "url.path": path, "switchyard.client_api": labels.client_api,
            "switchyard.model": labels.model, "switchyard.decision": labels.decision, "switchyard.route": labels.route}


class ResponseObserver:
    def __init__(self, metrics: Metrics, spans: SpanExporter | None):
        self.metrics = metrics
        self.spans = spans

    async def observe(self, first, rest: AsyncIterator) -> None:
        """Count one upstream response: status, time to first byte, duration, token usage.

        Envoy does not wait for this stream (observability mode), so nothing here delays the client.
        """
        fields = ext_proc.forwarded_metadata(first)
        if "model" not in fields:
            return  # not a request the filter forwarded (nothing to attribute it to)
        headers = ext_proc.header_values(first.response_headers)
        # With failover the model that answered may be a fallback: its header says which.
        model, decision = fields["model"], fields.get("decision", "")
        served = headers.get("x-switchyard-model") or model
        if served != model:
            model, decision = served, DecisionKind.FALLBACK.value
        provider = model.partition("/")[0] if served != fields["model"] else fields.get("provider", "")
        labels = Labels(fields.get("api", ""), provider, model, decision, fields.get("route") or "")
        api = ClientApi(fields.get("upstream_api") or ClientApi.CHAT.value)
        seen = Observation(labels, labels.provider, labels.model, float(fields.get("sent_at", time.time())),
                           UsageMeter(api, bool(fields.get("stream"))))
        seen.status = int(headers.get(":status", "0"))
        ended = first.response_headers.end_of_stream
        if not ended:
            async for message in rest:
                if message.WhichOneof("request") != "response_body":
                    continue
                if seen.first_byte_at is None:
                    seen.first_byte_at = time.time()
                seen.meter.feed(message.response_body.body)
                if message.response_body.end_of_stream:
                    ended = True
                    break
        self._record(seen, complete=ended)
        self._export_spans(fields, seen)

    def _export_spans(self, fields: dict, seen: Observation) -> None:
        trace_id = fields.get("trace_id")
        if self.spans is None or not trace_id:
            return
        now = time.time_ns()
        attributes = span_attributes(seen.labels, seen.status, fields.get("path", ""))
        self.spans.span("switchyard.request", trace_id, fields["request_span"], fields.get("parent_span") or None,
                        int(fields.get("received_ns") or now), now, attributes, server=True, error=seen.status >= 500)
        self.spans.span(f"chat {seen.model}", trace_id, fields["upstream_span"], fields["request_span"],
                        int(seen.sent_at * 1e9), now, {"gen_ai.request.model": seen.model,
                                                       "gen_ai.provider.name": seen.provider,
                                                       "http.response.status_code": seen.status},
                        error=seen.status >= 400)

    def _record(self, seen: Observation, complete: bool) -> None:
        m = self.metrics
        m.request(seen.labels, seen.status)
        error_type = "" if seen.status < 400 and complete else (str(seen.status) if seen.status >= 400 else "incomplete")
        m.operation_duration.labels(seen.provider, seen.model, error_type).observe(max(0.0, time.time() - seen.sent_at))
        if seen.first_byte_at is not None and seen.status < 400:
            m.time_to_first_token.labels(seen.provider, seen.model).observe(max(0.0, seen.first_byte_at - seen.sent_at))
        usage = seen.meter.usage() if seen.status < 400 else None
        if usage is not None:
            m.tokens(seen.provider, seen.model, usage.input_tokens, usage.output_tokens, usage.cached_tokens)
