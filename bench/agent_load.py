"""An agent-loop-shaped load for `make bench`: one user turn, then tool steps, loop after loop.

Each wrk connection runs its own loops one request at a time, as a coding agent does: the user
turn (a new task each loop, so no cache can answer it), then `steps` requests that each carry the
model's tool call and the tool's result. With `routing.turn_pinning` (the default) the tool steps
reuse the turn's model; without it every step is decided again by the router.
"""

from __future__ import annotations

import json

from bench.perf_load import _DONE, _lua_string

MARKER = "__TASK__"
TASK = f"write a python function that merges two sorted lists (task {MARKER})"
SHELL = {"type": "function", "function": {"name": "shell", "description": "Run a shell command",
                                          "parameters": {"type": "object", "properties": {"command": {"type": "string"}}}}}


def loop_bodies(model: str, steps: int) -> list[dict]:
    """The requests of one loop: the user turn, then each tool step (the conversation so far)."""
    messages: list[dict] = [{"role": "system", "content": "You are a coding agent. Use the shell tool."},
                            {"role": "user", "content": TASK}]
    bodies = [{"model": model, "tools": [SHELL], "messages": list(messages)}]
    for step in range(steps):
        call = f"call_{step}"
        messages += [
            {"role": "assistant", "content": f"Let me run step {step + 1}.", "tool_calls": [
                {"id": call, "type": "function", "function": {"name": "shell",
                                                              "arguments": json.dumps({"command": f"pytest -k {step}"})}}]},
            {"role": "tool", "tool_call_id": call, "content": f"{step + 3} passed in 0.{step}s"},
        ]
        bodies.append({"model": model, "tools": [SHELL], "messages": list(messages)})
    return bodies


def agent_loop_script(path: str, model: str, steps: int) -> str:
    """wrk script: per thread (run it with one connection per thread) loop after loop of
    `steps + 1` sequential requests; the loop number makes every task new."""
    parts = [json.dumps(b, separators=(",", ":")).split(MARKER) for b in loop_bodies(model, steps)]
    lines = [
        # `tid` stays a global: setup()'s thread:set() sets the thread's global, which a local would hide.
        "tid = 0",
        "local threads = 0",
        "local step = 0",
        "local loop = 0",
        "function setup(thread) threads = threads + 1; thread:set('tid', threads) end",
        # A nonce per thread and run: a later round (a new wrk) never repeats an earlier round's tasks.
        "nonce = 0",
        "function init(args) math.randomseed(tonumber(tid) * 7919 + os.time()); nonce = math.random(1, 2147483646) end",
        "local headers = {['content-type'] = 'application/json', ['authorization'] = 'Bearer sk-bench-not-a-key'}",
        "local prefixes = {" + ", ".join(_lua_string(p) for p, _ in parts) + "}",
        "local suffixes = {" + ", ".join(_lua_string(s) for _, s in parts) + "}",
        "function request()",
        "  if step == 0 then loop = loop + 1 end",
        "  local body = prefixes[step + 1] .. tostring(tid) .. '-' .. nonce .. '-' .. loop .. suffixes[step + 1]",
        f"  step = (step + 1) % {steps + 1}",
        f"  return wrk.format('POST', {_lua_string(path)}, headers, body)",
        "end",
    ]
    return "\n".join(lines) + "\n" + _DONE
