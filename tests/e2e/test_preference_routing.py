"""Preference routing end to end with the Arch-Router engine against a stand-in router server.

The stand-in speaks the OpenAI chat-completions format as vLLM does, checks the exact prompt it
receives, and answers what each test scripts: a route, "other", garbage, an error, or nothing.
"""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from router_model.engine import Route
from tests.gateway import Gateway, refused_port
from tests.standins import ARCH_ROUTER_PROMPT, Reply, StandIn, json_reply

ROUTES = [
    Route("code_generation", "generating new code snippets, functions or boilerplate"),
    Route("creative_writing", "stories, poems and other creative writing"),
]
# The routes as the router must see them, in the configuration's order.
ROUTES_JSON = ('[{"name": "code_generation", "description": "generating new code snippets, functions or boilerplate"}, '
               '{"name": "creative_writing", "description": "stories, poems and other creative writing"}]')
ROUTER_TIMEOUT_S = 0.5


class RouterScript:
    """What the stand-in router answers next; records the prompts it saw."""

    def __init__(self):
        self.answer: Reply | None = None
        self.prompts: list[str] = []

    def route(self, name: str) -> None:
        self.answer = self.reply(json.dumps({"route": name}))

    @staticmethod
    def reply(content: str | None) -> Reply:
        return json_reply(200, {"id": "r", "object": "chat.completion", "model": "Arch-Router",
                                "choices": [{"index": 0, "finish_reason": "stop",
                                             "message": {"role": "assistant", "content": content}}]})

    def __call__(self, request) -> Reply:
        body = request.json
        assert body["model"] == "Arch-Router" and len(body["messages"]) == 1
        self.prompts.append(body["messages"][0]["content"])
        return self.answer


@pytest.fixture(scope="module")
def script():
    return RouterScript()


@pytest.fixture(scope="module")
def router_server(script):
    with StandIn(script) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(upstream, router_server, tmp_path_factory):
    config = {
        "llm_providers": [
            {"model": "openai/gpt-4o-mini", "access_key": "k-default", "base_url": f"{upstream.url}/v1", "default": True},
            {"model": "openai/gpt-4o", "access_key": "k-code", "base_url": f"{upstream.url}/v1",
             "routing_preferences": [{"name": r.name, "description": r.description} for r in ROUTES[:1]]},
            {"model": "local/writer", "base_url": f"{upstream.url}/v1",
             "routing_preferences": [{"name": r.name, "description": r.description} for r in ROUTES[1:]]},
            {"model": "openai/o3", "access_key": "k-o3", "base_url": f"{upstream.url}/v1"},
        ],
        "routing": {"engine": "arch-router", "endpoint": f"{router_server.url}/v1", "timeout": f"{ROUTER_TIMEOUT_S}s"},
    }
    with Gateway(config, tmp_path_factory.mktemp("routing")) as gw:
        yield gw


@pytest.fixture
def client(gateway):
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="client", max_retries=0)


@pytest.fixture(autouse=True)
def reset(script, router_server, fresh):
    script.prompts.clear()
    script.answer = None
    router_server.clear()


def routed(client, messages, model="auto", **extra):
    raw = client.chat.completions.with_raw_response.create(model=model, messages=messages, **extra)
    return raw.headers


@pytest.mark.parametrize("route, model", [("code_generation", "openai/gpt-4o"), ("creative_writing", "local/writer")])
def test_each_route_reaches_its_model_and_the_router_sees_the_exact_prompt(client, script, fresh, route, model):
    script.route(route)
    question = f"please help with {route}"  # distinct per case: identical ones are cached
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": question}]
    headers = routed(client, messages)
    assert headers["x-switchyard-model"] == model
    assert headers["x-switchyard-route"] == route
    assert fresh.received[0].json["model"] == model.split("/")[1]
    # System prompts are not part of what the router reads.
    assert script.prompts == [ARCH_ROUTER_PROMPT.format(routes=ROUTES_JSON,
                                                        conversation=f'[{{"role": "user", "content": "{question}"}}]')]


def test_a_request_without_model_is_routed(gateway, script, fresh):
    script.route("code_generation")
    response = httpx.post(f"{gateway.url}/v1/chat/completions",
                          json={"messages": [{"role": "user", "content": "write a python function"}]})
    assert response.headers["x-switchyard-model"] == "openai/gpt-4o"


