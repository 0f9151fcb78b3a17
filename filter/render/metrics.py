"""What Envoy computes for observability, as Envoy configuration: the timing headers the
metrics extension reads (its filter: filter/render/wasm.py), the stat tags that label its
counters, and the access log that spans come from when tracing is configured.

Request, upstream-duration, time-to-first-token and token metrics are counted inside Envoy by
`envoy/switchyard_metrics.c` (part of the Proxy-Wasm extension, built by `make install`), for
the fast path's requests and the filter's alike; `filter/envoy_stats.py` reads them back for
/metrics. Pure functions: Envoy configuration dicts out.
"""

from __future__ import annotations

from typing import Any

from filter.metrics import REQUEST_FAMILIES

# Envoy's own timings of the upstream call, as response headers from the virtual host: the
# extension reads them and removes them before the client sees them (DS_RX_BEG is the request's
# start, US_TX_BEG the first byte sent upstream, US_RX_BEG the first byte received).
SENT_HEADER = "x-switchyard-t-sent"
FIRST_HEADER = "x-switchyard-t-first"
_TIMINGS = {SENT_HEADER: "%COMMON_DURATION(DS_RX_BEG:US_TX_BEG:ns)%",
            FIRST_HEADER: "%COMMON_DURATION(US_TX_BEG:US_RX_BEG:ns)%"}


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
