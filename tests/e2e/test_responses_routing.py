"""POST /v1/responses with preference routing, turn pinning and failover, through the real Envoy.

A Responses agent loop's steps end with `function_call_output` / `custom_tool_call_output` items:
they reuse the turn's model without a router call. A model with fallbacks fails over from the
native OpenAI endpoint to a translated Claude model and the client sees one Responses answer.
"""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.gateway import Gateway
from tests.standins import StandIn, anthropic_reply, json_reply, openai_reply, responses_reply


class Router:
    """A stand-in Arch-Router: code questions go to the coding route; counts its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, request):
        self.calls += 1
        conversation = request.json["messages"][0]["content"].split("<conversation>")[1]
        route = "code_generation" if "function" in conversation else "other"
        return json_reply(200, {"id": "r", "object": "chat.completion", "model": "Arch-Router", "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant",
                                                              "content": json.dumps({"route": route})}}]})


class Queue:
    """A provider whose next answers a test can queue; then it answers normally."""

    def __init__(self, normal):
        self.normal, self.queue = normal, []

    def __call__(self, request):
        return self.queue.pop(0) if self.queue else self.normal(request)


@pytest.fixture(scope="module")
def servers():
    router, native, claude, coder = Router(), Queue(responses_reply), Queue(anthropic_reply), Queue(openai_reply)
    with StandIn(router) as r, StandIn(native) as n, StandIn(claude) as c, StandIn(coder) as k:
        r.script, n.script, c.script, k.script = router, native, claude, coder
        yield r, n, c, k


@pytest.fixture(scope="module")
def gateway(servers, tmp_path_factory):
    router, native, claude, coder = servers
    config = {
        "llm_providers": [
            {"model": "openai/gpt-5", "access_key": "k-openai", "base_url": f"{native.url}/v1", "default": True,
             "fallbacks": ["anthropic/claude-sonnet-4-5"]},
            {"model": "anthropic/claude-sonnet-4-5", "access_key": "k-claude", "base_url": f"{claude.url}/v1"},
            {"model": "local/coder", "base_url": f"{coder.url}/v1",
             "routing_preferences": [{"name": "code_generation", "description": "writing code and functions"}]},
        ],
        "routing": {"engine": "arch-router", "endpoint": f"{router.url}/v1", "timeout": "2s"},
        "failover": {"retries": 0, "first_byte_timeout": "5s"},
    }
    with Gateway(config, tmp_path_factory.mktemp("responses-routing")) as gw:
        yield gw


@pytest.fixture(autouse=True)
def clean(servers):
    for server in servers:
        server.clear()
        if hasattr(server.script, "queue"):
            server.script.queue.clear()
    servers[0].script.calls = 0


@pytest.fixture
def client(gateway):
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="client", max_retries=0)


SHELL = {"type": "function", "name": "shell", "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}}}
PATCH_TOOL = {"type": "custom", "name": "apply_patch", "description": "Edit files"}


def test_a_responses_tool_loop_is_routed_once_and_its_steps_are_pinned(client, servers):
    router, _, _, coder = servers
    coder.script.normal = lambda r: openai_reply(r, text="", tool_calls=[
        {"id": "call_1", "name": "shell", "arguments": '{"cmd": "ls"}'}])
    task = {"role": "user", "content": "write a python function that reverses a list"}
    raw = client.responses.with_raw_response.create(model="auto", input=[task], tools=[SHELL, PATCH_TOOL],
                                                    instructions="You are an agent.")
    first = raw.parse()
    assert raw.headers["x-switchyard-model"] == "local/coder" and raw.headers["x-switchyard-route"] == "code_generation"
    assert raw.headers["x-switchyard-pinned"] == "false" and router.script.calls == 1
    call = first.output[0]
    history = [task, call.model_dump(exclude_none=True),
               {"type": "function_call_output", "call_id": "call_1", "output": "main.py"}]
    for step, output_item in enumerate([None, {"type": "custom_tool_call", "call_id": "call_2", "name": "apply_patch",
                                               "input": "*** Begin Patch\n*** End Patch\n"}]):
        if output_item is not None:
            history += [output_item, {"type": "custom_tool_call_output", "call_id": "call_2", "output": "Done!"}]
        raw = client.responses.with_raw_response.create(model="auto", input=history, tools=[SHELL, PATCH_TOOL],
                                                        instructions="You are an agent.")
        assert raw.headers["x-switchyard-model"] == "local/coder", step
        assert raw.headers["x-switchyard-pinned"] == "true", step
        assert router.script.calls == 1, step  # a loop step: no router call
    # New words from the user start a new turn: decided again.
    client.responses.create(model="auto", input=[*history, {"role": "user", "content": "now tell me a joke"}],
                            tools=[SHELL, PATCH_TOOL], instructions="You are an agent.")
    assert router.script.calls == 2


def test_native_openai_fails_over_to_claude_with_a_responses_answer(client, servers):
    _, native, claude, _ = servers
    native.script.queue[:] = [json_reply(503, {"error": {"message": "overloaded", "type": "server_error"}})]
    raw = client.responses.with_raw_response.create(model="openai/gpt-5", input="hello", tools=[SHELL])
    response = raw.parse()
    assert raw.headers["x-switchyard-model"] == "anthropic/claude-sonnet-4-5"
    assert response.object == "response" and response.output_text == "anthropic stand-in answering as claude-sonnet-4-5"
    assert native.received[0].path == "/v1/responses" and native.received[0].json["model"] == "gpt-5"
    (request,) = claude.received
    assert request.path == "/v1/messages" and request.json["messages"] == [{"role": "user", "content": "hello"}]
    assert request.headers["x-api-key"] == "k-claude" and "authorization" not in request.headers


def test_a_streamed_failover_answer_is_kept_for_previous_response_id(client, servers):
    _, native, claude, _ = servers
    native.script.queue[:] = [json_reply(503, {"error": {"message": "overloaded", "type": "server_error"}})]
    with client.responses.stream(model="openai/gpt-5", input="first question") as stream:
        first = stream.get_final_response()
    assert first.output_text == "anthropic stand-in answering as claude-sonnet-4-5"
    claude.clear()
    native.script.queue[:] = [json_reply(503, {"error": {"message": "overloaded", "type": "server_error"}})]
    client.responses.create(model="openai/gpt-5", previous_response_id=first.id, input="second question")
    assert claude.received[0].json["messages"] == [
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "anthropic stand-in answering as claude-sonnet-4-5"},
        {"role": "user", "content": "second question"},
    ]


def test_the_decision_endpoint_answers_for_responses_bodies(gateway, servers):
    router, native, claude, coder = servers
    body = {"model": "auto", "input": [{"role": "user", "content": "write a function that sorts"}],
            "instructions": "You are an agent."}
    answer = httpx.post(f"{gateway.url}/routing/v1/responses", json=body).json()
    assert (answer["model"], answer["route"], answer["decision"]) == ("local/coder", "code_generation", "preference")
    assert not native.received and not claude.received and not coder.received
