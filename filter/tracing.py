"""W3C trace context for every request, and optional OTLP export of the gateway's spans.

Every request gets a trace: the client's `traceparent` is continued, or a new trace is started.
The gateway's own span (the request) is the parent of two children — the routing decision and the
upstream call — and the router and the provider each receive a `traceparent` naming their span.
With `gateway.tracing.otlp_endpoint` set, these spans are exported with OTLP/HTTP's JSON encoding
in batches from a background thread. (The OpenTelemetry SDK's protobuf exporter is not used: its
`opentelemetry.proto` modules collide with older copies shipped inside xds-protos.)
"""

from __future__ import annotations

import logging
import os
import queue
import re
import threading
import urllib.request
from dataclasses import dataclass
from typing import Mapping

import orjson

log = logging.getLogger("switchyard.tracing")

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
SPAN_KIND_SERVER, SPAN_KIND_CLIENT = 2, 3
STATUS_UNSET, STATUS_ERROR = 0, 2


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


def start_trace(traceparent: str | None) -> TraceContext:
    """Continue the client's trace when its `traceparent` is valid; otherwise start a new one."""
    ids = os.urandom(40).hex()  # one system call for every id this request needs
    match = _TRACEPARENT.match(traceparent.strip().lower()) if traceparent else None
    if match and match.group(1) != "ff" and match.group(2).strip("0") and match.group(3).strip("0"):
        trace_id, parent, flags = match.group(2), match.group(3), match.group(4)
    else:
        trace_id, parent, flags = ids[:32], None, "01"
    # 2^-64 odds of an all-zero span id are not worth a branch per request.
    return TraceContext(trace_id, parent, ids[32:48], ids[48:64], ids[64:80], flags)


class SpanExporter:
    """Queues finished spans and posts them in batches (OTLP/HTTP, JSON) from one thread."""

    BATCH = 256
    INTERVAL_S = 0.5

    def __init__(self, endpoint: str, service_name: str):
        self.endpoint = endpoint
        self._resource = {"attributes": [_attribute("service.name", service_name)]}
        self._queue: queue.Queue = queue.Queue(maxsize=10_000)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="otlp-exporter", daemon=True)
        self._thread.start()

    def span(self, name: str, trace_id: str, span_id: str, parent_id: str | None, start_ns: int, end_ns: int,
             attributes: Mapping[str, str | int | float | bool], *, server: bool = False, error: bool = False) -> None:
        span = {
            "traceId": trace_id, "spanId": span_id, "parentSpanId": parent_id or "", "name": name,
            "kind": SPAN_KIND_SERVER if server else SPAN_KIND_CLIENT,
            "startTimeUnixNano": str(start_ns), "endTimeUnixNano": str(end_ns),
            "attributes": [_attribute(k, v) for k, v in attributes.items()],
            "status": {"code": STATUS_ERROR if error else STATUS_UNSET},
        }
        try:
            self._queue.put_nowait(span)
        except queue.Full:  # a collector that is down must not grow memory without bound
            pass

    def _run(self) -> None:
        while not self._stop.is_set():
            self._stop.wait(self.INTERVAL_S)
            self._flush()

    def _flush(self) -> None:
        while not self._queue.empty():
            batch = []
            while len(batch) < self.BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            body = orjson.dumps({"resourceSpans": [{
                "resource": self._resource,
                "scopeSpans": [{"scope": {"name": "switchyard"}, "spans": batch}],
            }]})
            request = urllib.request.Request(self.endpoint, data=body, method="POST",
                                             headers={"content-type": "application/json"})
            try:
                urllib.request.urlopen(request, timeout=5).close()
            except OSError as exc:
                log.warning("could not export %d spans to the OTLP endpoint: %s", len(batch), exc)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._flush()


def _attribute(key: str, value: str | int | float | bool) -> dict:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    return {"key": key, "value": {"stringValue": str(value)}}
