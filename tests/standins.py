"""Stand-in upstream servers on loopback that speak the providers' real wire formats.

A `StandIn` records every request it receives and answers with a scripted behaviour: an OpenAI
chat completion (JSON or SSE), an OpenAI Responses answer (JSON or SSE), an Anthropic message (JSON
or SSE), a router answer, an error, or a delay. The provider replies first check the request
against the real API's rules (tests/provider_rules.py) and answer a request the real provider would
refuse with its 400. Tests start and stop them; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from tests.provider_rules import (
    Refused,
    anthropic_error,
    check_anthropic_count_tokens,
    check_anthropic_messages,
    check_openai_chat,
    check_openai_embeddings,
    check_openai_responses,
    openai_error,
)


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    chunks: list[bytes] | None = None  # sent one write each, flushed, for SSE
    delay_s: float = 0.0
    chunk_delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    # Streams: after `hold_after` chunks, wait until `release` is set (or `hold_s` passes) before
    # the rest, so a test knows a stream is in flight without sleeping. `sent` is set once the
    # held part has been written.
    hold_after: int | None = None
    release: threading.Event = field(default_factory=threading.Event)
    hold_s: float = 30.0
    sent: threading.Event = field(default_factory=threading.Event)
    # Streams: cut the connection after this many chunks (no terminating chunk), as a provider
    # that dies mid-answer does.
    abort_after: int | None = None


Behaviour = Callable[[Received], Reply]


def openai_refusal(request: Received, check=check_openai_chat) -> Reply | None:
    """The real OpenAI API's 400 for a request it would refuse, or None."""
    try:
        check(json.loads(request.body) if request.body else None)
    except (Refused, ValueError) as exc:
        refused = exc if isinstance(exc, Refused) else Refused("We could not parse the JSON body of your request.")
        return json_reply(refused.status, openai_error(refused))
    return None


def anthropic_refusal(request: Received, check=check_anthropic_messages) -> Reply | None:
    """The real Anthropic API's 400 for a request it would refuse, or None."""
    try:
        check(json.loads(request.body) if request.body else None)
    except (Refused, ValueError) as exc:
        refused = exc if isinstance(exc, Refused) else Refused("Invalid JSON body")
        return json_reply(refused.status, anthropic_error(refused))
    return None


