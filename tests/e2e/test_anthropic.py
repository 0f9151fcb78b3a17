"""The Anthropic Messages API in and out, through the real Envoy and filter, with both SDKs.

An Anthropic client may be served by an OpenAI-compatible model and an OpenAI client by Claude:
the gateway translates requests, responses, SSE streams and errors.
"""

from __future__ import annotations

import json

import anthropic
import httpx
import openai
import pytest

from tests.gateway import Gateway
from tests.standins import anthropic_reply, json_reply, openai_reply

ANTHROPIC_KEY = "sk-ant-upstream-93e1"
OPENAI_KEY = "sk-openai-upstream-55b0"
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
OPENAI_WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city", "parameters": WEATHER_TOOL["input_schema"]}}


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory):
    config = {
        "llm_providers": [
            {"model": "anthropic/claude-sonnet-4-5", "access_key": ANTHROPIC_KEY, "base_url": f"{upstream.url}/v1",
             "default": True},
            {"model": "openai/gpt-4o", "access_key": OPENAI_KEY, "base_url": f"{upstream.url}/v1"},
        ],
        "routing": {"engine": "none"},
    }
    with Gateway(config, tmp_path_factory.mktemp("anthropic")) as gw:
        yield gw


@pytest.fixture
def claude(gateway):
    return anthropic.Anthropic(base_url=gateway.url, api_key="client-anthropic-key", max_retries=0)


@pytest.fixture
def oai(gateway):
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="client-openai-key", max_retries=0)


ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


# ---------------------------------------------------------------- Anthropic client → Anthropic upstream


