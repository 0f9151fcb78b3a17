"""The gateway under hostile load and hostile input: connection floods, stopped workers, the admin
port, and what a provider or a client may smuggle through headers."""

from __future__ import annotations

import os
import resource
import select
import signal
import socket
import time
from contextlib import ExitStack

import httpx
import pytest

from tests.gateway import Gateway, eventually

ECHO = {"llm_providers": [{"model": "echo/e", "default": True}], "routing": {"engine": "none"}}
HELLO = {"model": "echo/e", "messages": [{"role": "user", "content": "hello"}]}
FLOOD = 1100  # what took Envoy down with the default open-file limit of 1,024


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return "Z" not in open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]


@pytest.fixture
def many_files():
    """This test process opens more sockets than the usual 1,024 files."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = FLOOD + 512
    assert hard == resource.RLIM_INFINITY or hard >= wanted, f"the hard open-file limit {hard} is below {wanted}"
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def idle_connections(stack: ExitStack, port: int, count: int) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        s = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=5))
        sockets.append(s)
    return sockets


def served(gateway: Gateway) -> int:
    return httpx.post(f"{gateway.url}/v1/chat/completions", json=HELLO, timeout=10).status_code


# ---------------------------------------------------------------- connection floods


def test_past_what_the_open_file_limit_allows_connections_are_refused_and_envoy_stays_up(tmp_path, many_files):
    with Gateway(ECHO, tmp_path, open_files=(1024, 1024)) as gateway:
        envoy = gateway.child_pid("envoy")
        with ExitStack() as stack:
            flood = idle_connections(stack, gateway.port, FLOOD)
            assert served_or_refused(gateway) in (200, "refused")
            # Envoy closes the connections over its limit instead of failing on accept().
            closed = eventually(lambda: _count_closed(flood, at_least=FLOOD // 3), timeout=20)
            assert closed >= FLOOD // 3
            assert _alive(envoy)
        eventually(lambda: _served_once(gateway), timeout=20)
        assert gateway.child_pid("envoy") == envoy and "Envoy exited" not in gateway.output()
        # The supervisor could not raise the limit, so it lowered the connection limit to fit, and said so.
        assert "the open-file limit allows 384 client connections" in gateway.output()


def _envoy_stat(gateway: Gateway, name: str) -> int:
    text = httpx.get(f"http://127.0.0.1:{gateway.admin_port}/stats?filter=^{name}$").text
    return sum(int(line.rsplit(":", 1)[1]) for line in text.splitlines() if line.split(":")[0] == name)


def _closed_by_peer(s: socket.socket, wait_s: float) -> bytes | None:
    """What the peer sent before closing `s` (b"" if nothing), or None if still open after `wait_s`."""
    readable, _, _ = select.select([s], [], [], wait_s)
    if not readable:
        return None
    received = b""
    try:
        while chunk := s.recv(4096):
            received += chunk
    except OSError:
        pass
    return received


def test_slow_request_headers_are_cut_at_the_headers_timeout_while_other_clients_are_served(tmp_path):
    config = {**ECHO, "gateway": {"request_headers_timeout": "1s", "idle_timeout": "300s"}}
    with Gateway(config, tmp_path) as gateway:
        envoy = gateway.child_pid("envoy")
        slow = socket.create_connection(("127.0.0.1", gateway.port), timeout=30)
        started = time.monotonic()
        sent, answer, others = 0, None, []
        # Headers a byte at a time, never finished: a byte whenever the gateway has not closed the
        # connection within 0.2 s. A normal client on its own connection meanwhile.
        for byte in b"POST /v1/chat/completions HTTP/1.1\r\nhost: slow\r\nx-slow: " + b"a" * 10_000:
            try:
                slow.sendall(bytes([byte]))
            except OSError:  # closed already
                answer = _closed_by_peer(slow, 5)
                break
            sent += 1
            if sent % 5 == 0:
                others.append(served(gateway))
            answer = _closed_by_peer(slow, 0.2)
            if answer is not None:
                break
        lasted = time.monotonic() - started
        slow.close()
        assert answer is not None, "the slow client was never cut"
        assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer[:200]
        # Cut by the headers timer (not the 300 s idle one), long before the headers could be done.
        assert _envoy_stat(gateway, "http.switchyard.downstream_rq_header_timeout") >= 1
        assert lasted < 60 and sent < 10_000
        assert others and set(others) == {200}
        assert served(gateway) == 200 and gateway.child_pid("envoy") == envoy


def test_connections_over_max_connections_are_refused_while_open_ones_keep_working(tmp_path):
    import http.client
    import json

    limit = 20
    with Gateway({**ECHO, "gateway": {"max_connections": limit}}, tmp_path) as gateway:
        envoy = gateway.child_pid("envoy")

        def ask(conn: http.client.HTTPConnection) -> int:
            conn.request("POST", "/v1/chat/completions", body=json.dumps(HELLO),
                         headers={"content-type": "application/json"})
            response = conn.getresponse()
            response.read()
            return response.status

        existing = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
        assert ask(existing) == 200
        local = existing.sock.getsockname()
        with ExitStack() as stack:
            flood = idle_connections(stack, gateway.port, 2 * limit)
            # Envoy closes what is over its limit (the one existing connection counts too).
            closed = eventually(lambda: _count_closed(flood, at_least=limit + 1), timeout=20)
            assert closed <= 2 * limit
            # The connection that was open before the flood is still served, on the same socket.
            assert ask(existing) == 200 and existing.sock.getsockname() == local
        existing.close()
        eventually(lambda: _served_once(gateway), timeout=20)  # the flood gone, new clients are served
        assert gateway.child_pid("envoy") == envoy and "Envoy exited" not in gateway.output()


def served_or_refused(gateway: Gateway):
    try:
        return served(gateway)
    except httpx.TransportError:
        return "refused"


def _count_closed(sockets: list[socket.socket], at_least: int) -> int:
    closed = 0
    for s in sockets:
        s.setblocking(False)
        try:
            if s.recv(1) == b"":
                closed += 1
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
    assert closed >= at_least, closed
    return closed


def _served_once(gateway: Gateway) -> None:
    assert served_or_refused(gateway) == 200


# ---------------------------------------------------------------- Envoy and workers that die or stop


def test_envoy_killed_is_restarted_on_the_same_port_and_the_supervisor_says_so(tmp_path):
    with Gateway(ECHO, tmp_path) as gateway:
        envoy = gateway.child_pid("envoy")
        worker = gateway.child_pid("filter.runtime.worker")
        os.kill(envoy, signal.SIGKILL)
        eventually(lambda: _says(gateway, "Envoy restarted, listening again on port"), timeout=30)
        assert "Envoy exited (killed by SIGKILL); restarting it" in gateway.output()
        assert served(gateway) == 200  # same URL as before
        assert gateway.child_pid("envoy") != envoy
        assert gateway.child_pid("filter.runtime.worker") == worker  # the workers kept running
        assert gateway.process.poll() is None


def _says(gateway: Gateway, text: str) -> None:
    assert text in gateway.output()


def test_a_stopped_worker_is_ejected_by_the_health_check_and_every_request_is_served(tmp_path):
    with Gateway(ECHO, tmp_path, workers=2) as gateway:
        worker = gateway.child_pid("filter.runtime.worker")
        os.kill(worker, signal.SIGSTOP)
        try:
            # It still accepts connections (the kernel does), but it no longer answers gRPC health.
            eventually(lambda: _health_failed(gateway), timeout=20)
            assert [served(gateway) for _ in range(20)] == [200] * 20
        finally:
            os.kill(worker, signal.SIGCONT)
        eventually(lambda: _all_healthy(gateway), timeout=20)


def _filter_health(gateway: Gateway) -> list[str]:
    text = httpx.get(f"http://127.0.0.1:{gateway.admin_port}/clusters").text
    return [line.rsplit("::", 1)[1] for line in text.splitlines()
            if line.startswith("switchyard_filter::") and "::health_flags::" in line]


def _health_failed(gateway: Gateway) -> None:
    assert any("failed_active_hc" in flags for flags in _filter_health(gateway))


def _all_healthy(gateway: Gateway) -> None:
    flags = _filter_health(gateway)
    assert len(flags) == 2 and all(f == "healthy" for f in flags), flags


# ---------------------------------------------------------------- the admin port


def test_the_admin_port_refuses_to_raise_the_log_level_so_keys_never_reach_the_log(tmp_path, upstream):
    key = "sk-admin-log-level-7731"
    config = {"llm_providers": [{"model": "openai/gpt-4o", "access_key": key, "base_url": f"{upstream.url}/v1",
                                 "default": True}], "routing": {"engine": "none"}}
    with Gateway(config, tmp_path) as gateway:
        admin = f"http://127.0.0.1:{gateway.admin_port}"
        for level in ("debug", "trace"):
            assert httpx.post(f"{admin}/logging?level={level}").status_code == 403
        assert httpx.post(f"{admin}/logging?http=debug").status_code == 403
        assert httpx.post(f"{admin}/quitquitquit").status_code == 403
        assert httpx.get(f"{admin}/stats/prometheus").status_code == 200  # what operators read still works
        response = httpx.post(f"{gateway.url}/v1/chat/completions",
                              json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
        assert response.status_code == 200
        assert upstream.received[-1].headers["authorization"] == f"Bearer {key}"
        eventually(lambda: _says(gateway, '"decision":"literal"'))
        assert key not in gateway.output()


# ---------------------------------------------------------------- headers in the gateway's namespace, and private ones


OPENAI_KEY = "sk-hardening-openai-0c41"
ANTHROPIC_KEY = "sk-ant-hardening-7d22"


@pytest.fixture(scope="module")
def providers(tmp_path_factory):
    """A gateway in front of an OpenAI and an Anthropic stand-in, and a model that fails over."""
    from tests.conftest import provider_behaviour
    from tests.standins import StandIn, json_reply

    with StandIn(provider_behaviour) as upstream, StandIn(lambda r: json_reply(503, {"error": {"message": "down"}})) as down:
        config = {
            "llm_providers": [
                {"model": "openai/gpt-4o", "access_key": OPENAI_KEY, "base_url": f"{upstream.url}/v1", "default": True},
                {"model": "anthropic/claude-sonnet-4-5", "access_key": ANTHROPIC_KEY, "base_url": f"{upstream.url}/v1"},
                {"model": "local/flaky", "base_url": f"{down.url}/v1", "fallbacks": ["openai/gpt-4o"]},
            ],
            "routing": {"engine": "none"},
            "failover": {"retries": 0},
        }
        with Gateway(config, tmp_path_factory.mktemp("headers")) as gateway:
            yield gateway, upstream


def _with_headers(behaviour, headers):
    def reply(request):
        answer = behaviour(request)
        answer.headers.update(headers)
        return answer
    return reply


PROVIDER_HEADERS = {"x-switchyard-model": "evil/model", "x-switchyard-route": "evil-route",
                    "x-switchyard-pinned": "true", "x-switchyard-anything": "x"}


@pytest.mark.parametrize("model, served", [("gpt-4o", "openai/gpt-4o"), ("local/flaky", "openai/gpt-4o")],
                         ids=["direct", "failover"])
def test_a_provider_cannot_set_headers_in_the_gateways_namespace(providers, model, served):
    from tests.conftest import provider_behaviour

    gateway, upstream = providers
    upstream.behaviour = _with_headers(provider_behaviour, PROVIDER_HEADERS)
    try:
        response = httpx.post(f"{gateway.url}/v1/chat/completions",
                              json={"model": model, "messages": [{"role": "user", "content": "hi"}]})
    finally:
        upstream.behaviour = provider_behaviour
    assert response.status_code == 200
    assert response.headers["x-switchyard-model"] == served
    assert "x-switchyard-route" not in response.headers
    assert "x-switchyard-pinned" not in response.headers and "x-switchyard-anything" not in response.headers
    eventually(lambda: _says(gateway, f'"model":"{served}"'))
    assert "evil" not in gateway.output()
    metrics = httpx.get(f"http://127.0.0.1:{gateway.metrics_port}/metrics").text
    assert "evil" not in metrics


def test_private_and_internal_client_headers_never_reach_the_provider(providers):
    gateway, upstream = providers
    upstream.clear()
    private = {"cookie": "session=abc", "proxy-authorization": "Basic dXNlcjpwYXNz", "x-forwarded-for": "10.1.2.3",
               "x-switchyard-debug": "1", "x-switchyard-provider": "provider_anthropic_claude-sonnet-4-5"}
    for path, body in (("/v1/chat/completions", {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
                       ("/v1/messages", {"model": "claude-sonnet-4-5", "max_tokens": 5,
                                         "messages": [{"role": "user", "content": "hi"}]})):
        assert httpx.post(f"{gateway.url}{path}", json=body, headers=private).status_code == 200
    assert len(upstream.received) == 2
    for request in upstream.received:
        leaked = {name for name in request.headers if name in private or name.startswith("x-switchyard-")}
        assert leaked == set(), (request.path, leaked)


def test_a_key_in_the_query_string_is_neither_logged_nor_forwarded(providers):
    gateway, upstream = providers
    upstream.clear()
    secret = "AIza-query-key-in-url-91f3"
    response = httpx.post(f"{gateway.url}/v1/messages?beta=true&key={secret}",
                          json={"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200
    assert upstream.received[0].path == "/v1/messages?beta=true"  # Claude Code's parameter still travels
    refused = httpx.post(f"{gateway.url}/v1/nope?key={secret}", json={})
    assert refused.status_code == 404
    eventually(lambda: _says(gateway, '"path":"/v1/nope"'))
    assert secret not in gateway.output()


def test_a_gzip_request_body_is_decoded_and_other_encodings_are_refused(providers):
    import gzip
    import json

    gateway, upstream = providers
    upstream.clear()
    body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "compressed hello"}]}).encode()
    response = httpx.post(f"{gateway.url}/v1/chat/completions", content=gzip.compress(body),
                          headers={"content-type": "application/json", "content-encoding": "gzip"})
    assert response.status_code == 200, response.text
    assert upstream.received[0].json["messages"][0]["content"] == "compressed hello"
    assert "content-encoding" not in upstream.received[0].headers
    for path, shape in (("/v1/chat/completions", "openai"), ("/v1/messages", "anthropic")):
        refused = httpx.post(f"{gateway.url}{path}", content=body,
                             headers={"content-type": "application/json", "content-encoding": "br"})
        assert refused.status_code == 415
        error = refused.json()
        assert "content-encoding 'br' is not supported" in (error["error"]["message"])
        assert (error.get("type") == "error") == (shape == "anthropic")
    assert len(upstream.received) == 1


# ---------------------------------------------------------------- deep JSON


def _deep(levels: int, api: str) -> bytes:
    """A body whose deepest container is at `levels` (the top-level object is level 1)."""
    inner = b"[" * (levels - 3) + b"]" * (levels - 3)  # under top (1), messages (2), a message (3)
    model = b"claude-sonnet-4-5" if api == "anthropic" else b"gpt-4o"
    extra = b', "max_tokens": 5' if api == "anthropic" else b""
    return (b'{"model": "' + model + b'"' + extra + b', "messages": [{"role": "user", "content": "hi", "x": '
            + inner + b"}]}")


@pytest.mark.parametrize("path, api", [("/v1/chat/completions", "openai"), ("/v1/messages", "anthropic")])
def test_json_nested_past_the_limit_is_a_clear_400_in_the_clients_shape(providers, path, api):
    gateway, upstream = providers
    upstream.clear()
    headers = {"content-type": "application/json"}
    assert httpx.post(f"{gateway.url}{path}", content=_deep(254, api), headers=headers).status_code == 200
    for levels in (255, 300, 1024, 2000):
        response = httpx.post(f"{gateway.url}{path}", content=_deep(levels, api), headers=headers)
        assert response.status_code == 400, (levels, response.text)
        error = response.json()
        assert error["error"]["message"] == "request body is nested more than 254 levels deep"
        assert (error.get("type") == "error") == (api == "anthropic")
    assert len(upstream.received) == 1


def test_a_failover_chain_takes_as_deep_a_body_as_one_model(providers):
    gateway, upstream = providers
    upstream.clear()
    body = _deep(254, "openai").replace(b'"gpt-4o"', b'"local/flaky"')
    response = httpx.post(f"{gateway.url}/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    assert response.headers["x-switchyard-model"] == "openai/gpt-4o"
    assert len(upstream.received) == 1


# ---------------------------------------------------------------- per-request preferences


def test_megabytes_of_preference_yaml_get_a_400_and_never_stall_other_requests(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    text = "- model: echo/e\n  routing_preferences:\n" + "".join(
        f"    - name: r{i}\n      description: writing and fixing code, number {i}\n" for i in range(40_000))
    assert len(text) > 2_000_000  # parsed on the worker's loop, this froze it for seconds
    hostile = {"model": "auto", "messages": [{"role": "user", "content": "hi"}],
               "metadata": {"archgw_preference_config": text}}
    with Gateway(ECHO, tmp_path) as gateway, ThreadPoolExecutor(4) as pool:
        big = [pool.submit(httpx.post, f"{gateway.url}/v1/chat/completions", json=hostile, timeout=60) for _ in range(3)]
        others = [served(gateway) for _ in range(20)]
        answers = [f.result() for f in big]
    assert others == [200] * 20
    for answer in answers:
        assert answer.status_code == 400
        assert answer.json()["error"]["message"] == \
            "'metadata.archgw_preference_config' is longer than 65536 characters"


# ---------------------------------------------------------------- large answers


def test_a_translated_answer_over_the_response_limit_is_an_error_in_the_clients_shape(tmp_path):
    from tests.standins import StandIn, anthropic_reply

    with StandIn(lambda request: anthropic_reply(request, text="z" * (3 * 1024 * 1024))) as upstream:
        config = {"llm_providers": [{"model": "anthropic/claude-x", "access_key": "k", "base_url": f"{upstream.url}/v1",
                                     "default": True}],
                  "routing": {"engine": "none"}, "gateway": {"max_response_bytes": 1024 * 1024}}
        with Gateway(config, tmp_path) as gateway:
            response = httpx.post(f"{gateway.url}/v1/chat/completions",
                                  json={"model": "claude-x", "messages": [{"role": "user", "content": "hi"}]}, timeout=60)
            error = response.json()
            assert "type" not in error  # OpenAI's shape, not Anthropic's
            assert "larger than the gateway's limit (1048576 bytes, gateway.max_response_bytes)" in error["error"]["message"]


# An answer larger than the request limit, and requests over it, on both paths (issue row 10).
MIB = 1024 * 1024
BIG_ANSWER = 10 * 1024 * 1024  # over max_request_bytes, under max_response_bytes
HUGE_ANSWER = 20 * 1024 * 1024  # over max_response_bytes
PAIRS = {  # client path → model: (native or translated, the provider's wire format)
    ("chat", "gpt-4o"): "native", ("messages", "claude-x"): "native",
    ("chat", "claude-x"): "translated", ("messages", "gpt-4o"): "translated",
}
PATHS = {"chat": "/v1/chat/completions", "messages": "/v1/messages", "responses": "/v1/responses"}


def _sized_answer(request):
    """Answers with as many characters as the prompt asks for ("size N")."""
    from tests.standins import anthropic_reply, openai_reply

    content = request.json["messages"][0]["content"]
    size = int(content.split()[1]) if content.startswith("size ") else 5
    make = anthropic_reply if request.path.split("?")[0].endswith("/messages") else openai_reply
    return make(request, text="z" * size)


@pytest.fixture(scope="module")
def sized(tmp_path_factory):
    """Two gateways on one provider stand-in, max_request_bytes 1 MiB and max_response_bytes
    16 MiB: one with the fast path, one sending everything through the filter."""
    from tests.standins import StandIn

    with StandIn(_sized_answer) as upstream:
        def config(fast: bool) -> dict:
            return {"llm_providers": [
                        {"model": "openai/gpt-4o", "access_key": "sk-o", "base_url": f"{upstream.url}/v1", "default": True},
                        {"model": "anthropic/claude-x", "access_key": "sk-a", "base_url": f"{upstream.url}/v1"}],
                    "routing": {"engine": "none"},
                    "gateway": {"fast_path": fast, "max_request_bytes": MIB, "max_response_bytes": 16 * MIB}}
        with Gateway(config(True), tmp_path_factory.mktemp("fast")) as fast, \
                Gateway(config(False), tmp_path_factory.mktemp("filter")) as filtered:
            yield {"fast": fast, "filter": filtered}, upstream


def _ask(gateway: Gateway, api: str, model: str, content: str) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": content}]}
    if api == "messages":
        body["max_tokens"] = 100
    return httpx.post(f"{gateway.url}{PATHS[api]}", json=body, timeout=120)


def _filter_streams(gateway: Gateway) -> int:
    """How many requests Envoy has sent through the filter so far."""
    stats = httpx.get(f"http://127.0.0.1:{gateway.admin_port}/stats?filter=ext_proc.streams_started").text
    return sum(int(line.rsplit(":", 1)[1]) for line in stats.splitlines() if "streams_started" in line)


def _answer_text(api: str, response: httpx.Response) -> str:
    answer = response.json()
    return answer["choices"][0]["message"]["content"] if api == "chat" else answer["content"][0]["text"]


def _assert_clients_shape(api: str, response: httpx.Response) -> dict:
    error = response.json()
    if api == "messages":
        assert error["type"] == "error" and isinstance(error["error"]["message"], str), error
    else:
        assert "type" not in error and isinstance(error["error"]["message"], str), error
    return error["error"]


@pytest.mark.parametrize("path", ["fast", "filter"])
@pytest.mark.parametrize("api, model", list(PAIRS), ids=[f"{a}-{PAIRS[(a, m)]}" for a, m in PAIRS])
def test_an_answer_larger_than_the_request_limit_is_delivered(sized, path, api, model):
    gateways, _ = sized
    gateway = gateways[path]
    before = _filter_streams(gateway)
    response = _ask(gateway, api, model, f"size {BIG_ANSWER}")
    assert response.status_code == 200, response.text[:500]
    assert _answer_text(api, response) == "z" * BIG_ANSWER
    if path == "fast" and PAIRS[(api, model)] == "native":  # Envoy alone served it
        assert _filter_streams(gateway) == before


@pytest.mark.parametrize("path", ["fast", "filter"])
@pytest.mark.parametrize("api, model", list(PAIRS), ids=[f"{a}-{PAIRS[(a, m)]}" for a, m in PAIRS])
def test_an_answer_over_the_response_limit_is_an_error_in_the_clients_shape(sized, path, api, model):
    gateways, _ = sized
    response = _ask(gateways[path], api, model, f"size {HUGE_ANSWER}")
    assert response.status_code >= 500
    _assert_clients_shape(api, response)


@pytest.mark.parametrize("path", ["fast", "filter"])
@pytest.mark.parametrize("api, model", [("chat", "gpt-4o"), ("messages", "claude-x"), ("chat", "claude-x"),
                                        ("messages", "gpt-4o"), ("responses", "gpt-4o")])
def test_a_request_over_the_request_limit_is_a_413_in_the_clients_shape(sized, path, api, model):
    gateways, upstream = sized
    upstream.clear()
    padding = "p" * (MIB + 1024)
    if api == "responses":
        response = httpx.post(f"{gateways[path].url}/v1/responses", json={"model": model, "input": padding}, timeout=60)
    else:
        response = _ask(gateways[path], api, model, padding)
    assert response.status_code == 413
    error = _assert_clients_shape(api, response)
    assert "gateway.max_request_bytes" in error["message"]
    assert upstream.received == []


@pytest.mark.parametrize("path", ["fast", "filter"])
def test_a_request_just_under_the_request_limit_is_served(sized, path):
    gateways, _ = sized
    response = _ask(gateways[path], "chat", "gpt-4o", "size 5 " + "p" * (MIB - 4096))
    assert response.status_code == 200, response.text[:500]


def test_a_failover_chains_answer_larger_than_the_request_limit_is_delivered(tmp_path):
    from tests.standins import StandIn, json_reply

    with StandIn(_sized_answer) as upstream, \
            StandIn(lambda request: json_reply(503, {"error": {"message": "down"}})) as down:
        config = {"llm_providers": [
                      {"model": "openai/gpt-4o", "access_key": "sk-o", "base_url": f"{upstream.url}/v1", "default": True},
                      {"model": "local/flaky", "base_url": f"{down.url}/v1", "fallbacks": ["openai/gpt-4o"]}],
                  "routing": {"engine": "none"}, "failover": {"retries": 0},
                  "gateway": {"max_request_bytes": MIB}}
        with Gateway(config, tmp_path) as gateway:
            response = _ask(gateway, "chat", "local/flaky", f"size {BIG_ANSWER}")
            assert response.status_code == 200, response.text[:500]
            assert response.headers["x-switchyard-model"] == "openai/gpt-4o"
            assert _answer_text("chat", response) == "z" * BIG_ANSWER
            assert _ask(gateway, "chat", "local/flaky", "p" * (MIB + 1024)).status_code == 413
