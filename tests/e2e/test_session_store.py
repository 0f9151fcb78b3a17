"""Sessions shared across replicas through a real Redis, a Redis outage, and the Arch-Router engine.

The router here is a stand-in Arch-Router that drifts as Arch-Router does on a growing agent
conversation: it answers the coding route while the conversation is short and the writing route
once the loop's own turns pile up. Without pinning the loop would change model mid-plan; with
it, the model chosen for the turn holds whichever gateway serves a step.
"""

from __future__ import annotations

import json
import re

import httpx
import openai
import pytest

from tests.agent_clients import openai_turn
from tests.agent_shapes import claude_code_request, roo_code_request
from tests.agent_standin import AgentStandIn
from tests.gateway import Gateway, eventually
from tests.redis_server import RedisServer
from tests.standins import StandIn, json_reply

CODE = "write a python function that reverses a linked list"
PASSWORD = "redis-secret-for-tests"


class DriftingRouter:
    def __init__(self):
        self.prompts: list[str] = []
        self.server = StandIn(self.behaviour)

    def behaviour(self, request):
        prompt = request.json["messages"][0]["content"]
        self.prompts.append(prompt)
        conversation = json.loads(prompt.split("<conversation>\n\n")[1].split("\n\n</conversation>")[0])
        route = "code_generation" if len(conversation) <= 2 else "creative_writing"
        return json_reply(200, {"choices": [{"index": 0, "message": {"role": "assistant",
                                                                      "content": json.dumps({"route": route})}}]})


@pytest.fixture(scope="module")
def agent():
    with AgentStandIn(steps=3) as server:
        yield server


@pytest.fixture(scope="module")
def router():
    drifting = DriftingRouter()
    with drifting.server:
        yield drifting


@pytest.fixture(scope="module")
def redis(tmp_path_factory):
    with RedisServer(tmp_path_factory.mktemp("redis"), password=PASSWORD) as server:
        yield server


def config(agent, router, **routing) -> dict:
    return {
        "llm_providers": [
            {"model": "openai/gpt-4o-mini", "access_key": "sk-oa", "base_url": f"{agent.url}/v1", "default": True},
            {"model": "openai/gpt-4o", "access_key": "sk-oa", "base_url": f"{agent.url}/v1",
             "routing_preferences": [{"name": "code_generation", "description": "writing code"}]},
            {"model": "anthropic/claude-sonnet-4-5", "access_key": "sk-ant", "base_url": f"{agent.url}/v1",
             "routing_preferences": [{"name": "creative_writing", "description": "poems and stories"}]},
        ],
        "routing": {"engine": "arch-router", "endpoint": f"{router.server.url}/v1", "timeout": "2s",
                    "unknown_model": "route", **routing},
    }


@pytest.fixture(scope="module")
def replicas(agent, router, redis, tmp_path_factory):
    """Two `switchyard up` on one Redis, as two replicas behind a Service."""
    tmp = tmp_path_factory.mktemp("replicas")
    shared = config(agent, router)
    shared["gateway"] = {"store": {"url": redis.url, "key_prefix": "sy-e2e:", "password": "$SY_REDIS_PASSWORD"}}
    env = {"SY_REDIS_PASSWORD": PASSWORD}
    with Gateway(shared, tmp, env=env) as one, Gateway(shared, tmp, env=env) as two:
        yield one, two


@pytest.fixture
def fresh(agent, router):
    agent.clear()
    router.prompts.clear()
    return agent


def clients(*gateways):
    return [openai.OpenAI(base_url=f"{g.url}/v1", api_key="unused", max_retries=0) for g in gateways]


def counts(gateway) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{gateway.metrics_port}/metrics").text
    return {m.group(1): float(m.group(2)) for m in
            re.finditer(r'^switchyard_session_decisions_total\{outcome="(\w+)"\} (\S+)$', text, re.M)}


