"""Agent-aware routing (filter/sessions/): envelopes, turn detection, the router's view, session
keys and pinning, on request bodies shaped like Claude Code's, Roo Code's and the SDKs'."""

from __future__ import annotations

import asyncio
import copy
import json
import time

import pytest

from filter.config import parse_config
from filter.errors import ClientApi, GatewayError
from filter.resolve import DecisionKind, decide_route, resolve
from filter.config import Routing
from filter.sessions import Outcome, Sessions
from filter.sessions.conversation import read_conversation
from filter.sessions.envelopes import Envelopes
from filter.sessions.keys import affinity_id, explicit_key, implicit_key
from filter.sessions.turns import starts_user_turn
from filter.sessions.view import router_view
from filter.state.embedded import EmbeddedStore
from tests.agent_shapes import (ATTRIBUTION_REMINDER, CLAUDE_CODE_SYSTEM, ENVIRONMENT, HOOK_OUTPUT, TODO_REMINDER,
                                claude_code_request, roo_code_request)

ENVELOPES = Envelopes(("system-reminder", "user-prompt-submit-hook", "environment_details"))
MESSAGES, CHAT, RESPONSES = ClientApi.MESSAGES, ClientApi.CHAT, "responses"


def turn(api, body) -> bool:
    return starts_user_turn(read_conversation(api, body), ENVELOPES)


def view(api, body) -> list[dict]:
    return router_view(read_conversation(api, body), ENVELOPES)


# --------------------------------------------------------------------------- envelopes


def test_complete_envelopes_are_removed_with_their_content():
    text = f"{ATTRIBUTION_REMINDER}fix the failing test\n<system-reminder attr='1'>todo</system-reminder> please"
    assert ENVELOPES.strip(text) == "\nfix the failing test\n please"
    assert ENVELOPES.user_words(roo_code_request("t")["messages"][1]["content"][1]["text"]) == ""
    assert ENVELOPES.user_words(HOOK_OUTPUT) == ""


def test_what_is_not_a_complete_envelope_stays_the_users_text():
    for text in ("what does <system-reminder> mean in Claude Code?",       # never closed
                 "<system-reminders>x</system-reminders> are plural",       # another tag name
                 "</system-reminder> closing first",
                 "compare <environment_details_v2>a</environment_details_v2>"):
        assert ENVELOPES.strip(text) == text


def test_other_tags_are_envelopes_only_when_configured():
    text = "<command-name>/clear</command-name>"
    assert ENVELOPES.user_words(text) == text
    assert Envelopes(("command-name",)).user_words(text) == ""
    with pytest.raises(ValueError):
        Envelopes(("bad tag>",))


@pytest.mark.timeout(20)
def test_many_unclosed_envelopes_cost_a_linear_scan():
    # A quadratic scan (a backtracking regex) of this takes hours; this one reads it a few times.
    hostile = "<system-reminder>" * 300_000 + "the question"
    assert ENVELOPES.user_words(hostile) == hostile
    assert ENVELOPES.user_words("<system-reminder>x</system-reminder>" * 100_000 + "q") == "q"


# --------------------------------------------------------------------------- turns


def test_claude_code_loop_is_one_turn_until_the_user_writes_again():
    assert turn(MESSAGES, claude_code_request("write a function", 0))  # its trailing system message is context
    assert not turn(MESSAGES, claude_code_request("write a function", 1))
    assert not turn(MESSAGES, claude_code_request("write a function", 3, reminder_beside_results=True))
    assert turn(MESSAGES, claude_code_request("write a function", 3, follow_up="now add tests"))


def test_new_words_beside_a_tool_result_start_a_turn():
    body = claude_code_request("write a function", 1)
    body["messages"][-1]["content"].append({"type": "text", "text": "stop, use Rust instead"})
    assert turn(MESSAGES, body)


def test_harness_only_or_empty_user_messages_continue_the_turn():
    body = claude_code_request("write a function", 1)
    for content in ([{"type": "text", "text": HOOK_OUTPUT}], [{"type": "text", "text": TODO_REMINDER}], "", "  ", []):
        body["messages"].append({"role": "user", "content": content})
        assert not turn(MESSAGES, body), content
        body["messages"].pop()


