"""POST /v1/responses through the real Envoy and filter, with the official openai SDK.

Native to OpenAI and Azure OpenAI (passed through, model rewritten); translated to a Chat
Completions model and to Claude, JSON and streaming, with tools; previous_response_id for
translated answers; errors in the Responses shape; the raw SSE wire format per translation pair.
"""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from prometheus_client.parser import text_string_to_metric_families

from tests.gateway import Gateway, eventually
from tests.standins import anthropic_reply, json_reply, openai_reply, responses_reply

OPENAI_KEY = "sk-openai-upstream-r1"
AZURE_KEY = "azure-upstream-r2"
ANTHROPIC_KEY = "sk-ant-upstream-r3"
LOCAL_KEY = "local-upstream-r4"
CLIENT_KEY = "client-key-never-forwarded"

WEATHER = {"type": "function", "name": "get_weather", "description": "Weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory):
    config = {
        "llm_providers": [
            {"model": "openai/gpt-5", "access_key": OPENAI_KEY, "base_url": f"{upstream.url}/v1", "default": True},
            {"model": "openai/gpt-5-mini", "access_key": OPENAI_KEY, "base_url": f"{upstream.url}/v1"},  # metrics test only
            {"model": "azure_openai/prod-gpt5", "access_key": AZURE_KEY, "base_url": upstream.url},
            {"model": "local/qwen-coder", "access_key": LOCAL_KEY, "base_url": f"{upstream.url}/v1"},
            {"model": "anthropic/claude-sonnet-4-5", "access_key": ANTHROPIC_KEY, "base_url": f"{upstream.url}/v1"},
            {"model": "echo/demo"},
        ],
        "routing": {"engine": "none"},
    }
    with Gateway(config, tmp_path_factory.mktemp("responses")) as gw:
        yield gw


@pytest.fixture
def client(gateway):
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=CLIENT_KEY, max_retries=0)


def raw_events(gateway, body: dict) -> tuple[httpx.Response, list[tuple[str, dict]], str]:
    """The answer as bytes on the wire: headers, (event name, data) pairs, the raw text."""
    with httpx.Client(timeout=30) as http:
        response = http.post(f"{gateway.url}/v1/responses", json={**body, "stream": True},
                             headers={"authorization": f"Bearer {CLIENT_KEY}"})
    text = response.text
    events = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        lines = block.split("\n")
        assert lines[0].startswith("event: ") and lines[1].startswith("data: ") and len(lines) == 2, block
        events.append((lines[0][7:], json.loads(lines[1][6:])))
    return response, events, text


def check_wire(response: httpx.Response, events: list, text: str) -> None:
    """What a Responses client reads off the wire: SSE, named events in order, one terminal event."""
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert text.endswith("\n\n") and "[DONE]" not in text
    names = [name for name, _ in events]
    assert all(name == data["type"] for name, data in events)
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    assert names[:2] == ["response.created", "response.in_progress"]
    assert names[-1] == "response.completed" and names.count("response.completed") == 1
    assert not {"response.failed", "response.incomplete", "error"} & set(names)


# ---------------------------------------------------------------- native: OpenAI and Azure OpenAI


def test_native_openai_gets_the_request_as_sent_with_its_model_and_key(client, fresh):
    raw = client.responses.with_raw_response.create(model="openai/gpt-5", input="What is the weather in Paris?",
                                                    tools=[WEATHER], instructions="Be brief.", store=False,
                                                    include=["reasoning.encrypted_content"])
    response = raw.parse()
    assert raw.headers["x-switchyard-model"] == "openai/gpt-5"
    assert response.output_text == "responses stand-in answering as gpt-5"
    (request,) = fresh.received
    assert request.path == "/v1/responses"
    assert request.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert CLIENT_KEY not in json.dumps(request.headers)
    assert request.json == {"model": "gpt-5", "input": "What is the weather in Paris?", "tools": [WEATHER],
                            "instructions": "Be brief.", "store": False, "include": ["reasoning.encrypted_content"]}


def test_native_stream_passes_through_unchanged(gateway, fresh):
    response, events, text = raw_events(gateway, {"model": "gpt-5", "input": "hi"})
    check_wire(response, events, text)
    expected = b"".join(responses_reply(fresh.received[0]).chunks).decode()
    assert text == expected  # byte for byte: nothing re-encoded on the native path
    assert fresh.received[0].json == {"model": "gpt-5", "input": "hi", "stream": True}


def test_azure_openai_uses_its_v1_responses_endpoint(client, fresh):
    response = client.responses.create(model="azure_openai/prod-gpt5", input="hi")
    assert response.output_text == "responses stand-in answering as prod-gpt5"
    (request,) = fresh.received
    assert request.path == "/openai/v1/responses"
    assert request.headers["api-key"] == AZURE_KEY and "authorization" not in request.headers


