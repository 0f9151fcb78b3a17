"""Observed latency per model, from Envoy's own per-cluster request times (`prefer: fastest`).

Envoy keeps an `upstream_rq_time` histogram per cluster: the time from sending a request to the
provider until its answer ended, per attempt. The supervisor reads them from Envoy's admin
(`/stats?format=json`) every `SAMPLE_INTERVAL_S` while some route prefers the fastest model,
smooths each model's median of the last stats interval (`SMOOTHING`), and writes the result to a
small JSON file in the gateway's private runtime directory; the workers read that file, at most
once a second, when they order a pool. A model Envoy has not timed yet has no latency (ranked
last). Under `switchyard workers` (Envoy in its own container of the same pod) the supervisor
reads that Envoy's admin at 127.0.0.1:`gateway.admin_port`.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from pathlib import Path
from typing import Any, Mapping

from filter.config import Config

FILE_NAME = "latency.json"
SAMPLE_INTERVAL_S = 5.0  # Envoy's histograms change once per stats flush (5 s by default)
SMOOTHING = 0.5  # weight of the newest interval's median
STATS_PATH = "/stats?format=json&usedonly&filter=^cluster%5C.provider_.*%5C.upstream_rq_time$"
_READ_EVERY_S = 1.0


def fetch(admin_port: int) -> dict | None:
    """Envoy's request-time histograms from its admin on loopback; None when it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}{STATS_PATH}", timeout=2) as answer:
            return json.loads(answer.read())
    except (OSError, ValueError):
        return None


def wants_latency(config: Config) -> bool:
    return any(pool.prefer == "fastest" and len(pool.models) > 1 for pool in config.route_pools.values())


def clusters_of(config: Config) -> dict[str, str]:
    """Envoy cluster → the model slug it serves (its own cluster and its failover member's)."""
    from filter.render.bootstrap import failover_cluster_name

    clusters = {}
    for pool in config.route_pools.values():
        for provider in pool.models:
            clusters[provider.cluster] = provider.slug
            clusters[failover_cluster_name(provider)] = provider.slug
    return clusters


def interval_medians(stats: Mapping[str, Any], clusters: Mapping[str, str]) -> dict[str, float]:
    """Seconds per model: the median of the last stats interval (several clusters of one model
    averaged); models with no request in that interval are absent."""
    found: dict[str, list[float]] = {}
    for block in stats.get("stats", []):
        histograms = block.get("histograms") if isinstance(block, dict) else None
        if not isinstance(histograms, dict):
            continue
        quantiles = histograms.get("supported_quantiles") or []
        if 50 not in quantiles and 50.0 not in quantiles:
            continue
        middle = [float(q) for q in quantiles].index(50.0)
        for item in histograms.get("computed_quantiles") or []:
            name = item.get("name", "")
            cluster = name.removeprefix("cluster.").removesuffix(".upstream_rq_time")
            slug = clusters.get(cluster)
            values = item.get("values") or []
            if slug is None or middle >= len(values):
                continue
            median_ms = values[middle].get("interval")
            if isinstance(median_ms, (int, float)):
                found.setdefault(slug, []).append(float(median_ms) / 1000.0)
    return {slug: sum(v) / len(v) for slug, v in found.items()}


def smooth(previous: Mapping[str, float], medians: Mapping[str, float]) -> dict[str, float]:
    merged = dict(previous)
    for slug, value in medians.items():
        old = previous.get(slug)
        merged[slug] = value if old is None else SMOOTHING * value + (1 - SMOOTHING) * old
    return merged


def write(directory: Path, latency: Mapping[str, float]) -> None:
    staging = directory / (FILE_NAME + ".staging")
    staging.write_text(json.dumps(dict(latency)))
    staging.replace(directory / FILE_NAME)


class LatencyBoard:
    """The workers' view of the supervisor's file; empty until the first sample."""

    def __init__(self, directory: str | os.PathLike | None):
        self._path = Path(directory) / FILE_NAME if directory else None
        self._mtime = 0.0
        self._checked = 0.0
        self._latency: dict[str, float] = {}

    def snapshot(self) -> Mapping[str, float]:
        if self._path is None:
            return self._latency
        now = time.monotonic()
        if now - self._checked < _READ_EVERY_S:
            return self._latency
        self._checked = now
        try:
            mtime = self._path.stat().st_mtime
            if mtime != self._mtime:
                loaded = json.loads(self._path.read_text())
                self._latency = {k: float(v) for k, v in loaded.items() if isinstance(v, (int, float))}
                self._mtime = mtime
        except (OSError, ValueError, AttributeError):
            pass  # no sample yet, or a file being replaced: keep what we had
        return self._latency