def test_messages_create_to_anthropic_passes_through_with_provider_credentials(claude, fresh):
    fresh.behaviour = lambda r: anthropic_reply(r, tool_use={"id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}})
    raw = claude.messages.with_raw_response.create(
        model="anthropic/claude-sonnet-4-5", max_tokens=100, messages=ASK, tools=[WEATHER_TOOL],
        extra_headers={"anthropic-beta": "tools-2024-04-04"})
    message = raw.parse()
    assert raw.headers["x-switchyard-model"] == "anthropic/claude-sonnet-4-5"
    assert message.stop_reason == "tool_use"
    assert message.content[1].id == "toolu_01" and message.content[1].input == {"city": "Paris"}
    (request,) = fresh.received
    assert request.path == "/v1/messages"
    assert request.json["model"] == "claude-sonnet-4-5"
    assert request.json["tools"][0]["name"] == "get_weather"
    assert request.headers["x-api-key"] == ANTHROPIC_KEY
    assert request.headers["anthropic-version"] == claude.default_headers["anthropic-version"]  # the client's own
    assert request.headers["anthropic-beta"] == "tools-2024-04-04"
    assert "authorization" not in request.headers


def test_messages_stream_to_anthropic(claude, fresh):
    with claude.messages.stream(model="claude-sonnet-4-5", max_tokens=100, messages=ASK) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "anthropic stand-in answering as claude-sonnet-4-5"
    assert final.usage.output_tokens == 9


def test_query_string_reaches_anthropic_upstream(gateway, fresh):
    response = httpx.post(f"{gateway.url}/v1/messages?beta=true",
                          json={"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": ASK},
                          headers={"anthropic-version": "2023-06-01"})
    assert response.status_code == 200
    assert fresh.received[0].path == "/v1/messages?beta=true"


# ---------------------------------------------------------------- Anthropic client → OpenAI upstream


def test_messages_create_to_openai_is_translated_both_ways(claude, fresh):
    fresh.behaviour = lambda r: openai_reply(r, text="Let me check.", tool_calls=[
        {"id": "call_77", "name": "get_weather", "arguments": json.dumps({"city": "Paris"})}])
    raw = claude.messages.with_raw_response.create(
        model="openai/gpt-4o", max_tokens=64, system="Be brief.", messages=ASK, tools=[WEATHER_TOOL],
        extra_headers={"anthropic-beta": "tools-2024-04-04"})
    message = raw.parse()
    assert raw.headers["x-switchyard-model"] == "openai/gpt-4o"
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].text == "Let me check."
    tool_use = message.content[1]
    assert (tool_use.type, tool_use.id, tool_use.name, tool_use.input) == ("tool_use", "call_77", "get_weather", {"city": "Paris"})
    assert message.stop_reason == "tool_use"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (8, 7)  # 11 prompt tokens, 3 of them cached
    (request,) = fresh.received
    sent = request.json
    assert request.path == "/v1/chat/completions"
    assert sent["model"] == "gpt-4o" and sent["max_completion_tokens"] == 64
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    assert request.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert "anthropic-beta" not in request.headers and "anthropic-version" not in request.headers
    assert "x-api-key" not in request.headers


def test_messages_stream_to_openai_with_streamed_tool_arguments(claude, fresh):
    arguments = json.dumps({"city": "Paris", "unit": "celsius"})
    fresh.behaviour = lambda r: openai_reply(r, text="Checking now", tool_calls=[
        {"id": "call_9", "name": "get_weather", "arguments": arguments}])
    with claude.messages.stream(model="gpt-4o", max_tokens=64, messages=ASK, tools=[WEATHER_TOOL]) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_message()
    assert final.content[0].text == "Checking now"
    assert final.content[1].input == {"city": "Paris", "unit": "celsius"}
    assert final.stop_reason == "tool_use"
    assert final.usage.output_tokens == 7
    assert events.count("message_stop") == 1
    assert fresh.received[0].json["stream_options"] == {"include_usage": True}


def test_anthropic_errors_come_back_in_anthropic_shape(claude, fresh):
    with pytest.raises(anthropic.NotFoundError) as caught:
        claude.messages.create(model="no-such-model", max_tokens=10, messages=ASK)
    assert caught.value.body["error"]["type"] == "not_found_error"
    fresh.behaviour = lambda r: json_reply(429, {"error": {"message": "slow down", "type": "rate_limit_exceeded"}})
    with pytest.raises(anthropic.RateLimitError) as caught:
        claude.messages.create(model="gpt-4o", max_tokens=10, messages=ASK)
    assert caught.value.body == {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}


# ---------------------------------------------------------------- OpenAI client → Anthropic upstream


def test_chat_completion_to_anthropic_with_tools(oai, fresh):
    fresh.behaviour = lambda r: anthropic_reply(r, text="Calling the tool", tool_use={
        "id": "toolu_42", "name": "get_weather", "input": {"city": "Paris"}})
    raw = oai.chat.completions.with_raw_response.create(
        model="claude-sonnet-4-5", messages=[{"role": "system", "content": "Be brief."}, *ASK],
        tools=[OPENAI_WEATHER_TOOL], tool_choice="required", stop=["END"])
    completion = raw.parse()
    assert raw.headers["x-switchyard-model"] == "anthropic/claude-sonnet-4-5"
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls[0].id == "toolu_42"
    assert json.loads(choice.message.tool_calls[0].function.arguments) == {"city": "Paris"}
    assert completion.usage.prompt_tokens == 16 and completion.usage.prompt_tokens_details.cached_tokens == 4
    (request,) = fresh.received
    sent = request.json
    assert request.path == "/v1/messages"
    assert sent["system"] == "Be brief." or sent["system"][0]["text"] == "Be brief."
    assert sent["max_tokens"] > 0 and sent["stop_sequences"] == ["END"]
    assert sent["tool_choice"] == {"type": "any"}
    assert sent["tools"][0]["input_schema"]["required"] == ["city"]
    assert request.headers["x-api-key"] == ANTHROPIC_KEY and "authorization" not in request.headers


def test_chat_stream_to_anthropic_with_tool_call(oai, fresh):
    fresh.behaviour = lambda r: anthropic_reply(r, text="On it", tool_use={
        "id": "toolu_5", "name": "get_weather", "input": {"city": "Oslo"}})
    stream = oai.chat.completions.create(model="claude-sonnet-4-5", messages=ASK, tools=[OPENAI_WEATHER_TOOL],
                                         stream=True, stream_options={"include_usage": True})
    text, arguments, finish, usage, ids = "", "", None, None, set()
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            for call in choice.delta.tool_calls or []:
                arguments += call.function.arguments or ""
                if call.id:
                    ids.add(call.id)
            finish = choice.finish_reason or finish
    assert text == "On it"
    assert json.loads(arguments) == {"city": "Oslo"} and ids == {"toolu_5"}
    assert finish == "tool_calls"
    assert usage.completion_tokens == 9


def test_multibyte_character_split_across_upstream_chunks_arrives_intact(oai, fresh):
    def split_euro(request):
        reply = anthropic_reply(request, text="price: 5 € ok")
        # Cut every event in two in the middle of the euro sign's three UTF-8 bytes.
        stream = b"".join(reply.chunks).replace(b"\\u20ac", "€".encode())  # raw UTF-8, as providers send
        cut = stream.index("€".encode()) + 1
        reply.chunks = [stream[:cut], stream[cut:]]
        return reply

    fresh.behaviour = split_euro
    stream = oai.chat.completions.create(model="claude-sonnet-4-5", messages=ASK, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "price: 5 € ok"


def test_upstream_error_mid_stream_ends_the_client_stream_in_its_format(gateway, fresh):
    def broken(request):
        reply = anthropic_reply(request, text="partial answer")
        reply.chunks = reply.chunks[:4] + [
            b'event: error\ndata: {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}\n\n']
        return reply

    fresh.behaviour = broken
    with httpx.stream("POST", f"{gateway.url}/v1/chat/completions",
                      json={"model": "claude-sonnet-4-5", "messages": ASK, "stream": True}) as response:
        body = response.read().decode()
    data = [line[6:] for line in body.splitlines() if line.startswith("data: ")]
    assert json.loads(data[-1])["error"]["message"] == "Overloaded"
    assert "[DONE]" not in data


def test_upstream_http_error_to_openai_client_is_openai_shaped(oai, fresh):
    fresh.behaviour = lambda r: json_reply(400, {"type": "error", "error": {"type": "invalid_request_error",
                                                                            "message": "max_tokens: too large"}})
    with pytest.raises(openai.BadRequestError) as caught:
        oai.chat.completions.create(model="claude-sonnet-4-5", messages=ASK)
    assert caught.value.body["message"] == "max_tokens: too large"
    assert caught.value.body["type"] == "invalid_request_error"


def test_bad_anthropic_request_is_anthropic_shaped(gateway, fresh):
    response = httpx.post(f"{gateway.url}/v1/messages", content=b'{"model": "claude-sonnet-4-5", "messages": {}}',
                          headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert fresh.received == []