def test_multi_turn_conversation_is_sent_in_order_and_the_latest_intent_decides(client, script):
    script.route("creative_writing")
    conversation = [
        {"role": "user", "content": "write a function that reverses a list"},
        {"role": "assistant", "content": "def rev(xs): return xs[::-1]"},
        {"role": "user", "content": [{"type": "text", "text": "now write a poem about it"}]},
    ]
    headers = routed(client, conversation)
    assert headers["x-switchyard-route"] == "creative_writing"
    assert script.prompts == [ARCH_ROUTER_PROMPT.format(routes=ROUTES_JSON, conversation=(
        '[{"role": "user", "content": "write a function that reverses a list"}, '
        '{"role": "assistant", "content": "def rev(xs): return xs[::-1]"}, '
        '{"role": "user", "content": "now write a poem about it"}]'))]
    sent = json.loads(script.prompts[0].split("<conversation>\n\n")[1].split("\n\n</conversation>")[0])
    assert sent[-1] == {"role": "user", "content": "now write a poem about it"}
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]


@pytest.mark.parametrize(
    "answer",
    [
        RouterScript.reply('{"route": "other"}'),
        RouterScript.reply(""),
        RouterScript.reply(None),
        RouterScript.reply('{"route": "no_such_route"}'),
        RouterScript.reply("I think the best route is probably a mystery"),
        json_reply(500, {"error": "boom"}),
    ],
    ids=["other", "empty", "null", "unknown-route", "garbage", "http-500"],
)
def test_no_route_or_a_router_failure_serves_the_default(client, script, fresh, answer):
    script.answer = answer
    headers = routed(client, [{"role": "user", "content": f"hello {time.monotonic()}"}])
    assert headers["x-switchyard-model"] == "openai/gpt-4o-mini"
    assert "x-switchyard-route" not in headers
    assert fresh.received[0].json["model"] == "gpt-4o-mini"


def test_a_router_past_its_deadline_serves_the_default_in_bounded_time(client, script, gateway):
    """The router answers only after 20 s (40 times the deadline): the request is served by the
    default model long before that, without waiting for it."""
    script.answer = RouterScript.reply('{"route": "code_generation"}')
    script.answer.delay_s = 20.0
    start = time.monotonic()
    headers = routed(client, [{"role": "user", "content": "write a slow function"}])
    elapsed = time.monotonic() - start
    assert headers["x-switchyard-model"] == "openai/gpt-4o-mini"
    assert elapsed < script.answer.delay_s / 2  # not the router's time: the deadline's
    assert "missed its" in gateway.output()


def test_per_request_metadata_preferences_override_the_config_and_are_stripped(client, script, fresh):
    script.route("deep_thinking")
    prefs = [{"model": "openai/o3", "routing_preferences": [{"name": "deep_thinking", "description": "hard proofs"}]}]
    headers = routed(client, [{"role": "user", "content": "prove it"}],
                     metadata={"archgw_preference_config": json.dumps(prefs)})
    assert headers["x-switchyard-model"] == "openai/o3"
    assert '"name": "deep_thinking"' in script.prompts[0] and "code_generation" not in script.prompts[0]
    assert "metadata" not in fresh.received[0].json


def test_per_request_top_level_preferences_override_and_are_stripped(gateway, script, fresh):
    script.route("tiny")
    body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}],
            "routing_preferences": [{"name": "tiny", "description": "greetings", "models": ["openai/o3"]}]}
    response = httpx.post(f"{gateway.url}/v1/chat/completions", json=body)
    assert response.headers["x-switchyard-model"] == "openai/o3"
    assert "routing_preferences" not in fresh.received[0].json


def test_per_request_preferences_naming_an_unknown_model_are_rejected(gateway, script, fresh):
    body = {"messages": [{"role": "user", "content": "hi"}],
            "routing_preferences": [{"name": "tiny", "description": "greetings", "models": ["acme/unknown"]}]}
    response = httpx.post(f"{gateway.url}/v1/chat/completions", json=body)
    assert response.status_code == 400
    assert "'acme/unknown'" in response.json()["error"]["message"]
    assert fresh.received == [] and script.prompts == []