def test_native_token_usage_is_counted_from_the_responses_wire_format(client, gateway, fresh):
    client.responses.create(model="openai/gpt-5-mini", input="hi")
    with client.responses.stream(model="openai/gpt-5-mini", input="hi") as stream:
        stream.get_final_response()

    def check():
        text = httpx.get(f"http://127.0.0.1:{gateway.metrics_port}/metrics").text
        sums = {sample.labels["gen_ai_token_type"]: sample.value for family in text_string_to_metric_families(text)
                for sample in family.samples if sample.name == "gen_ai_client_token_usage_sum"
                and sample.labels.get("gen_ai_request_model") == "openai/gpt-5-mini"}
        # The stand-in reports 21 input tokens (5 of them cached) and 8 output tokens per answer.
        assert sums == {"input": 42, "output": 16, "cached_input": 10}
    eventually(check)


# ---------------------------------------------------------------- translated: Chat Completions


def test_chat_model_serves_a_responses_client_with_tools(client, fresh):
    fresh.behaviour = lambda r: openai_reply(r, text="", tool_calls=[
        {"id": "call_w1", "name": "get_weather", "arguments": '{"city": "Paris"}'}])
    raw = client.responses.with_raw_response.create(model="local/qwen-coder", input="Weather in Paris?",
                                                    tools=[WEATHER], instructions="Use tools.", max_output_tokens=200)
    response = raw.parse()
    assert raw.headers["x-switchyard-model"] == "local/qwen-coder"
    (call,) = [item for item in response.output if item.type == "function_call"]
    assert (call.call_id, call.name, call.arguments) == ("call_w1", "get_weather", '{"city": "Paris"}')
    assert response.usage.input_tokens == 11 and response.usage.input_tokens_details.cached_tokens == 3
    assert response.usage.output_tokens == 7
    (request,) = fresh.received
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {LOCAL_KEY}"
    body = request.json
    assert body["model"] == "qwen-coder" and body["max_completion_tokens"] == 200
    assert body["messages"] == [{"role": "system", "content": "Use tools."}, {"role": "user", "content": "Weather in Paris?"}]
    assert body["tools"] == [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                                               "parameters": WEATHER["parameters"]}}]

    # The tool's output goes back as a chat tool message.
    fresh.clear()
    fresh.behaviour = lambda r: openai_reply(r, text="It is sunny.")
    follow = client.responses.create(model="local/qwen-coder", tools=[WEATHER], input=[
        {"role": "user", "content": "Weather in Paris?"}, call.model_dump(exclude_none=True),
        {"type": "function_call_output", "call_id": "call_w1", "output": "sunny, 24C"}])
    assert follow.output_text == "It is sunny."
    messages = fresh.received[0].json["messages"]
    assert messages[-1] == {"role": "tool", "tool_call_id": "call_w1", "content": "sunny, 24C"}
    assert messages[-2]["tool_calls"][0]["id"] == "call_w1"


