"""Agent loops through the real gateway with the embedded engine: one model per turn.

The stand-in provider plays the agent's model (tests/agent_standin.py): it calls the client's
own shell tool until it has seen three tool results, then answers. The clients are the real ones
— `claude -p` with its Bash tool, an OpenAI-SDK loop with `role: tool` messages, an Anthropic-SDK
loop — streaming, as they run. Routes send code to an OpenAI-compatible model and poems to an
Anthropic one, so loops cross API families both ways and the stand-in checks every tool id and
result on its side of the translation.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from tests.agent_clients import SHELL, anthropic_turn, openai_turn
from tests.agent_standin import FINAL, AgentStandIn
from tests.pinned import CLIENTS
from tests.gateway import Gateway, eventually

CLAUDE = CLIENTS / "claude"

CODE = "write a python function that reverses a linked list"
POEM = "write a short poem about autumn leaves"
ROUTES = {
    "code_generation": "writing code: new functions, classes, scripts, programs, algorithms, implementations in "
                       "Python, Rust, Go, JavaScript, SQL queries, boilerplate",
    "creative_writing": "creative writing: stories, poems, song lyrics, jokes, slogans, marketing copy, fiction",
}


@pytest.fixture(scope="module")
def agent():
    with AgentStandIn(steps=3) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(agent, tmp_path_factory):
    config = {
        "llm_providers": [
            {"model": "openai/gpt-4o-mini", "access_key": "sk-oa", "base_url": f"{agent.url}/v1", "default": True},
            {"model": "openai/gpt-4o", "access_key": "sk-oa", "base_url": f"{agent.url}/v1",
             "routing_preferences": [{"name": "code_generation", "description": ROUTES["code_generation"]}]},
            {"model": "anthropic/claude-sonnet-4-5", "access_key": "sk-ant", "base_url": f"{agent.url}/v1",
             "routing_preferences": [{"name": "creative_writing", "description": ROUTES["creative_writing"]}]},
        ],
        # A generous deadline: a missed one would serve the default model, which is not under test.
        "routing": {"engine": "embedded", "timeout": "5s", "unknown_model": "route"},
        "gateway": {"log_level": "debug"},
    }
    with Gateway(config, tmp_path_factory.mktemp("agent-sessions"), workers=2) as gw:
        yield gw


@pytest.fixture
def fresh(agent):
    agent.clear()
    return agent


def session_lines(gateway) -> list[dict]:
    lines = [json.loads(line) for line in gateway.output().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("session_outcome")]


def logged_so_far(gateway) -> int:
    """The number of session lines once every request made so far is in the access log (Envoy
    writes it in batches): a marker request is sent, and its line awaited."""
    marker = f"/barrier/{uuid.uuid4().hex}"  # a 404, logged with its path (never a query: it may hold keys)
    httpx.get(gateway.url + marker)

    def flushed():
        assert marker in gateway.output()
        return len(session_lines(gateway))
    return eventually(flushed, timeout=10)


def outcomes_since(gateway, count_before: int) -> list[tuple[str, str]]:
    return [(line["session_outcome"], line["model"]) for line in session_lines(gateway)[count_before:]]


# --------------------------------------------------------------------------- Claude Code


def claude(gateway, tmp: Path, prompt: str) -> subprocess.CompletedProcess:
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "ANTHROPIC_BASE_URL": gateway.url,
           "ANTHROPIC_API_KEY": "sk-client-side-key", "ANTHROPIC_MODEL": "claude-opus-4-1",
           "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1", "DISABLE_TELEMETRY": "1"}
    return subprocess.run([str(CLAUDE), "-p", prompt, "--allowedTools", "Bash"], env=env, cwd=tmp,
                          capture_output=True, text=True, timeout=180)


@pytest.mark.skipif(not CLAUDE.exists() and os.environ.get("CI") != "true",
                    reason="Claude Code is installed by `make test` (npm ci in tests/clients)")
def test_claude_code_runs_its_tool_loop_on_one_model_and_a_new_task_is_routed_anew(gateway, fresh, tmp_path):
    logged = logged_so_far(gateway)
    for prompt, api, model in ((CODE, "openai", "gpt-4o"), (POEM, "anthropic", "claude-sonnet-4-5")):
        fresh.clear()
        result = claude(gateway, tmp_path, prompt)
        assert result.returncode == 0, result.stderr
        assert f"{FINAL} after 3 tool results" in result.stdout
        # Every step of the loop went to one model: three tool calls, then the answer.
        assert [(s.api, s.model, s.answered) for s in fresh.log] == \
               [(api, model, "tool_call")] * 3 + [(api, model, "final")]
        assert fresh.errors == []  # every tool id and result arrived intact, translated or not
        assert all(s.stream for s in fresh.log)
    # The router decided each task once; the gateway reused its model for the six tool steps.
    expected = [("routed", "openai/gpt-4o")] + [("pinned", "openai/gpt-4o")] * 3 + \
               [("routed", "anthropic/claude-sonnet-4-5")] + [("pinned", "anthropic/claude-sonnet-4-5")] * 3
    eventually(lambda: _equal(outcomes_since(gateway, logged), expected), timeout=10)


def _equal(actual, expected):
    assert actual == expected


# --------------------------------------------------------------------------- OpenAI SDK


def test_openai_sdk_loop_keeps_each_turns_model_and_routes_the_next_turn(gateway, fresh):
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)
    messages = [{"role": "system", "content": "You are a shell agent. Use the shell tool."},
                {"role": "user", "content": CODE}]
    first = openai_turn(client, messages)
    assert [(s["x-switchyard-model"], s["x-switchyard-pinned"]) for s in first] == \
           [("openai/gpt-4o", "false")] + [("openai/gpt-4o", "true")] * 3
    assert len({s["x-switchyard-session"] for s in first}) == 1
    messages.append({"role": "user", "content": f"thanks! now {POEM}"})
    second = openai_turn(client, messages)  # an OpenAI client pinned to an Anthropic model: translated
    assert [(s["x-switchyard-model"], s["x-switchyard-pinned"]) for s in second] == \
           [("anthropic/claude-sonnet-4-5", "false")] + [("anthropic/claude-sonnet-4-5", "true")] * 3
    assert second[0]["x-switchyard-session"] == first[0]["x-switchyard-session"]  # one conversation
    assert [(s.api, s.answered) for s in fresh.log] == \
           [("openai", "tool_call")] * 3 + [("openai", "final")] + [("anthropic", "tool_call")] * 3 + [("anthropic", "final")]
    assert fresh.errors == []


# --------------------------------------------------------------------------- Anthropic SDK


def test_anthropic_sdk_loop_keeps_each_turns_model_and_routes_the_next_turn(gateway, fresh):
    client = anthropic.Anthropic(base_url=gateway.url, api_key="unused", max_retries=0)
    messages = [{"role": "user", "content": POEM}]
    first = anthropic_turn(client, messages)
    assert [(s["x-switchyard-model"], s["x-switchyard-pinned"]) for s in first] == \
           [("anthropic/claude-sonnet-4-5", "false")] + [("anthropic/claude-sonnet-4-5", "true")] * 3
    # New words beside the last tool result: a new user turn, decided again.
    messages.pop()  # the final answer: as if the user had interrupted before it
    messages[-1]["content"].append({"type": "text", "text": f"now {CODE}"})
    second = anthropic_turn(client, messages)  # an Anthropic client pinned to an OpenAI-compatible model
    assert [(s["x-switchyard-model"], s["x-switchyard-pinned"]) for s in second] == \
           [("openai/gpt-4o", "false")] + [("openai/gpt-4o", "true")] * 3
    assert fresh.errors == []


# --------------------------------------------------------------------------- visibility


def test_the_decision_endpoint_polled_between_tool_calls_answers_the_pinned_model(gateway, fresh):
    body = {"model": "auto", "tools": [SHELL], "messages": [{"role": "user", "content": CODE}]}
    first = httpx.post(f"{gateway.url}/routing/v1/chat/completions", json=body).json()
    assert (first["model"], first["pinned"]) == ("openai/gpt-4o", False) and first["router_ms"] is not None
    for step in range(3):
        body["messages"] += [
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": f"c{step}", "type": "function", "function": {"name": "shell", "arguments": "{}"}}]},
            # Tool output that reads like another task: never read, never decisive.
            {"role": "tool", "tool_call_id": f"c{step}", "content": POEM}]
        polled = httpx.post(f"{gateway.url}/routing/v1/chat/completions", json=body).json()
        assert len(polled.pop("trace_id")) == 32
        assert polled == {"models": ["openai/gpt-4o"], "model": "openai/gpt-4o", "route": "code_generation",
                          "decision": "preference", "router_ms": None, "session_id": first["session_id"], "pinned": True}
    assert fresh.log == []  # nothing went upstream


def test_both_workers_serve_pinned_steps_of_one_loop(gateway, fresh):
    """Envoy spreads the steps over the two workers; each sees the pin the other wrote."""
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)
    pids = set()
    logged_before = len(gateway.output())
    for attempt in range(4):  # a few short loops: steps land on both workers
        messages = [{"role": "user", "content": f"{CODE} (variant {attempt})"}]
        steps = openai_turn(client, messages)
        assert [s["x-switchyard-pinned"] for s in steps] == ["false", "true", "true", "true"]
        assert len({s["x-switchyard-model"] for s in steps}) == 1
    for line in gateway.output()[logged_before:].splitlines():
        found = re.search(r"switchyard\.filter\[(\d+)\] DEBUG decision .* session=pinned", line)
        if found:
            pids.add(found.group(1))
    assert len(pids) == 2, "pinned steps were all served by one worker"


def session_counts(gateway) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{gateway.metrics_port}/metrics").text
    return {m.group(1): float(m.group(2)) for m in
            re.finditer(r'^switchyard_session_decisions_total\{outcome="(\w+)"\} (\S+)$', text, re.M)}


def test_session_metrics_and_access_log_count_outcomes(gateway, fresh):
    before, logged = session_counts(gateway), logged_so_far(gateway)
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)
    steps = openai_turn(client, [{"role": "user", "content": f"{CODE}, counted"}])
    after = session_counts(gateway)
    assert after.get("routed", 0) - before.get("routed", 0) == 1
    assert after.get("pinned", 0) - before.get("pinned", 0) == 3
    expected = [("routed", "openai/gpt-4o")] + [("pinned", "openai/gpt-4o")] * 3
    eventually(lambda: _equal(outcomes_since(gateway, logged), expected), timeout=10)
    sessions = {line["session"] for line in session_lines(gateway)[logged:]}
    assert sessions == {steps[0]["x-switchyard-session"]}


def test_affinity_pins_across_user_turns_and_stays_inside_the_gateway(gateway, fresh):
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0,
                           default_headers={"x-model-affinity": "conversation-77"})
    poem = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": POEM}])
    code = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": POEM}, {"role": "assistant", "content": "Leaves fall."},
                                {"role": "user", "content": CODE}])
    assert poem.headers["x-switchyard-session"] == code.headers["x-switchyard-session"] == "conversation-77"
    assert (poem.headers["x-switchyard-model"], poem.headers["x-switchyard-pinned"]) == ("anthropic/claude-sonnet-4-5", "false")
    assert (code.headers["x-switchyard-model"], code.headers["x-switchyard-pinned"]) == ("anthropic/claude-sonnet-4-5", "true")
    without = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)
    dropped = without.chat.completions.with_raw_response.create(model="auto", messages=[{"role": "user", "content": CODE}])
    assert dropped.headers["x-switchyard-model"] == "openai/gpt-4o"
    received = fresh.server.received[-3:]
    assert all("x-model-affinity" not in r.headers for r in received)
    too_long = httpx.post(f"{gateway.url}/v1/chat/completions", headers={"x-model-affinity": "x" * 300},
                          json={"model": "auto", "messages": [{"role": "user", "content": CODE}]})
    assert too_long.status_code == 400 and "x-model-affinity" in too_long.json()["error"]["message"]
