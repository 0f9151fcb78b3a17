"""ArchRouterEngine against a tiny real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest

from router_model.arch_router import ArchRouterEngine
from router_model.engine import Route, RouterError
from tests.standins import ARCH_ROUTER_PROMPT

pytestmark = pytest.mark.timeout(20)

ROUTES = [Route("code_generation", "generating new code"), Route("summarize", "summarising text")]
MESSAGES = [
    {"role": "system", "content": "be nice"},
    {"role": "user", "content": "write a rust prime sieve"},
]


def completion(content: Any) -> bytes:
    return json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}).encode()


@dataclass
class Reply:
    status: int = 200
    body: bytes = completion('{"route": "code_generation"}')
    delay_s: float = 0.0


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: bytes
    client_port: int


@dataclass
class FakeServer:
    url: str
    reply: Reply = field(default_factory=Reply)
    requests: list[Recorded] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


def _handler_for(state: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as vLLM's server

        def do_POST(self) -> None:  # noqa: N802 (http.server naming)
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            state.requests.append(
                Recorded(self.path, {k.lower(): v for k, v in self.headers.items()}, body, self.client_address[1])
            )
            reply = state.reply
            if reply.delay_s:
                # Wait on an event, not sleep: teardown releases slow handlers at once.
                state.release.wait(reply.delay_s)
            try:
                self.send_response(reply.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)
            except OSError:
                pass  # the client gave up (cancelled); nothing to answer

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    return Handler


@pytest.fixture
def server() -> Iterator[FakeServer]:
    state = FakeServer(url="")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(state))
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def run_choose(url: str, reply_timeout: float = 2.0, **kwargs: Any) -> str | None:
    async def main() -> str | None:
        engine = ArchRouterEngine(url, timeout=reply_timeout)
        try:
            return await engine.choose(ROUTES, MESSAGES, **kwargs)
        finally:
            await engine.aclose()

    return asyncio.run(main())


def test_sends_the_exact_request_and_returns_the_route(server: FakeServer) -> None:
    assert run_choose(server.url) == "code_generation"
    assert len(server.requests) == 1
    req = server.requests[0]
    assert req.path == "/v1/chat/completions"
    assert req.headers["content-type"] == "application/json"
    body = json.loads(req.body)
    expected_prompt = ARCH_ROUTER_PROMPT.format(
        routes='[{"name": "code_generation", "description": "generating new code"}, '
               '{"name": "summarize", "description": "summarising text"}]',
        conversation='[{"role": "user", "content": "write a rust prime sieve"}]')  # no system prompt
    assert body == {
        "model": "Arch-Router",
        "messages": [{"role": "user", "content": expected_prompt}],
        "temperature": 0.01,
        "max_tokens": 32,
        "stream": False,
    }
    assert "be nice" not in expected_prompt  # the system prompt is not routed on


def test_model_sampling_and_headers_are_configurable(server: FakeServer) -> None:
    async def main() -> str | None:
        engine = ArchRouterEngine(
            server.url + "/",
            model="arch",
            timeout=2.0,
            max_tokens=8,
            temperature=0.0,
            headers={"authorization": "Bearer s3cret"},
        )
        try:
            return await engine.choose(ROUTES, MESSAGES, headers={"traceparent": "00-abc-def-01"})
        finally:
            await engine.aclose()

    assert asyncio.run(main()) == "code_generation"
    req = server.requests[0]
    assert req.path == "/v1/chat/completions"
    assert req.headers["authorization"] == "Bearer s3cret"
    assert req.headers["traceparent"] == "00-abc-def-01"
    body = json.loads(req.body)
    assert (body["model"], body["max_tokens"], body["temperature"]) == ("arch", 8, 0.0)


def test_connections_are_reused(server: FakeServer) -> None:
    async def main() -> None:
        engine = ArchRouterEngine(server.url, timeout=2.0)
        try:
            for _ in range(3):
                assert await engine.choose(ROUTES, MESSAGES) == "code_generation"
        finally:
            await engine.aclose()

    asyncio.run(main())
    assert len({r.client_port for r in server.requests}) == 1


@pytest.mark.parametrize(
    "content, expected",
    [
        ('{"route": "other"}', None),
        ("```json\n{'route': 'summarize'}\n```", "summarize"),
        ('{"route": "not_a_route"}', None),
        ("", None),
        (None, None),
    ],
)
def test_answers(server: FakeServer, content: Any, expected: str | None) -> None:
    server.reply = Reply(body=completion(content))
    assert run_choose(server.url) == expected


def test_no_routes_means_no_call(server: FakeServer) -> None:
    async def main() -> str | None:
        engine = ArchRouterEngine(server.url)
        try:
            return await engine.choose([], MESSAGES)
        finally:
            await engine.aclose()

    assert asyncio.run(main()) is None
    assert server.requests == []


@pytest.mark.parametrize("status", [400, 404, 500, 503])
def test_http_error_status_raises(server: FakeServer, status: int) -> None:
    server.reply = Reply(status=status, body=b'{"error": "boom"}')
    with pytest.raises(RouterError, match=str(status)):
        run_choose(server.url)


@pytest.mark.parametrize(
    "body",
    [
        b"<html>not json</html>",
        b"",
        b'{"choices": []}',
        b'{"object": "chat.completion"}',
        b'{"choices": [{"message": {"content": 42}}]}',
        b"[1, 2]",
    ],
)
def test_bad_response_body_raises(server: FakeServer, body: bytes) -> None:
    server.reply = Reply(body=body)
    with pytest.raises(RouterError):
        run_choose(server.url)


def test_garbage_answer_raises(server: FakeServer) -> None:
    server.reply = Reply(body=completion("I would pick the code one, probably."))
    with pytest.raises(RouterError):
        run_choose(server.url)


def test_error_messages_never_carry_header_values(server: FakeServer) -> None:
    server.reply = Reply(status=401, body=b"denied: Bearer s3cret")

    async def main() -> None:
        engine = ArchRouterEngine(server.url, headers={"authorization": "Bearer s3cret"})
        try:
            await engine.choose(ROUTES, MESSAGES)
        finally:
            await engine.aclose()

    with pytest.raises(RouterError) as info:
        asyncio.run(main())
    assert "s3cret" not in str(info.value)


def test_connection_refused_raises() -> None:
    # A port this test holds bound and never listens on: refused, and nobody else can take it.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        with pytest.raises(RouterError, match="connection"):
            run_choose(f"http://127.0.0.1:{port}/v1")


def test_read_timeout_raises_router_error(server: FakeServer) -> None:
    server.reply = Reply(delay_s=10.0)
    started = time.monotonic()
    with pytest.raises(RouterError, match="timeout"):
        run_choose(server.url, reply_timeout=0.2)
    assert time.monotonic() - started < 2.0


def test_slow_server_is_cancelled_by_asyncio_timeout(server: FakeServer) -> None:
    server.reply = Reply(delay_s=10.0)

    async def main() -> float:
        engine = ArchRouterEngine(server.url, timeout=5.0)
        started = time.monotonic()
        try:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.2):
                    await engine.choose(ROUTES, MESSAGES)
            return time.monotonic() - started
        finally:
            await engine.aclose()

    elapsed = asyncio.run(main())
    assert elapsed < 1.0
    assert len(server.requests) == 1


def test_closed_engine_raises(server: FakeServer) -> None:
    async def main() -> None:
        engine = ArchRouterEngine(server.url)
        await engine.aclose()
        await engine.choose(ROUTES, MESSAGES)

    with pytest.raises(RouterError, match="closed"):
        asyncio.run(main())
    assert server.requests == []


def test_name() -> None:
    assert ArchRouterEngine.name == "arch-router"