def test_an_uncaptioned_image_is_user_input():
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
    body = claude_code_request("look", 1)
    body["messages"].append({"role": "user", "content": [image]})
    assert turn(MESSAGES, body)
    chat = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}]}]}
    assert turn(CHAT, chat)


def test_an_assistant_step_last_continues_the_turn():
    body = {"messages": [{"role": "user", "content": "write a haiku"}, {"role": "assistant", "content": "Autumn"}]}
    assert not turn(MESSAGES, body) and not turn(CHAT, body)


def test_roo_code_and_openai_tool_loops():
    assert turn(CHAT, roo_code_request("add a --verbose flag to the CLI"))
    assert not turn(CHAT, roo_code_request("add a --verbose flag to the CLI", 2))  # env details only
    assert turn(CHAT, roo_code_request("add a flag", 2, follow_up="also document it"))
    sdk = {"messages": [{"role": "system", "content": "You are a shell agent."},
                        {"role": "user", "content": "count the files"},
                        {"role": "assistant", "content": None, "tool_calls": [
                            {"id": "c1", "type": "function", "function": {"name": "sh", "arguments": "{}"}}]},
                        {"role": "tool", "tool_call_id": "c1", "content": "42"}]}
    assert not turn(CHAT, sdk)
    sdk["messages"].append({"role": "user", "content": "and the directories?"})
    assert turn(CHAT, sdk)
    assert not turn(CHAT, {"messages": [{"role": "system", "content": "only instructions"}]})


def test_responses_input_items():
    assert turn(RESPONSES, {"input": "write a sorting function"})
    items = [{"role": "user", "content": [{"type": "input_text", "text": "<environment_context>cwd</environment_context>"}]},
             {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "fix the bug"}]},
             {"type": "function_call", "call_id": "c1", "name": "shell", "arguments": "{}"},
             {"type": "function_call_output", "call_id": "c1", "output": "ok"}]
    assert not turn(RESPONSES, {"input": items})
    items[-1] = {"type": "custom_tool_call_output", "call_id": "c1", "output": "patched"}
    assert not turn(RESPONSES, {"input": items})
    assert turn(RESPONSES, {"input": items[:2]})


# --------------------------------------------------------------------------- what the router reads


def test_the_router_reads_only_the_users_words_and_the_assistants_text():
    body = claude_code_request("explain what src/app.py does", 3, reminder_beside_results=True, follow_up="now refactor it")
    seen = json.dumps(view(MESSAGES, body))
    assert view(MESSAGES, body)[0] == {"role": "user", "content": "explain what src/app.py does"}
    assert "now refactor it" in seen and "Let me run step 2." in seen
    for hidden in ("Attribution", "task tools", "billing-header", "Environment", "Bash", "pytest", "poem", "toolu_"):
        assert hidden not in seen, hidden


def test_a_roo_code_loop_reads_as_its_task():
    body = roo_code_request("add a --verbose flag to the CLI", 2)
    turns = view(CHAT, body)
    assert turns[0] == {"role": "user", "content": "add a --verbose flag to the CLI"}  # without Roo's <task> tag
    assert [t["role"] for t in turns] == ["user", "assistant", "assistant"]
    seen = json.dumps(turns)
    for hidden in ("Roo, a highly skilled", "VSCode", "haiku", "read_file", "src/mod_0.py"):
        assert hidden not in seen, hidden


def test_only_a_tag_around_the_whole_turn_is_taken_off():
    def first(text):
        return view(CHAT, {"messages": [{"role": "user", "content": text}]})[0]["content"]

    assert first("<feedback>\nuse tabs\n</feedback>") == "use tabs"
    assert first("<task>a</task> and <b>b</b>") == "<task>a</task> and <b>b</b>"  # not one wrapper
    assert first("explain <code>x</code>") == "explain <code>x</code>"
    assert first("<task></task>") == "<task></task>"


def test_a_turn_of_envelopes_only_is_not_shown():
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": TODO_REMINDER}]}]}
    assert view(MESSAGES, body) == []


# --------------------------------------------------------------------------- session keys


def test_the_implicit_key_is_the_same_for_every_step_of_one_conversation():
    keys = {implicit_key(read_conversation(MESSAGES, claude_code_request("write a function", n, follow_up=f)),
                         None, "claude-opus-5-5").id
            for n in range(4) for f in (None, "now add tests")}
    assert len(keys) == 1
    roo = {implicit_key(read_conversation(CHAT, roo_code_request("add a flag", n)), None, "auto").id for n in range(3)}
    assert len(roo) == 1


