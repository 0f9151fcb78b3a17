"""Codex CLI (the real binary, pinned in tests/clients) running agent tasks through Switchyard.

Codex speaks only the Responses API and streams. `codex exec` gets a model provider pointing at
the gateway and a task; the stand-in provider plays the model: it runs a shell command with
Codex's `exec_command` tool, then writes a file with its freeform `apply_patch` tool (a custom
tool), then answers. Codex really runs both tools, so the files it leaves show that every step
of the loop went through: once against a Responses provider (native, passed through) and once
against a Chat Completions provider (translated both ways, custom tool included).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.gateway import Gateway
from tests.pinned import CLIENTS, require_client
from tests.standins import Received, StandIn, openai_reply, responses_reply

CODEX = CLIENTS / "codex"
PATCH = "*** Begin Patch\n*** Add File: greeting.txt\n+hello from the patch\n*** End Patch\n"
SHELL_COMMAND = "printf 'written by exec_command' > note.txt"
FINAL = "TASK-DONE: note.txt and greeting.txt are written."


@pytest.fixture(scope="module", autouse=True)
def codex_installed():
    require_client("codex")  # skips on a developer's machine without it, fails under CI


def tool_outputs(request: Received) -> int:
    body = request.json
    if "input" in body:
        return sum(1 for item in body["input"] if item.get("type") in ("function_call_output", "custom_tool_call_output"))
    return sum(1 for message in body["messages"] if message["role"] == "tool")


def step(request: Received):
    """The model's plan: a shell command, then a patch, then the answer."""
    done = tool_outputs(request)
    native = request.path.endswith("/responses")
    if done == 0:
        call = {"call_id": "call_shell", "name": "exec_command", "arguments": json.dumps({"cmd": SHELL_COMMAND})}
        return responses_reply(request, text="", calls=[call]) if native else openai_reply(
            request, text="", tool_calls=[{"id": call["call_id"], "name": call["name"], "arguments": call["arguments"]}])
    if done == 1:
        if native:
            return responses_reply(request, text="", calls=[{"call_id": "call_patch", "name": "apply_patch", "input": PATCH}])
        return openai_reply(request, text="", tool_calls=[
            {"id": "call_patch", "name": "apply_patch", "arguments": json.dumps({"input": PATCH})}])
    return responses_reply(request, text=FINAL) if native else openai_reply(request, text=FINAL)


# Codex picks its tools by the model's name (a known one gets the freeform apply_patch tool), so
# both gateways serve the name `gpt-5.5`: one from OpenAI, one as an alias of a Chat Completions model.
MODEL = "gpt-5.5"
CONFIGS = {
    "native": lambda url: {"llm_providers": [
        {"model": f"openai/{MODEL}", "access_key": "sk-openai-upstream", "base_url": f"{url}/v1", "default": True}]},
    "translated": lambda url: {
        "llm_providers": [{"model": "local/qwen3-coder", "access_key": "local-upstream", "base_url": f"{url}/v1",
                           "default": True}],
        "model_aliases": {MODEL: {"target": "local/qwen3-coder"}}},
}


@pytest.fixture(scope="module")
def providers():
    with StandIn(step) as server:
        yield server


def codex(gateway: Gateway, tmp: Path, model: str, name: str) -> tuple[subprocess.CompletedProcess, Path]:
    """`codex exec` with a model provider at the gateway, in a fresh home and work directory."""
    home = tmp / f"home-{name}"
    (home / ".codex").mkdir(parents=True)
    (home / ".codex" / "config.toml").write_text(
        f'model = "{model}"\n'
        'model_provider = "switchyard"\n'
        "[model_providers.switchyard]\n"
        'name = "Switchyard"\n'
        f'base_url = "{gateway.url}/v1"\n'
        'env_key = "SWITCHYARD_CLIENT_KEY"\n'
        'wire_api = "responses"\n')
    work = tmp / f"work-{name}"
    work.mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "CODEX_HOME": str(home / ".codex"),
           "SWITCHYARD_CLIENT_KEY": "codex-client-key"}
    result = subprocess.run(
        [str(CODEX), "exec", "--skip-git-repo-check", "-s", "danger-full-access", "write the two files"],
        env=env, cwd=work, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180)
    return result, work


def run_task(providers: StandIn, tmp: Path, name: str) -> list[Received]:
    providers.clear()
    with Gateway({**CONFIGS[name](providers.url), "routing": {"engine": "none"}}, tmp) as gateway:
        result, work = codex(gateway, tmp, MODEL, name)
    assert result.returncode == 0, result.stderr[-3000:]
    assert FINAL in result.stdout
    assert (work / "note.txt").read_text() == "written by exec_command"
    assert (work / "greeting.txt").read_text() == "hello from the patch\n"
    turns = [r for r in providers.received if r.method == "POST"]
    assert [tool_outputs(r) for r in turns] == [0, 1, 2]
    for request in turns:
        assert "codex-client-key" not in json.dumps(request.headers)
        assert request.json["stream"] is True
    return turns


def test_codex_completes_a_tool_loop_against_a_responses_provider(providers, tmp_path):
    turns = run_task(providers, tmp_path, "native")
    assert {r.path for r in turns} == {"/v1/responses"}
    assert all(r.headers["authorization"] == "Bearer sk-openai-upstream" for r in turns)
    last = turns[-1].json
    assert last["model"] == "gpt-5.5"
    outputs = {item["call_id"]: item for item in last["input"] if item["type"].endswith("_output")}
    assert outputs["call_shell"]["type"] == "function_call_output"
    assert outputs["call_patch"]["type"] == "custom_tool_call_output"
    assert any(t.get("type") == "custom" and t["name"] == "apply_patch" for t in last["tools"])


def test_codex_completes_a_tool_loop_against_a_chat_completions_provider(providers, tmp_path):
    turns = run_task(providers, tmp_path, "translated")
    assert {r.path for r in turns} == {"/v1/chat/completions"}
    assert all(r.headers["authorization"] == "Bearer local-upstream" for r in turns)
    last = turns[-1].json
    assert last["model"] == "qwen3-coder"
    calls = {c["id"]: c["function"] for m in last["messages"] if m["role"] == "assistant" for c in m.get("tool_calls", ())}
    assert calls["call_shell"] == {"name": "exec_command", "arguments": json.dumps({"cmd": SHELL_COMMAND})}
    assert json.loads(calls["call_patch"]["arguments"]) == {"input": PATCH}  # the custom tool's freeform input
    results = {m["tool_call_id"] for m in last["messages"] if m["role"] == "tool"}
    assert results == {"call_shell", "call_patch"}
    patch_tool = next(t["function"] for t in last["tools"] if t["function"]["name"] == "apply_patch")
    assert patch_tool["parameters"]["required"] == ["input"]
    assert last["messages"][0]["role"] == "system"  # Codex's instructions
