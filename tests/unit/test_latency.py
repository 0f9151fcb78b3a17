"""Envoy's per-cluster request times → per-model latency (`prefer: fastest`)."""

from __future__ import annotations

import os

import pytest

from filter.config import parse_config
from filter.latency import LatencyBoard, clusters_of, interval_medians, smooth, wants_latency, write


def config(prefer="fastest"):
    return parse_config({"version": "v0.4.0", "model_providers": [
        {"model": "openai/gpt-4o-mini", "access_key": "k", "default": True},
        {"model": "local/a", "base_url": "http://127.0.0.1:1"},
        {"model": "local/b", "base_url": "http://127.0.0.1:2"},
    ], "routing_preferences": [{"name": "r", "description": "d", "models": ["local/a", "local/b"],
                                "selection_policy": {"prefer": prefer}}]}, "t.yaml", {})


def stats(*items):
    """Envoy's /stats?format=json shape for histograms."""
    return {"stats": [{"name": "x", "value": 1}, {"histograms": {
        "supported_quantiles": [0, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 100],
        "computed_quantiles": [{"name": name, "values": [{"interval": None, "cumulative": None}] * 2
                                + [{"interval": interval, "cumulative": 1.0}] + [{"interval": 1, "cumulative": 1}] * 7}
                               for name, interval in items]}}]}


def test_the_median_of_the_last_interval_per_model_from_its_clusters():
    c = config()
    clusters = clusters_of(c)
    sample = stats(("cluster.provider_local_a.upstream_rq_time", 300), ("cluster.provider_local_a_failover.upstream_rq_time", 100),
                   ("cluster.provider_local_b.upstream_rq_time", None), ("cluster.other.upstream_rq_time", 5))
    assert interval_medians(sample, clusters) == {"local/a": 0.2}  # b had no request in the interval


def test_smoothing_keeps_models_not_seen_lately_and_blends_new_medians():
    smoothed = smooth({"local/a": 0.2, "local/b": 1.0}, {"local/a": 0.4, "local/c": 0.1})
    assert smoothed == {"local/a": pytest.approx(0.3), "local/b": 1.0, "local/c": 0.1}


def test_only_pools_that_prefer_the_fastest_need_sampling():
    assert wants_latency(config("fastest")) and not wants_latency(config("cheapest"))


def test_the_workers_board_reads_the_supervisors_file_and_survives_a_missing_one(tmp_path):
    board = LatencyBoard(tmp_path)
    assert board.snapshot() == {}
    write(tmp_path, {"local/a": 0.25})
    os.utime(tmp_path / "latency.json", (1, 1))
    assert LatencyBoard(tmp_path).snapshot() == {"local/a": 0.25}
    (tmp_path / "latency.json").write_text("{broken")
    assert LatencyBoard(tmp_path).snapshot() == {}
    assert LatencyBoard(None).snapshot() == {}
