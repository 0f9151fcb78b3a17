"""Metrics gathered per batch of access-log entries read the same as metrics written one by one."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from filter.metrics import Labels, Metrics

LABELS = [Labels("openai", "openai", "openai/gpt-4o", "alias", ""), Labels("anthropic", "anthropic", "anthropic/c", "literal", "")]
SECONDS = st.floats(0, 200, allow_nan=False) | st.sampled_from([0.01, 0.025, 1.0, 160.0])  # bucket bounds too
TOKENS = st.integers(0, 2_000_000) | st.sampled_from([1, 4, 1024, 1048576])
REQUESTS = st.lists(st.tuples(st.sampled_from(LABELS), st.sampled_from([200, 404, 503]), SECONDS, SECONDS,
                              TOKENS, TOKENS, TOKENS), max_size=40)


def exposition(metrics_registry: CollectorRegistry) -> dict[str, float]:
    """Sample → value, creation times left out."""
    samples = {}
    for line in generate_latest(metrics_registry).decode().splitlines():
        if line.startswith("#") or "_created" in line:
            continue
        name, _, value = line.rpartition(" ")
        samples[name] = float(value)
    return samples


@settings(max_examples=60, deadline=None)
@given(requests=REQUESTS, batch=st.integers(1, 10))
def test_batched_writes_equal_one_write_per_observation(requests, batch):
    batched_registry, direct_registry = CollectorRegistry(), CollectorRegistry()
    batched, direct = Metrics(batched_registry), Metrics(direct_registry)
    for i, (labels, status, duration, first, prompt, output, cached) in enumerate(requests):
        batched.request(labels, status)
        batched.upstream_call(labels.provider, labels.model, "", duration)
        batched.first_token(labels.provider, labels.model, first)
        batched.tokens(labels.provider, labels.model, prompt, output, cached)
        if i % batch == batch - 1:
            batched.flush()

        direct.requests.labels(labels.client_api, labels.provider, labels.model, labels.decision, labels.route,
                               f"{status // 100}xx").inc()
        direct.operation_duration.labels(labels.provider, labels.model, "").observe(duration)
        direct.time_to_first_token.labels(labels.provider, labels.model).observe(first)
        for kind, count in (("input", prompt), ("output", output), ("cached_input", cached)):
            direct.token_usage.labels(labels.provider, labels.model, kind).observe(count)
    batched.flush()
    got, expected = exposition(batched_registry), exposition(direct_registry)
    assert got.keys() == expected.keys()
    for name, value in expected.items():  # sums may differ in the last bit: another order of additions
        assert math.isclose(got[name], value, rel_tol=1e-12), name