def test_the_implicit_key_tells_conversations_models_and_clients_apart():
    def key(body, client=None, model="claude-opus-5-5"):
        return implicit_key(read_conversation(MESSAGES, body), client, model)

    base = key(claude_code_request("write a function", 2))
    assert key(claude_code_request("fix the failing test", 2)) != base
    assert key(claude_code_request("write a function", 2), model="claude-haiku-4-5") != base  # side calls
    assert key(claude_code_request("write a function", 2), client="team-a") != base
    other_system = claude_code_request("write a function", 2)
    other_system["system"] = copy.deepcopy(CLAUDE_CODE_SYSTEM)[:2]
    assert key(other_system) != base
    fewer_tools = claude_code_request("write a function", 2)
    fewer_tools["tools"] = fewer_tools["tools"][:3]
    assert key(fewer_tools) != base
    assert not base.explicit and base.storage == "i:" + base.id and len(base.id) == 32


def test_explicit_keys_name_the_clients_id_and_keep_tenants_and_models_apart():
    a = explicit_key("conv-42", None, "auto")
    assert a.id == "conv-42" and a.explicit
    assert explicit_key("conv-42", "team-b", "auto").storage != a.storage
    assert explicit_key("conv-42", None, "auto-fast").storage != a.storage
    assert explicit_key("conv-42", None, "auto").storage == a.storage


def test_affinity_header_is_read_and_bounded():
    assert affinity_id({}) is None and affinity_id({"x-model-affinity": "  "}) is None
    assert affinity_id({"x-model-affinity": "task-7"}) == "task-7"
    with pytest.raises(GatewayError) as too_long:
        affinity_id({"x-model-affinity": "x" * 257})
    assert too_long.value.status == 400 and "x-model-affinity" in str(too_long.value)


# --------------------------------------------------------------------------- pinning

CONFIG = parse_config({
    "llm_providers": [
        {"model": "echo/general", "default": True},
        {"model": "echo/coder", "routing_preferences": [
            {"name": "code_generation", "description": "writing code"},
            {"name": "debugging", "description": "fixing bugs"}]},
        {"model": "echo/writer", "routing_preferences": [{"name": "creative_writing", "description": "poems"}]},
    ],
}, "test.yaml", env={})


class Router:
    """Stands in for an engine: answers by keyword from the latest user turn of the view, and
    records every view it was shown."""

    def __init__(self):
        self.views: list[list[dict]] = []

    async def __call__(self, plan, view):
        self.views.append(view)
        latest = next((t["content"] for t in reversed(view) if t["role"] == "user"), "")
        route = "creative_writing" if "poem" in latest else "debugging" if "fix" in latest else \
            "code_generation" if "function" in latest or "test" in latest else None
        return decide_route(plan, route), 1.0


