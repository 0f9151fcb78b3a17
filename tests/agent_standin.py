"""A stand-in provider that plays a coding agent's model, in both API families, streaming or not.

For every request it finds the client's shell tool among the tools offered and counts the tool
results of the current turn (since the user last wrote). Until it has seen `steps` results it
answers with a call of that tool (`echo <marker>`); then with final text. It enforces what the
real APIs enforce about tool use and checks what the gateway must keep intact: every tool result
answers a call this stand-in issued, in the assistant message right before it, with the
command's real output; a request that breaks this gets the provider's 400, as the real API
answers it, and is recorded in `errors`.
"""

from __future__ import annotations

import itertools
import json
import threading
from dataclasses import dataclass

from tests.standins import Received, Reply, StandIn, anthropic_reply, json_reply, openai_reply

SHELL_TOOLS = ("Bash", "shell", "sh", "execute_command", "run_shell")
FINAL = "AGENT-DONE"


@dataclass
class Step:
    api: str  # "anthropic" | "openai": the wire format the request came in
    model: str  # the model the gateway asked for
    results: int  # tool results seen in the current turn
    stream: bool
    answered: str  # "tool_call" | "final" | "error"


class AgentStandIn:
    def __init__(self, steps: int = 3):
        self.steps_per_turn = steps
        self.issued: dict[str, str] = {}  # tool call id → the output its command prints
        self.log: list[Step] = []
        self.errors: list[str] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.server = StandIn(self.behaviour)

    @property
    def url(self) -> str:
        return self.server.url

    def __enter__(self) -> "AgentStandIn":
        self.server.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.stop()

    def clear(self) -> None:
        with self._lock:
            self.log.clear()
            self.errors.clear()

    # ------------------------------------------------------------------ one request

    def behaviour(self, request: Received) -> Reply:
        anthropic = request.path.split("?")[0].endswith("/messages")
        body = request.json
        try:
            results = _anthropic_results(body) if anthropic else _openai_results(body)
            for call_id, output in results:
                expected = self.issued.get(call_id)
                if expected is None or expected not in output:
                    raise ToolUseError(f"tool result {call_id!r} does not answer a call issued here "
                                       f"(expected output {expected!r}, got {output[:80]!r})")
        except ToolUseError as exc:
            with self._lock:
                self.errors.append(str(exc))
                self.log.append(Step("anthropic" if anthropic else "openai", body.get("model", ""), -1,
                                     bool(body.get("stream")), "error"))
            if anthropic:
                return json_reply(400, {"type": "error", "error": {"type": "invalid_request_error", "message": str(exc)}})
            return json_reply(400, {"error": {"message": str(exc), "type": "invalid_request_error", "param": "messages",
                                              "code": None}})
        shell = _shell_tool(body)
        with self._lock:
            number = next(self._ids)
            call = shell is not None and len(results) < self.steps_per_turn
            self.log.append(Step("anthropic" if anthropic else "openai", body.get("model", ""), len(results),
                                 bool(body.get("stream")), "tool_call" if call else "final"))
            if call:
                marker = f"sy-step-{number}"
                call_id = f"toolu_sy{number:04d}" if anthropic else f"call_sy{number:04d}"
                self.issued[call_id] = marker
        message_id = f"msg_sy{number:04d}" if anthropic else f"chatcmpl-sy{number:04d}"
        if not call:
            text = f"{FINAL} after {len(results)} tool results"
            return (anthropic_reply(request, text, message_id=message_id) if anthropic
                    else openai_reply(request, text, message_id=message_id))
        command = {"command": f"echo {marker}", "description": "Print a marker"}
        if anthropic:
            return anthropic_reply(request, f"Running step {len(results) + 1}.", message_id=message_id,
                                   tool_use={"id": call_id, "name": shell, "input": command})
        return openai_reply(request, f"Running step {len(results) + 1}.", message_id=message_id,
                            tool_calls=[{"id": call_id, "name": shell, "arguments": json.dumps(command)}])


class ToolUseError(Exception):
    pass


def _shell_tool(body: dict) -> str | None:
    names = []
    for tool in body.get("tools") or []:
        function = tool.get("function")
        names.append(function.get("name") if isinstance(function, dict) else tool.get("name"))
    return next((n for n in SHELL_TOOLS if n in names), None)


def _user_wrote(content) -> bool:
    if isinstance(content, str):
        return bool(content.strip())
    return any(isinstance(b, dict) and b.get("type") == "text" and b.get("text", "").strip()
               and not b["text"].lstrip().startswith("<system-reminder>") for b in content or [])


def _anthropic_results(body: dict) -> list[tuple[str, str]]:
    """Tool results of the current turn; each must answer a tool_use of the message before it."""
    results: list[tuple[str, str]] = []
    previous_calls: set[str] = set()
    for message in body.get("messages", []):
        content = message.get("content")
        if message.get("role") == "assistant":
            previous_calls = {b["id"] for b in content if isinstance(b, dict) and b.get("type") == "tool_use"} \
                if isinstance(content, list) else set()
            continue
        if message.get("role") != "user":
            continue
        blocks = content if isinstance(content, list) else []
        for block in blocks:
            if block.get("type") != "tool_result":
                continue
            if block.get("tool_use_id") not in previous_calls:
                raise ToolUseError(f"tool_result {block.get('tool_use_id')!r} has no tool_use in the previous message")
            output = block.get("content")
            if isinstance(output, list):
                output = "\n".join(b.get("text", "") for b in output if isinstance(b, dict))
            results.append((block["tool_use_id"], str(output)))
        if _user_wrote(content):  # new words (beside tool results or not) start a turn
            results = []
        previous_calls = set()
    return results


def _openai_results(body: dict) -> list[tuple[str, str]]:
    results: list[tuple[str, str]] = []
    open_calls: set[str] = set()
    for message in body.get("messages", []):
        role = message.get("role")
        if role == "assistant":
            open_calls = {c["id"] for c in message.get("tool_calls") or []}
        elif role == "tool":
            if message.get("tool_call_id") not in open_calls:
                raise ToolUseError(f"tool message {message.get('tool_call_id')!r} answers no tool_call before it")
            content = message.get("content")
            if isinstance(content, list):
                content = "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
            results.append((message["tool_call_id"], str(content)))
        elif role == "user" and _user_wrote(message.get("content")):
            results = []
            open_calls = set()
    return results
