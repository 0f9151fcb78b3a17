"""Agent-loop clients for the end-to-end tests: an OpenAI-SDK loop and an Anthropic-SDK loop, both
streaming, both running the stand-in's shell commands for real (only `echo sy-step-N`). Each step
may go to another gateway (`clients[i % len(clients)]`), as behind a load balancer."""

from __future__ import annotations

import json
import re
import subprocess

from tests.agent_standin import FINAL

SHELL = {"type": "function", "function": {"name": "shell", "description": "Run a shell command",
                                          "parameters": {"type": "object", "properties": {"command": {"type": "string"}},
                                                         "required": ["command"]}}}


def run_shell(arguments: str) -> str:
    command = json.loads(arguments)["command"]
    assert re.fullmatch(r"echo sy-step-\d+", command), command  # only what the stand-in asks for
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True).stdout


def openai_turn(clients, messages: list, tools=None) -> list[dict]:
    """Run one user turn of an OpenAI-SDK agent loop, streaming; the headers of every step."""
    clients = clients if isinstance(clients, list) else [clients]
    steps = []
    for number in range(8):
        client = clients[number % len(clients)]
        with client.chat.completions.with_streaming_response.create(
                model="auto", messages=messages, tools=tools or [SHELL], stream=True) as response:
            steps.append({k: response.headers.get(k) for k in ("x-switchyard-model", "x-switchyard-pinned",
                                                                 "x-switchyard-session")})
            text, calls = "", {}
            for chunk in response.parse():
                for choice in chunk.choices:
                    text += choice.delta.content or ""
                    for delta in choice.delta.tool_calls or []:
                        call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                        call["id"] = delta.id or call["id"]
                        call["name"] = (delta.function.name or call["name"]) if delta.function else call["name"]
                        call["arguments"] += (delta.function.arguments or "") if delta.function else ""
        if not calls:
            messages.append({"role": "assistant", "content": text})
            assert FINAL in text
            return steps
        messages.append({"role": "assistant", "content": text or None, "tool_calls": [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for c in calls.values()]})
        for c in calls.values():
            messages.append({"role": "tool", "tool_call_id": c["id"], "content": run_shell(c["arguments"])})
    raise AssertionError("the loop did not finish")


def anthropic_turn(clients, messages: list, **extra) -> list[dict]:
    """Run one user turn of an Anthropic-SDK agent loop, streaming; the headers of every step."""
    clients = clients if isinstance(clients, list) else [clients]
    steps = []
    tools = [{"name": "shell", "description": "Run a shell command",
              "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}]
    for number in range(8):
        client = clients[number % len(clients)]
        with client.messages.with_streaming_response.create(
                model="claude-opus-4-1", max_tokens=1024, system="You are a shell agent.", messages=messages,
                tools=tools, stream=True, **extra) as response:
            steps.append({k: response.headers.get(k) for k in ("x-switchyard-model", "x-switchyard-pinned",
                                                                 "x-switchyard-session")})
            blocks: dict[int, dict] = {}
            for event in response.parse():
                if event.type == "content_block_start":
                    blocks[event.index] = event.content_block.model_dump() | {"partial": ""}
                elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                    blocks[event.index]["text"] = blocks[event.index].get("text", "") + event.delta.text
                elif event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                    blocks[event.index]["partial"] += event.delta.partial_json
        content = []
        for block in blocks.values():
            if block["type"] == "tool_use":
                content.append({"type": "tool_use", "id": block["id"], "name": block["name"],
                                "input": json.loads(block["partial"] or "{}")})
            elif block["type"] == "text" and block.get("text"):
                content.append({"type": "text", "text": block["text"]})
        messages.append({"role": "assistant", "content": content})
        calls = [b for b in content if b["type"] == "tool_use"]
        if not calls:
            assert FINAL in content[0]["text"]
            return steps
        messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": c["id"], "content": run_shell(json.dumps(c["input"]))} for c in calls]})
    raise AssertionError("the loop did not finish")