def with_tool_step(body: dict) -> dict:
    """The body of the next request of a loop: the model called a tool, here is its result."""
    body = copy.deepcopy(body)
    body["messages"] += [{"role": "assistant", "content": [{"type": "tool_use", "id": "t9", "name": "Bash", "input": {}}]},
                         {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t9", "content": "ok"}]}]
    return body


def decide(sessions, router, body, api=MESSAGES, headers=None, client=None, preferences=None):
    plan = resolve(CONFIG, body.get("model"), preferences)
    return asyncio.run(sessions.decide(plan, api, body, body.get("model"), headers or {}, client,
                                       lambda v: router(plan, v)))


@pytest.fixture
def sessions(tmp_path):
    return Sessions(Routing(), EmbeddedStore(tmp_path))


def test_a_loop_is_decided_once_and_a_new_user_turn_is_decided_again(sessions):
    router = Router()
    first = decide(sessions, router, claude_code_request("write a python function", 0, model="auto"))
    assert (first.decision.provider.slug, first.outcome, first.pinned) == ("echo/coder", Outcome.ROUTED, False)
    for step in (1, 2, 3):
        again = decide(sessions, router, claude_code_request("write a python function", step, model="auto"))
        assert (again.decision.provider.slug, again.decision.route, again.outcome, again.pinned, again.router_ms) == \
               ("echo/coder", "code_generation", Outcome.PINNED, True, None)
        assert again.session == first.session
    assert len(router.views) == 1  # no router call for the three tool steps
    turn2 = decide(sessions, router, claude_code_request("write a python function", 3, follow_up="now a poem", model="auto"))
    assert (turn2.decision.provider.slug, turn2.outcome) == ("echo/writer", Outcome.ROUTED)
    step = decide(sessions, router, with_tool_step(
        claude_code_request("write a python function", 3, follow_up="now a poem", model="auto")))
    assert (step.decision.provider.slug, step.outcome) == ("echo/writer", Outcome.PINNED)
    assert len(router.views) == 2


def test_the_router_never_sees_what_the_harness_added(sessions):
    router = Router()
    decide(sessions, router, claude_code_request("fix the failing test", 2, reminder_beside_results=True, model="auto"))
    (seen,) = router.views
    assert seen[0] == {"role": "user", "content": "fix the failing test"}
    assert "Attribution" not in json.dumps(seen) and "poem" not in json.dumps(seen)


def test_a_cold_continuation_is_decided_once_then_pinned(sessions):
    router = Router()
    cold = decide(sessions, router, claude_code_request("fix the failing test", 2, model="auto"))
    assert (cold.decision.route, cold.outcome, cold.pinned) == ("debugging", Outcome.COLD, False)
    later = decide(sessions, router, claude_code_request("fix the failing test", 3, model="auto"))
    assert (later.decision.route, later.outcome) == ("debugging", Outcome.PINNED)
    assert len(router.views) == 1


def test_side_calls_under_another_model_name_are_decided_on_their_own(sessions):
    router = Router()
    decide(sessions, router, claude_code_request("write a python function", 0, model="auto"))
    side = claude_code_request("write a python function", 1, model="claude-haiku-4-5")
    config_route = resolve(CONFIG, "auto", None)  # the side call is routed by the same plan
    result = asyncio.run(sessions.decide(config_route, MESSAGES, side, side["model"], {}, None,
                                         lambda v: router(config_route, v)))
    assert result.outcome is Outcome.COLD and len(router.views) == 2


def test_explicit_affinity_holds_across_user_turns(sessions):
    router = Router()
    headers = {"x-model-affinity": "conv-1"}
    first = decide(sessions, router, {"model": "auto", "messages": [{"role": "user", "content": "write a poem"}]},
                   CHAT, headers)
    assert (first.decision.provider.slug, first.session, first.outcome) == ("echo/writer", "conv-1", Outcome.COLD)
    later = decide(sessions, router, {"model": "auto", "messages": [
        {"role": "user", "content": "write a poem"}, {"role": "assistant", "content": "..."},
        {"role": "user", "content": "now fix this python function"}]}, CHAT, headers)
    assert (later.decision.provider.slug, later.pinned, later.outcome) == ("echo/writer", True, Outcome.PINNED)
    dropped = decide(sessions, router, {"model": "auto", "messages": [
        {"role": "user", "content": "now fix this python function"}]}, CHAT)
    assert dropped.decision.provider.slug == "echo/coder" and dropped.session != "conv-1"
    other_tenant = decide(sessions, router, {"model": "auto", "messages": [
        {"role": "user", "content": "fix the python function"}]}, CHAT, headers, client="team-b")
    assert other_tenant.decision.provider.slug == "echo/coder"


def test_turn_pinning_off_decides_every_request_but_honours_affinity(tmp_path):
    sessions = Sessions(Routing(turn_pinning=False), EmbeddedStore(tmp_path))
    router = Router()
    for step in range(3):
        result = decide(sessions, router, claude_code_request("write a python function", step, model="auto"))
        assert (result.session, result.outcome, result.pinned) == (None, None, False)
    assert len(router.views) == 3
    headers = {"x-model-affinity": "a"}
    decide(sessions, router, {"model": "auto", "messages": [{"role": "user", "content": "write a poem"}]}, CHAT, headers)
    pinned = decide(sessions, router, {"model": "auto", "messages": [{"role": "user", "content": "fix it"}]}, CHAT, headers)
    assert pinned.pinned and pinned.decision.provider.slug == "echo/writer"


def test_a_failing_store_never_fails_the_decision(tmp_path):
    sessions = Sessions(Routing(), EmbeddedStore(tmp_path / "missing"))
    router = Router()
    for step in (0, 1):
        result = decide(sessions, router, claude_code_request("write a python function", step, model="auto"))
        assert (result.decision.provider.slug, result.outcome, result.pinned) == ("echo/coder", Outcome.STORE_ERROR, False)
    assert len(router.views) == 2


def test_a_pin_this_configuration_cannot_serve_is_decided_again(sessions):
    router = Router()
    writer_only = parse_config({"llm_providers": [
        {"model": "echo/general", "default": True},
        {"model": "echo/writer", "routing_preferences": [{"name": "creative_writing", "description": "poems"}]}]},
        "t.yaml", env={})
    decide(sessions, router, claude_code_request("write a python function", 0, model="auto"))  # pinned to echo/coder
    body = claude_code_request("write a python function", 1, model="auto")
    plan = resolve(writer_only, "auto", None)
    result = asyncio.run(sessions.decide(plan, MESSAGES, body, "auto", {}, None, lambda v: router(plan, v)))
    assert result.outcome is Outcome.COLD and result.decision.provider.slug == "echo/general"
    again = asyncio.run(sessions.decide(plan, MESSAGES, claude_code_request("write a python function", 2, model="auto"),
                                        "auto", {}, None, lambda v: router(plan, v)))
    assert again.pinned and again.decision.provider.slug == "echo/general" and again.decision.kind is DecisionKind.DEFAULT


def test_sessions_are_bounded_by_max_entries(tmp_path):
    sessions = Sessions(Routing(session_max_entries=2), EmbeddedStore(tmp_path))
    router = Router()
    for prompt in ("write function a", "write function b", "write function c"):
        decide(sessions, router, claude_code_request(prompt, 0, model="auto"))
    assert decide(sessions, router, claude_code_request("write function a", 1, model="auto")).outcome is Outcome.COLD
    assert decide(sessions, router, claude_code_request("write function c", 1, model="auto")).outcome is Outcome.PINNED


def test_a_tenant_header_scopes_sessions(tmp_path):
    sessions = Sessions(Routing(tenant_header="x-tenant"), EmbeddedStore(tmp_path))
    router = Router()
    body = {"model": "auto", "messages": [{"role": "user", "content": "write a poem"}]}
    decide(sessions, router, body, CHAT, {"x-model-affinity": "c", "x-tenant": "a"})
    other = decide(sessions, router, {**body, "messages": [{"role": "user", "content": "fix the function"}]}, CHAT,
                   {"x-model-affinity": "c", "x-tenant": "b"})
    same = decide(sessions, router, {**body, "messages": [{"role": "user", "content": "fix the function"}]}, CHAT,
                  {"x-model-affinity": "c", "x-tenant": "a"})
    assert other.decision.provider.slug == "echo/coder" and not other.pinned
    assert same.decision.provider.slug == "echo/writer" and same.pinned


def test_without_a_store_every_request_is_decided_on_the_users_words():
    sessions = Sessions(Routing(), None)
    router = Router()
    for step in range(2):
        result = decide(sessions, router, claude_code_request("fix the failing test", step, model="auto"))
        assert (result.decision.route, result.session, result.outcome) == ("debugging", None, None)
    assert router.views[0] == [{"role": "user", "content": "fix the failing test"}]
    with pytest.raises(GatewayError):
        decide(sessions, router, claude_code_request("x", 0), headers={"x-model-affinity": "\x00bad"})


def test_a_request_without_any_user_message_has_no_implicit_session(sessions):
    """A Responses continuation by previous_response_id carries only the tool output: sharing a
    key with every other such request would pin it to another conversation's model."""
    router = Router()
    body = {"model": "auto", "previous_response_id": "resp_1", "instructions": "You are Codex.",
            "input": [{"type": "function_call_output", "call_id": "c1", "output": "ok"}]}
    plan = resolve(CONFIG, "auto", None)
    for _ in range(2):
        result = asyncio.run(sessions.decide(plan, RESPONSES, body, "auto", {}, None, lambda v: router(plan, v)))
        assert (result.session, result.outcome) == (None, None)
    assert len(router.views) == 2
    pinned = asyncio.run(sessions.decide(plan, RESPONSES, body, "auto", {"x-model-affinity": "codex-1"}, None,
                                         lambda v: router(plan, v)))
    assert pinned.session == "codex-1"