def test_chat_model_streams_the_responses_event_sequence(client, gateway, fresh):
    fresh.behaviour = lambda r: openai_reply(r, text="Calling the tool.", tool_calls=[
        {"id": "call_w2", "name": "get_weather", "arguments": '{"city": "Oslo"}'}])
    with client.responses.stream(model="local/qwen-coder", input="Weather in Oslo?", tools=[WEATHER]) as stream:
        deltas = [event.delta for event in stream if event.type == "response.function_call_arguments.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == '{"city": "Oslo"}'
    assert final.output_text == "Calling the tool."
    assert [item.type for item in final.output] == ["message", "function_call"]
    assert final.usage.total_tokens == 18
    assert fresh.received[0].json["stream_options"] == {"include_usage": True}

    response, events, text = raw_events(gateway, {"model": "local/qwen-coder", "input": "hi", "tools": [WEATHER]})
    check_wire(response, events, text)
    assert response.headers["x-switchyard-model"] == "local/qwen-coder"
    assert "content-length" not in response.headers


# ---------------------------------------------------------------- translated: Anthropic Messages


def test_claude_serves_a_responses_client(client, fresh):
    fresh.behaviour = lambda r: anthropic_reply(r, text="Let me check.", tool_use={
        "id": "toolu_7", "name": "get_weather", "input": {"city": "Rome"}})
    response = client.responses.create(model="anthropic/claude-sonnet-4-5", input="Weather in Rome?", tools=[WEATHER],
                                       max_output_tokens=5000, reasoning={"effort": "low"})
    assert response.output_text == "Let me check."
    (call,) = [item for item in response.output if item.type == "function_call"]
    assert (call.call_id, call.name, json.loads(call.arguments)) == ("toolu_7", "get_weather", {"city": "Rome"})
    assert response.usage.input_tokens == 16 and response.usage.input_tokens_details.cached_tokens == 4
    (request,) = fresh.received
    assert request.path == "/v1/messages"
    assert request.headers["x-api-key"] == ANTHROPIC_KEY and request.headers["anthropic-version"] == "2023-06-01"
    body = request.json
    assert body["model"] == "claude-sonnet-4-5" and body["max_tokens"] == 5000
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert body["tools"][0]["input_schema"] == WEATHER["parameters"]


def test_claude_streams_the_responses_event_sequence(client, gateway, fresh):
    fresh.behaviour = lambda r: anthropic_reply(r, text="Sunny in Rome.")
    with client.responses.stream(model="anthropic/claude-sonnet-4-5", input="Weather in Rome?") as stream:
        text = "".join(event.delta for event in stream if event.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert text == "Sunny in Rome." and final.output_text == "Sunny in Rome."
    assert final.status == "completed" and final.usage.output_tokens == 9

    response, events, raw = raw_events(gateway, {"model": "anthropic/claude-sonnet-4-5", "input": "hi"})
    check_wire(response, events, raw)
    assert "event: ping" not in raw and "message_stop" not in raw


# ---------------------------------------------------------------- previous_response_id and store


def test_a_translated_answer_is_kept_for_previous_response_id(client, fresh):
    fresh.behaviour = lambda r: openai_reply(r, text="Paris is the capital.")
    first = client.responses.create(model="local/qwen-coder", input="What is the capital of France?")
    fresh.clear()
    fresh.behaviour = lambda r: anthropic_reply(r, text="About 2.1 million.")
    second = client.responses.create(model="anthropic/claude-sonnet-4-5", previous_response_id=first.id,
                                     input="And its population?")
    assert second.output_text == "About 2.1 million."
    assert fresh.received[0].json["messages"] == [
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris is the capital."},
        {"role": "user", "content": "And its population?"},
    ]
    # The chain goes on: the second answer holds the first.
    fresh.clear()
    fresh.behaviour = lambda r: openai_reply(r, text="Yes.")
    client.responses.create(model="local/qwen-coder", previous_response_id=second.id, input="Sure?")
    assert [m["content"] for m in fresh.received[0].json["messages"]] == [
        "What is the capital of France?", "Paris is the capital.", "And its population?", "About 2.1 million.", "Sure?"]


def test_a_streamed_answer_is_kept_too(client, fresh):
    fresh.behaviour = lambda r: openai_reply(r, text="Streamed first answer.")
    with client.responses.stream(model="local/qwen-coder", input="one") as stream:
        first = stream.get_final_response()
    fresh.clear()
    client.responses.create(model="local/qwen-coder", previous_response_id=first.id, input="two")
    assert fresh.received[0].json["messages"][1] == {"role": "assistant", "content": "Streamed first answer."}


def test_an_unknown_or_unstored_previous_response_is_a_clear_400(client, fresh):
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model="local/qwen-coder", previous_response_id="resp_nobody_knows", input="hi")
    assert err.value.body["param"] == "previous_response_id"
    assert "does not know" in err.value.body["message"]
    unstored = client.responses.create(model="local/qwen-coder", input="hi", store=False)
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model="local/qwen-coder", previous_response_id=unstored.id, input="again")
    assert len(fresh.received) == 1  # only the stored=False request went upstream


def test_an_id_the_gateway_does_not_hold_goes_to_openai_as_it_is(client, fresh):
    client.responses.create(model="openai/gpt-5", previous_response_id="resp_openai_own", input="hi")
    assert fresh.received[0].json["previous_response_id"] == "resp_openai_own"


# ---------------------------------------------------------------- errors


def test_bad_input_is_a_400_in_the_responses_shape_and_nothing_goes_upstream(gateway, fresh):
    for body, param in [({"model": "gpt-5"}, "input"), ({"model": "gpt-5", "input": []}, "input"),
                        ({"model": "gpt-5", "input": "hi", "stream": "yes"}, "stream"),
                        ({"model": "local/qwen-coder", "input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]")]:
        answer = httpx.post(f"{gateway.url}/v1/responses", json=body)
        assert answer.status_code == 400, body
        error = answer.json()["error"]
        assert error["type"] == "invalid_request_error" and error["param"] == param and error["message"]
    assert fresh.received == []


def test_a_provider_error_comes_back_in_the_responses_shape(client, fresh):
    fresh.behaviour = lambda r: json_reply(429, {"type": "error", "error": {"type": "rate_limit_error",
                                                                            "message": "slow down"}})
    with pytest.raises(openai.RateLimitError) as err:
        client.responses.create(model="anthropic/claude-sonnet-4-5", input="hi")
    assert err.value.body == {"message": "slow down", "type": "rate_limit_error", "param": None, "code": None}


def test_an_unknown_model_is_a_404_listing_the_configured_ones(client, fresh):
    with pytest.raises(openai.NotFoundError) as err:
        client.responses.create(model="no-such-model", input="hi")
    assert "openai/gpt-5" in err.value.body["message"]
    assert fresh.received == []


# ---------------------------------------------------------------- echo


def test_the_echo_provider_answers_responses_clients(client):
    response = client.responses.create(model="echo/demo", input="ping me back")
    assert response.output_text == "[echo/demo] ping me back"
    with client.responses.stream(model="echo/demo", input="stream me") as stream:
        assert stream.get_final_response().output_text == "[echo/demo] stream me"
    follow = client.responses.create(model="echo/demo", previous_response_id=response.id, input="again")
    assert follow.output_text == "[echo/demo] again"