def test_two_gateways_on_one_redis_keep_the_turns_model_for_alternate_steps(replicas, fresh, router, redis):
    one, two = replicas
    steps = openai_turn(clients(one, two), [{"role": "user", "content": CODE}])  # steps 0, 2 on one; 1, 3 on two
    assert [(s["x-switchyard-model"], s["x-switchyard-pinned"]) for s in steps] == \
           [("openai/gpt-4o", "false")] + [("openai/gpt-4o", "true")] * 3
    assert len(router.prompts) == 1  # one decision for the turn, made by the first gateway
    assert counts(two).get("pinned", 0) >= 2 and "routed" not in counts(two)  # two only reused one's pin
    assert fresh.errors == []
    assert redis.keys("sy-e2e:sessions:e:*") and not [k for k in redis.keys("*") if not k.startswith("sy-e2e:")]


def test_redis_stopped_mid_loop_every_request_still_answers(replicas, fresh, redis):
    one, two = replicas
    messages = [{"role": "user", "content": f"{CODE}, with a docstring"}]
    loop = clients(one, two)
    before = counts(one).get("store_error", 0) + counts(two).get("store_error", 0)
    first = loop[0].chat.completions.with_raw_response.create(model="auto", messages=messages)
    assert first.headers["x-switchyard-pinned"] == "false"
    redis.stop()
    try:
        steps = openai_turn(loop, messages)  # the whole turn again, with the store down
        assert steps and all(s["x-switchyard-model"] for s in steps)
        assert all(s["x-switchyard-pinned"] == "false" for s in steps)  # decided as if cold
        after = counts(one).get("store_error", 0) + counts(two).get("store_error", 0)
        assert after - before == len(steps)
        assert "shared store" in one.output() + two.output()
        assert PASSWORD not in one.output() + two.output()
    finally:
        redis.start()
    # Back: a loop is pinned again once the gateways try Redis again (a few seconds at most).
    def pinned_again():
        steps = openai_turn(loop, [{"role": "user", "content": f"{CODE}, once more"}])
        assert [s["x-switchyard-pinned"] for s in steps[1:]] == ["true"] * 3
    eventually(pinned_again, timeout=20)


def test_the_arch_router_prompt_holds_only_the_users_words(replicas, fresh, router):
    one, _ = replicas
    body = claude_code_request("fix the failing test in tests/test_app.py", 2, reminder_beside_results=True,
                               model="claude-opus-4-1")
    body["stream"] = False
    httpx.post(f"{one.url}/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"})  # cold: decided once
    roo = roo_code_request("add a --verbose flag to the CLI", 1, follow_up="also document it")
    roo["stream"] = False
    httpx.post(f"{one.url}/v1/chat/completions", json=roo)
    claude_prompt, roo_prompt = router.prompts
    conversation = claude_prompt.split("<conversation>")[1]
    assert json.dumps([{"role": "user", "content": "fix the failing test in tests/test_app.py"},
                       {"role": "assistant", "content": "Let me run step 0."},
                       {"role": "assistant", "content": "Let me run step 1."}]) in conversation
    conversation = roo_prompt.split("<conversation>")[1]
    assert "also document it" in conversation and "add a --verbose flag to the CLI" in conversation
    for prompt in (claude_prompt, roo_prompt):
        for hidden in ("system-reminder", "Attribution", "environment_details", "VSCode", "billing-header",
                       "You are Roo", "read_file", "pytest", "poem", "haiku"):
            assert hidden not in prompt.split("<conversation>")[1], hidden


def test_with_turn_pinning_off_every_step_is_decided_again(agent, router, fresh, tmp_path):
    with Gateway(config(agent, router, turn_pinning=False), tmp_path) as gateway:
        steps = openai_turn(clients(gateway), [{"role": "user", "content": CODE}])
    assert len(router.prompts) == len(steps) == 4
    # The drifting router moves the loop to another model mid-plan: what pinning prevents.
    assert [s["x-switchyard-model"] for s in steps] == ["openai/gpt-4o"] * 2 + ["anthropic/claude-sonnet-4-5"] * 2
    assert all(s["x-switchyard-session"] is None and s["x-switchyard-pinned"] is None for s in steps)
    assert fresh.errors == []  # even across the switch, tool ids and results arrive intact
