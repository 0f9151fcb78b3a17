"""W3C trace context for every request, and optional OTLP export of the gateway's spans.

Every request gets a trace: the client's `traceparent` is continued, or a new trace is started.
The gateway's own span (the request) is the parent of two children — the routing decision and the
upstream call — and the router and the provider each receive a `traceparent` naming their span.
With `gateway.tracing.otlp_endpoint` set (and the `tracing` extra installed), these spans are
exported over OTLP/HTTP in a background thread.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Mapping

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


@dataclass(frozen=True, slots=True)
class TraceContext:
    trace_id: str
    parent_id: str | None  # the client's span, when it sent one
    request_span: str  # the gateway's span for the whole request
    router_span: str
    upstream_span: str
    flags: str

    def traceparent(self, span_id: str) -> str:
        return f"00-{self.trace_id}-{span_id}-{self.flags}"

    def as_metadata(self) -> dict[str, str]:
        return {"trace_id": self.trace_id, "parent_span": self.parent_id or "", "request_span": self.request_span,
                "upstream_span": self.upstream_span, "trace_flags": self.flags}


def _hex(nbytes: int) -> str:
    value = os.urandom(nbytes).hex()
    return value if value.strip("0") else _hex(nbytes)  # all-zero ids are invalid


def start_trace(traceparent: str | None) -> TraceContext:
    """Continue the client's trace when its `traceparent` is valid; otherwise start a new one."""
    match = _TRACEPARENT.match(traceparent.strip().lower()) if traceparent else None
    if match and match.group(1) != "ff" and match.group(2).strip("0") and match.group(3).strip("0"):
        trace_id, parent, flags = match.group(2), match.group(3), match.group(4)
    else:
        trace_id, parent, flags = _hex(16), None, "01"
    return TraceContext(trace_id, parent, _hex(8), _hex(8), _hex(8), flags)


class SpanExporter:
    """Exports finished spans over OTLP/HTTP (batched, off the event loop)."""

    def __init__(self, endpoint: str, service_name: str):
        # Imported here: tracing is an optional extra.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        self._resource = Resource.create({"service.name": service_name})
        self._processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint), schedule_delay_millis=500)

    def span(self, name: str, trace_id: str, span_id: str, parent_id: str | None, start_ns: int, end_ns: int,
             attributes: Mapping[str, str | int | float | bool], *, server: bool = False, error: bool = False) -> None:
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

        context = SpanContext(int(trace_id, 16), int(span_id, 16), is_remote=False, trace_flags=TraceFlags(1))
        parent = SpanContext(int(trace_id, 16), int(parent_id, 16), is_remote=True, trace_flags=TraceFlags(1)) if parent_id else None
        self._processor.on_end(ReadableSpan(
            name=name, context=context, parent=parent, resource=self._resource,
            attributes=dict(attributes), kind=SpanKind.SERVER if server else SpanKind.CLIENT,
            start_time=start_ns, end_time=end_ns,
            status=Status(StatusCode.ERROR if error else StatusCode.UNSET),
        ))

    def close(self) -> None:
        self._processor.shutdown()
