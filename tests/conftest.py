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