def openai_reply(request: Received, text: str | None = None, tool_calls: list | None = None,
                 message_id: str = "chatcmpl-standin") -> Reply:
    """A chat completion naming the model the upstream was asked for."""
    refusal = openai_refusal(request)
    if refusal is not None:
        return refusal
    body = request.json if request.body else {}
    model = body.get("model", "?")
    text = text if text is not None else f"openai stand-in answering as {model}"
    usage = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18,
             "prompt_tokens_details": {"cached_tokens": 3}}
    if body.get("stream"):
        def chunk(delta, finish=None, **extra):
            event = {"id": message_id, "object": "chat.completion.chunk", "created": 1, "model": model,
                     "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
            return b"data: " + json.dumps(event).encode() + b"\n\n"

        chunks = [chunk({"role": "assistant", "content": ""})]
        for i, word in enumerate(text.split(" ")):
            chunks.append(chunk({"content": (" " if i else "") + word}))
        if tool_calls:
            for i, call in enumerate(tool_calls):
                chunks.append(chunk({"tool_calls": [{"index": i, "id": call["id"], "type": "function",
                                                     "function": {"name": call["name"], "arguments": ""}}]}))
                args = call["arguments"]
                half = len(args) // 2
                for piece in (args[:half], args[half:]):
                    chunks.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}))
        chunks.append(chunk({}, "tool_calls" if tool_calls else "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            event = {"id": message_id, "object": "chat.completion.chunk", "created": 1, "model": model,
                     "choices": [], "usage": usage}
            chunks.append(b"data: " + json.dumps(event).encode() + b"\n\n")
        chunks.append(b"data: [DONE]\n\n")
        return Reply(chunks=chunks, content_type="text/event-stream")
    message: dict = {"role": "assistant", "content": text}
    if tool_calls:
        message["tool_calls"] = [{"id": c["id"], "type": "function",
                                  "function": {"name": c["name"], "arguments": c["arguments"]}} for c in tool_calls]
    return Reply(body=json.dumps({
        "id": message_id, "object": "chat.completion", "created": 1, "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if tool_calls else "stop"}],
        "usage": usage,
    }).encode())


def anthropic_reply(request: Received, text: str | None = None, tool_use: dict | None = None,
                    message_id: str = "msg_standin") -> Reply:
    """An Anthropic Messages answer naming the model the upstream was asked for."""
    refusal = anthropic_refusal(request)
    if refusal is not None:
        return refusal
    body = request.json if request.body else {}
    model = body.get("model", "?")
    text = text if text is not None else f"anthropic stand-in answering as {model}"
    if body.get("stream"):
        def event(name, data):
            return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()

        chunks = [event("message_start", {"type": "message_start", "message": {
            "id": message_id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 12, "output_tokens": 1, "cache_read_input_tokens": 4}}}),
            event("content_block_start", {"type": "content_block_start", "index": 0,
                                          "content_block": {"type": "text", "text": ""}}),
            b"event: ping\ndata: {\"type\": \"ping\"}\n\n"]
        for i, word in enumerate(text.split(" ")):
            chunks.append(event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                        "delta": {"type": "text_delta", "text": (" " if i else "") + word}}))
        chunks.append(event("content_block_stop", {"type": "content_block_stop", "index": 0}))
        stop = "end_turn"
        if tool_use:
            stop = "tool_use"
            chunks.append(event("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {
                "type": "tool_use", "id": tool_use["id"], "name": tool_use["name"], "input": {}}}))
            raw = json.dumps(tool_use["input"])
            half = len(raw) // 2
            for piece in (raw[:half], raw[half:]):
                chunks.append(event("content_block_delta", {"type": "content_block_delta", "index": 1,
                                                            "delta": {"type": "input_json_delta", "partial_json": piece}}))
            chunks.append(event("content_block_stop", {"type": "content_block_stop", "index": 1}))
        chunks.append(event("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                                              "usage": {"output_tokens": 9}}))
        chunks.append(event("message_stop", {"type": "message_stop"}))
        return Reply(chunks=chunks, content_type="text/event-stream")
    content: list = [{"type": "text", "text": text}]
    if tool_use:
        content.append({"type": "tool_use", **tool_use})
    return Reply(body=json.dumps({
        "id": message_id, "type": "message", "role": "assistant", "model": model, "content": content,
        "stop_reason": "tool_use" if tool_use else "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 9, "cache_read_input_tokens": 4},
    }).encode())


def responses_reply(request: Received, text: str | None = None, calls: list | None = None,
                    response_id: str = "resp_standin") -> Reply:
    """An OpenAI Responses answer (JSON, or the SSE event sequence OpenAI streams), after the real
    API's rules (`check_openai_responses`: Chat Completions' fields, output limits, sampling
    settings on reasoning models).

    `calls`: [{"call_id", "name", "arguments"}] function calls, or {"call_id", "name", "input"}
    for custom (freeform) tools.
    """
    refused = openai_refusal(request, check_openai_responses)
    if refused is not None:
        return refused
    body = request.json
    model = body.get("model", "?")
    text = text if text is not None else f"responses stand-in answering as {model}"
    output: list = []
    if text:
        output.append({"id": "msg_standin", "type": "message", "role": "assistant", "status": "completed",
                       "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]})
    for i, call in enumerate(calls or ()):
        if "input" in call:
            output.append({"id": f"ctc_{i}", "type": "custom_tool_call", "call_id": call["call_id"],
                           "name": call["name"], "input": call["input"]})
        else:
            output.append({"id": f"fc_{i}", "type": "function_call", "status": "completed", "call_id": call["call_id"],
                           "name": call["name"], "arguments": call["arguments"]})
    usage = {"input_tokens": 21, "input_tokens_details": {"cached_tokens": 5, "cache_write_tokens": 0},
             "output_tokens": 8, "output_tokens_details": {"reasoning_tokens": 2}, "total_tokens": 29}
    response = {"id": response_id, "object": "response", "created_at": 1, "status": "completed", "error": None,
                "incomplete_details": None, "instructions": body.get("instructions"), "model": model,
                "output": output, "parallel_tool_calls": True, "tool_choice": body.get("tool_choice", "auto"),
                "tools": body.get("tools", []), "usage": usage, "metadata": {}}
    if not body.get("stream"):
        return Reply(body=json.dumps(response).encode())
    chunks: list[bytes] = []

    def event(kind: str, **data):
        data = {"type": kind, "sequence_number": len(chunks), **data}
        chunks.append(f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode())

    started = {**response, "status": "in_progress", "output": [], "usage": None}
    event("response.created", response=started)
    event("response.in_progress", response=started)
    for index, item in enumerate(output):
        where = {"item_id": item["id"], "output_index": index}
        if item["type"] == "message":
            event("response.output_item.added", output_index=index, item={**item, "status": "in_progress", "content": []})
            event("response.content_part.added", **where, content_index=0,
                  part={"type": "output_text", "text": "", "annotations": [], "logprobs": []})
            for i, word in enumerate(text.split(" ")):
                event("response.output_text.delta", **where, content_index=0, delta=(" " if i else "") + word, logprobs=[])
            event("response.output_text.done", **where, content_index=0, text=text, logprobs=[])
            event("response.content_part.done", **where, content_index=0, part=item["content"][0])
        elif item["type"] == "function_call":
            event("response.output_item.added", output_index=index, item={**item, "status": "in_progress", "arguments": ""})
            half = len(item["arguments"]) // 2
            for piece in (item["arguments"][:half], item["arguments"][half:]):
                event("response.function_call_arguments.delta", **where, delta=piece)
            event("response.function_call_arguments.done", **where, arguments=item["arguments"])
        else:
            event("response.output_item.added", output_index=index, item={**item, "input": ""})
            event("response.custom_tool_call_input.delta", **where, delta=item["input"])
            event("response.custom_tool_call_input.done", **where, input=item["input"])
        event("response.output_item.done", output_index=index, item=item)
    event("response.completed", response=response)
    return Reply(chunks=chunks, content_type="text/event-stream")


def embeddings_reply(request: Received) -> Reply:
    """OpenAI's embeddings answer: one vector per input, of the model's (or the asked) dimensions."""
    refusal = openai_refusal(request, check_openai_embeddings)
    if refusal is not None:
        return refusal
    body = request.json
    data = body["input"]
    items = [data] if isinstance(data, str) or (isinstance(data, list) and data and type(data[0]) is int) else data
    size = body.get("dimensions") or 8  # short vectors: the tests read the shape, not the values
    vectors = [{"object": "embedding", "index": i, "embedding": [round(0.001 * (i + 1) * (j + 1), 6) for j in range(size)]}
               for i in range(len(items))]
    tokens = sum(len(x.split()) if isinstance(x, str) else len(x) for x in items)
    return Reply(body=json.dumps({"object": "list", "data": vectors, "model": body["model"],
                                  "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}).encode())


def count_tokens_reply(request: Received, input_tokens: int | None = None) -> Reply:
    """Anthropic's count_tokens answer (a count made up from the body's size unless given)."""
    refusal = anthropic_refusal(request, check_anthropic_count_tokens)
    if refusal is not None:
        return refusal
    count = input_tokens if input_tokens is not None else len(request.body) // 4
    return Reply(body=json.dumps({"input_tokens": count}).encode())


def json_reply(status: int, payload: dict) -> Reply:
    return Reply(status=status, body=json.dumps(payload).encode())


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client (Envoy) closing a kept-alive connection is normal; anything else is reported.
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)


class StandIn:
    """A threaded HTTP/1.1 server on 127.0.0.1 with a replaceable behaviour."""

    def __init__(self, behaviour: Behaviour):
        self.behaviour = behaviour
        self.received: list[Received] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def _handle(self):
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Received(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                with outer._lock:
                    outer.received.append(request)
                reply = outer.behaviour(request)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                self.send_response(reply.status)
                self.send_header("content-type", reply.content_type)
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                try:
                    if reply.chunks is None:
                        self.send_header("content-length", str(len(reply.body)))
                        self.end_headers()
                        self.wfile.write(reply.body)
                    else:
                        self.send_header("transfer-encoding", "chunked")
                        self.end_headers()
                        for i, piece in enumerate(reply.chunks):
                            if i == reply.hold_after:
                                reply.sent.set()
                                reply.release.wait(reply.hold_s)
                            if i == reply.abort_after:
                                self.close_connection = True
                                self.connection.shutdown(socket.SHUT_RDWR)
                                return
                            self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                            self.wfile.flush()
                            if reply.chunk_delay_s:
                                time.sleep(reply.chunk_delay_s)
                        self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_POST = do_GET = _handle

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "StandIn":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def clear(self) -> None:
        with self._lock:
            self.received.clear()

    def __enter__(self) -> "StandIn":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# Arch-Router's prompt as the model was trained on it, typed out here (not built with the
# gateway's own code): a stand-in router compares what it receives with this. Every newline, the
# double space before "Follow" and the trailing spaces are the model's. Fill in with JSON written
# by hand in `json.dumps` style (", " and ": " separators, ASCII). `\n\` marks a line that ends in a
# space. tests/unit/test_arch_prompt.py checks this copy against the training prompt's SHA-256.
ARCH_ROUTER_PROMPT = """
You are a helpful assistant designed to find the best suited route.
You are provided with route description within <routes></routes> XML tags:
<routes>

{routes}

</routes>

<conversation>

{conversation}

</conversation>

Your task is to decide which route is best suit with user intent on the conversation in <conversation></conversation> XML tags.  Follow the instruction:
1. If the latest intent from user is irrelevant or user intent is full filled, response with other route {{"route": "other"}}.
2. You must analyze the route descriptions and find the best match route for user latest intent. \n\
3. You only response the name of the route that best matches the user's request, use the exact name in the <routes></routes>.

Based on your analysis, provide your response in the following JSON formats if you decide to match any route:
{{"route": "route_name"}} \n"""


def provider_down(request: Received) -> Reply:
    """A provider that answers every request 503 (a failover chain's first member)."""
    return json_reply(503, {"error": {"message": "down"}})


def code_generation_router(request):
    """An Arch-Router stand-in: `code_generation` when the conversation says "function", else `other`."""
    prompt = request.json["messages"][0]["content"]
    route = "code_generation" if "function" in prompt.split("<conversation>")[1] else "other"
    return json_reply(200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": json.dumps({"route": route})}}]})
