"""What Envoy computes for observability, as Envoy configuration: the metrics extension, the
timing headers it reads, the stat tags that label its counters, and the access log that spans
come from when tracing is configured.

Request, upstream-duration, time-to-first-token and token metrics are counted inside Envoy by
`envoy/switchyard_metrics.c` (a Proxy-Wasm filter, built by `make install`), for the fast path's
requests and the filter's alike; `filter/envoy_stats.py` reads them back for /metrics. Pure
functions: Envoy configuration dicts out.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from filter.metrics import REQUEST_FAMILIES, extension_config

EXTENSION_FILE = "switchyard_metrics.wasm"
METRICS_FILTER = "switchyard.metrics"
# Envoy's own timings of the upstream call, as response headers from the virtual host: the
# extension reads them and removes them before the client sees them (DS_RX_BEG is the request's
# start, US_TX_BEG the first byte sent upstream, US_RX_BEG the first byte received).
SENT_HEADER = "x-switchyard-t-sent"
FIRST_HEADER = "x-switchyard-t-first"
_TIMINGS = {SENT_HEADER: "%COMMON_DURATION(DS_RX_BEG:US_TX_BEG:ns)%",
            FIRST_HEADER: "%COMMON_DURATION(US_TX_BEG:US_RX_BEG:ns)%"}


class ExtensionMissing(Exception):
    """The compiled extension is not there: `make install` builds it from envoy/*.c."""


def extension_code(path: Path, inline: bool) -> dict[str, Any]:
    """Where Envoy loads the module from: the file (`switchyard up`), or its bytes inside the
    bootstrap (`switchyard render`: Envoy may run in another container, without our files)."""
    if not path.is_file():
        raise ExtensionMissing(f"{path} is missing: run `make install`, which builds it from envoy/{path.stem}.c")
    if inline:
        return {"local": {"inline_bytes": base64.b64encode(path.read_bytes()).decode()}}
    return {"local": {"filename": str(path)}}


def metrics_filter(code: dict[str, Any]) -> dict[str, Any]:
    """The HTTP filter that counts every finished request; it goes last, just before the router,
    so that it sees the answer (and removes the timing headers) before any other filter."""
    return {
        "name": METRICS_FILTER,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": "switchyard_metrics",
                "root_id": "switchyard_metrics",
                "vm_config": {"vm_id": "switchyard_metrics", "runtime": "envoy.wasm.runtime.v8", "code": code},
                "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": extension_config()},
                # Metrics must never fail a request: if the module fails, requests go on uncounted.
                "failure_policy": "FAIL_OPEN",
            },
        },
    }


def timing_headers() -> tuple[list[dict[str, Any]], list[str]]:
    """The virtual host's response headers to add (Envoy's timings) and to remove first (a
    provider's headers of the same names must never reach the extension)."""
    add = [{"header": {"key": key, "value": value}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
            "keep_empty_value": False} for key, value in _TIMINGS.items()]
    return add, list(_TIMINGS)


def stats_tags() -> list[dict[str, str]]:
    """Tag extractors that turn the extension's `;label=.=value;.;` name parts into labels, so
    that Envoy's own /stats/prometheus shows them as labelled series too."""
    labels = sorted({label for family in REQUEST_FAMILIES for label in family.labels} | {"le"})
    return [{"tag_name": label, "regex": f"(;{label}=\\.=(.*?);\\.;)"} for label in labels]


def span_access_log() -> dict[str, Any]:
    """With tracing configured: Envoy's gRPC access logger, streaming each finished request's
    entry to the filter workers in batches, which export the request and upstream spans from it
    (filter/observer.py). It carries the decision metadata and Envoy's timings."""
    return {
        "name": "envoy.access_loggers.http_grpc",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig",
            "common_config": {
                "log_name": "switchyard",
                "grpc_service": {"envoy_grpc": {"cluster_name": "switchyard_filter"}},
                "transport_api_version": "V3",
                "buffer_flush_interval": "0.2s",
                "buffer_size_bytes": 65536,
            },
            "additional_response_headers_to_log": ["x-switchyard-model"],
        },
    }
