"""What the upstream request carries besides its body: whether a Chat client's translated stream
ends with a usage chunk (only when the client asked, as OpenAI's streams do), the path of another
endpoint of the provider's API, and what a translated Responses answer repeats. Fixed values."""

from __future__ import annotations

import pytest

from filter.errors import ClientApi

from tests.unit.test_upstream_pairs import HI, build

CLAUDE = "anthropic/claude-sonnet-4-5"


@pytest.mark.parametrize("extra, usage_chunk", [
    ({"stream_options": {"include_usage": True}}, True),
    ({"stream_options": {"include_usage": False}}, False),
    ({"stream_options": {"include_usage": "true"}}, False),
    ({"stream_options": {}}, False),
    ({"stream_options": True}, False),
    ({}, False),
])
def test_a_chat_stream_from_anthropic_ends_with_a_usage_chunk_only_when_asked(extra, usage_chunk):
    upstream = build(ClientApi.CHAT, {"model": "claude-sonnet-4-5", "messages": HI, "stream": True, **extra}, CLAUDE)
    assert upstream.usage_chunk is usage_chunk


def test_no_usage_chunk_flag_for_untranslated_or_other_pairs():
    asked = {"stream": True, "stream_options": {"include_usage": True}}
    assert build(ClientApi.CHAT, {"model": "gpt-4o", "messages": HI, **asked}, "openai/gpt-4o").usage_chunk is False
    assert build(ClientApi.MESSAGES, {"model": "gpt-4o", "max_tokens": 5, "messages": HI, "stream": True},
                 "openai/gpt-4o").usage_chunk is False


def test_another_endpoint_of_the_providers_api():
    upstream = build(ClientApi.MESSAGES, {"model": "claude-sonnet-4-5", "messages": HI}, CLAUDE,
                     endpoint="messages/count_tokens")
    assert upstream.path == "/v1/messages/count_tokens"


def test_a_translated_responses_answer_repeats_the_requests_fields():
    upstream = build(ClientApi.RESPONSES, {"model": "claude-sonnet-4-5", "input": "hi", "instructions": "Be brief",
                                           "metadata": {"k": "v"}, "store": False}, CLAUDE)
    assert (upstream.responses.echo["instructions"], upstream.responses.echo["metadata"]) == ("Be brief", {"k": "v"})
    assert upstream.responses.store is False
    assert upstream.responses.history == [{"role": "user", "content": "hi"}]
