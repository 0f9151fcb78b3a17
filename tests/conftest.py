"""Shared fixtures: stand-in providers and gateways are started by the tests and always stopped."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.standins import (  # noqa: E402
    Received, StandIn, anthropic_reply, count_tokens_reply, embeddings_reply, openai_reply, responses_reply)


def provider_behaviour(request: Received):
    """An upstream that answers in the wire format its path asks for."""
    path = request.path.split("?")[0]
    if path.endswith("/messages/count_tokens"):
        return count_tokens_reply(request)
    if path.endswith("/messages"):
        return anthropic_reply(request)
    if path.endswith("/responses"):
        return responses_reply(request)
    if path.endswith("/embeddings"):
        return embeddings_reply(request)
    return openai_reply(request)


@pytest.fixture(scope="module")
def upstream():
    with StandIn(provider_behaviour) as server:
        yield server


@pytest.fixture
def fresh(upstream):
    """The module's stand-in with its request log emptied and its default behaviour back."""
    upstream.clear()
    upstream.behaviour = provider_behaviour
    yield upstream
    upstream.behaviour = provider_behaviour


# Tests that assert that the filter is on every request's path; with the fast path on, literal
# and alias requests are not, by design (tests/e2e/test_fast_path.py shows what is the same).
FILTER_ON_EVERY_REQUEST = {
    "tests/e2e/test_reliability.py::test_a_stuck_filter_times_out_into_a_json_error_and_nothing_upstream",
}


def pytest_collection_modifyitems(config, items):
    from tests.gateway import FAST_PATH_RUN

    if not FAST_PATH_RUN:
        return
    kept = [item for item in items if item.nodeid not in FILTER_ON_EVERY_REQUEST]
    config.hook.pytest_deselected(items=[item for item in items if item.nodeid in FILTER_ON_EVERY_REQUEST])
    items[:] = kept