def test_decision_endpoint_answers_without_calling_any_upstream(gateway, script, fresh):
    script.route("code_generation")
    response = httpx.post(f"{gateway.url}/routing/v1/chat/completions",
                          json={"messages": [{"role": "user", "content": "implement quicksort in go"}]})
    assert response.status_code == 200
    decision = response.json()
    assert decision["model"] == "openai/gpt-4o" and decision["route"] == "code_generation"
    assert decision["decision"] == "preference" and decision["router_ms"] >= 0
    assert len(decision["session_id"]) == 32 and decision["pinned"] is False  # a new user turn: decided
    literal = httpx.post(f"{gateway.url}/routing/v1/chat/completions",
                         json={"model": "o3", "messages": [{"role": "user", "content": "x"}]}).json()
    assert len(literal.pop("trace_id")) == 32
    assert literal == {"models": ["openai/o3"], "model": "openai/o3", "route": None, "decision": "literal",
                       "router_ms": None, "session_id": None, "pinned": False}
    assert fresh.received == []


def test_decision_endpoint_for_anthropic_clients(gateway, script, fresh):
    """/routing/v1/messages reads a Messages body (system prompt apart, content blocks) and
    answers errors in Anthropic's shape."""
    script.route("creative_writing")
    body = {"model": "auto", "max_tokens": 100, "system": "You are terse.",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "a limerick about routers"}]}]}
    response = httpx.post(f"{gateway.url}/routing/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"})
    assert response.status_code == 200
    decision = response.json()
    assert (decision["model"], decision["route"], decision["decision"]) == ("local/writer", "creative_writing",
                                                                             "preference")
    assert script.prompts == [ARCH_ROUTER_PROMPT.format(
        routes=ROUTES_JSON, conversation='[{"role": "user", "content": "a limerick about routers"}]')]
    bad = httpx.post(f"{gateway.url}/routing/v1/messages", json={"model": "nope", "max_tokens": 5,
                                                                 "messages": [{"role": "user", "content": "x"}]})
    assert bad.status_code == 404
    assert bad.json()["type"] == "error" and bad.json()["error"]["type"] == "not_found_error"
    assert fresh.received == []


def test_repeated_identical_decisions_come_from_the_cache(gateway, script):
    script.route("creative_writing")
    body = {"messages": [{"role": "user", "content": "a haiku about caching, please"}]}
    first = httpx.post(f"{gateway.url}/routing/v1/chat/completions", json=body).json()
    second = httpx.post(f"{gateway.url}/routing/v1/chat/completions", json=body).json()
    assert first["route"] == second["route"] == "creative_writing"
    assert len(script.prompts) == 1


def one_route_config(upstream, router_url: str, default: str, routed: str, route: str, **routing) -> dict:
    """A default model and one routed model behind the Arch-Router engine at `router_url`."""
    return {
        "llm_providers": [
            {"model": default, "access_key": "k", "base_url": f"{upstream.url}/v1", "default": True},
            {"model": routed, "access_key": "k", "base_url": f"{upstream.url}/v1",
             "routing_preferences": [{"name": route, "description": "code"}]},
        ],
        "routing": {"engine": "arch-router", "endpoint": router_url, **routing},
    }


def test_connection_refused_serves_the_default_quickly(upstream, tmp_path):
    with refused_port() as dead, Gateway(one_route_config(upstream, f"http://127.0.0.1:{dead}/v1", "openai/fallback",
                                                          "openai/coder", "code", timeout="20s"), tmp_path) as gateway:
        start = time.monotonic()
        response = httpx.post(f"{gateway.url}/v1/chat/completions", timeout=30,
                              json={"messages": [{"role": "user", "content": "code"}]})
        assert time.monotonic() - start < 10  # a refused connection is known at once: no waiting for the 20 s deadline
        assert response.status_code == 200
        assert response.headers["x-switchyard-model"] == "openai/fallback"
        assert "router arch-router failed" in gateway.output()


def test_unknown_model_route_policy_lets_agents_with_own_model_names_be_routed(upstream, router_server, script, tmp_path):
    script.route("code_generation")
    config = one_route_config(upstream, f"{router_server.url}/v1", "openai/gpt-4o-mini", "openai/gpt-4o",
                              "code_generation", unknown_model="route")
    with Gateway(config, tmp_path) as gateway:
        response = httpx.post(f"{gateway.url}/v1/chat/completions",
                              json={"model": "claude-sonnet-4-5-20250929", "messages": [{"role": "user", "content": "code"}]})
        assert response.headers["x-switchyard-model"] == "openai/gpt-4o"
