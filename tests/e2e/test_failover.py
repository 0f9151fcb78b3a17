"""Failover across providers: retries, fallbacks in another API family, cool-down, pass-through."""

from __future__ import annotations

import json
import time

import anthropic
import httpx
import openai
import pytest

from tests.gateway import Gateway, refused_port
from tests.standins import Reply, StandIn, anthropic_reply, json_reply, openai_reply

FIRST_BYTE_TIMEOUT_S = 1.0
COOLDOWN_S = 3.0


class Script:
    """A stand-in provider whose next answers a test can queue; then it answers normally."""

    def __init__(self, normal):
        self.normal = normal
        self.queue: list[Reply] = []

    def __call__(self, request):
        return self.queue.pop(0) if self.queue else self.normal(request)


@pytest.fixture(scope="module")
def providers():
    primary, backup, last = Script(openai_reply), Script(anthropic_reply), Script(openai_reply)
    with StandIn(primary) as a, StandIn(backup) as b, StandIn(last) as c:
        a.script, b.script, c.script = primary, backup, last
        yield a, b, c


@pytest.fixture(scope="module")
def gateway(providers, tmp_path_factory):
    a, b, c = providers
    config = {
        "llm_providers": [
            {"model": "openai/primary", "access_key": "key-primary", "base_url": f"{a.url}/v1", "default": True,
             "fallbacks": ["anthropic/backup", "local/last"]},
            {"model": "anthropic/backup", "access_key": "key-backup", "base_url": f"{b.url}/v1"},
            {"model": "local/last", "base_url": f"{c.url}/v1"},
            {"model": "local/solo", "base_url": f"{c.url}/solo"},
        ],
        "model_aliases": {"resilient": {"target": "local/solo", "fallbacks": ["openai/primary"]}},
        "routing": {"engine": "none"},
        "failover": {"retries": 1, "first_byte_timeout": f"{FIRST_BYTE_TIMEOUT_S}s", "cooldown": f"{COOLDOWN_S}s",
                     "failures_before_cooldown": 4},
    }
    with Gateway(config, tmp_path_factory.mktemp("failover")) as gw:
        yield gw


@pytest.fixture(autouse=True)
def clean(providers):
    for server in providers:
        server.clear()
        server.script.queue.clear()


@pytest.fixture
def client(gateway):
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="client-key", max_retries=0)


HELLO = [{"role": "user", "content": "hello"}]
UNAVAILABLE = json_reply(503, {"error": {"message": "overloaded", "type": "server_error"}})


def test_retry_then_fallback_to_another_api_family(client, gateway, providers):
    a, b, c = providers
    a.script.queue[:] = [UNAVAILABLE, UNAVAILABLE]
    raw = client.chat.completions.with_raw_response.create(model="openai/primary", messages=HELLO)
    completion = raw.parse()
    assert raw.headers["x-switchyard-model"] == "anthropic/backup"
    assert completion.choices[0].message.content == "anthropic stand-in answering as backup"
    assert completion.object == "chat.completion"
    assert len(a.received) == 2  # the model was retried once before moving on
    (request,) = b.received
    assert request.path == "/v1/messages" and request.json["model"] == "backup"
    assert request.headers["x-api-key"] == "key-backup" and "authorization" not in request.headers
    assert "x-switchyard-chain" not in request.headers and "x-switchyard-client-api" not in request.headers
    assert a.received[0].headers["authorization"] == "Bearer key-primary"
    for server in providers:
        for received in server.received:
            assert "client-key" not in str(received.headers)
    metrics = httpx.get(f"http://127.0.0.1:{gateway.metrics_port}/metrics").text
    assert 'switchyard_failovers_total{from_model="openai/primary",reason="http_503",to_model="anthropic/backup"} 1.0' in metrics


def test_429_fails_over_and_the_chain_goes_on_to_the_last_model(client, providers):
    a, b, c = providers
    limited = json_reply(429, {"error": {"message": "slow down"}})
    a.script.queue[:] = [limited, limited]
    b.script.queue[:] = [limited, limited]
    raw = client.chat.completions.with_raw_response.create(model="openai/primary", messages=HELLO)
    assert raw.headers["x-switchyard-model"] == "local/last"
    assert (len(a.received), len(b.received), len(c.received)) == (2, 2, 1)
    assert c.received[0].json["model"] == "last"


def test_client_errors_other_than_429_pass_through_unchanged(client, providers):
    a, b, c = providers
    a.script.queue[:] = [json_reply(400, {"error": {"message": "bad temperature", "type": "invalid_request_error",
                                                    "param": "temperature", "code": None}})]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="openai/primary", messages=HELLO)
    assert caught.value.body["message"] == "bad temperature"
    assert (len(a.received), len(b.received)) == (1, 0)


def test_no_first_byte_within_the_timeout_fails_over_inside_the_listener_timeout(client, providers):
    a, b, c = providers
    late = json_reply(200, {"too": "late"})
    late.delay_s = FIRST_BYTE_TIMEOUT_S + 2
    a.script.queue[:] = [late, late]
    start = time.monotonic()
    raw = client.chat.completions.with_raw_response.create(model="openai/primary", messages=HELLO)
    elapsed = time.monotonic() - start
    assert raw.headers["x-switchyard-model"] == "anthropic/backup"
    assert 2 * FIRST_BYTE_TIMEOUT_S <= elapsed < 2 * FIRST_BYTE_TIMEOUT_S + 2


def test_streams_fail_over_before_the_first_byte(client, providers):
    a, b, c = providers
    a.script.queue[:] = [UNAVAILABLE, UNAVAILABLE]
    stream = client.chat.completions.create(model="openai/primary", messages=HELLO, stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "anthropic stand-in answering as backup"
    assert b.received[0].json["stream"] is True


def test_a_stream_is_never_retried_once_its_first_byte_was_sent(client, gateway, providers):
    """`resilient` (local/solo, then openai/primary) dies mid-answer: the client already has part
    of it, so no other attempt is made, on the same model or the next (either would send a
    second, different answer into the same stream)."""
    a, b, c = providers
    cut = openai_reply(_received_stub(), text="one two three four")
    # The role chunk, "one" and " two"; held until the client has them; then the connection drops.
    cut.hold_after = cut.abort_after = 3
    c.script.queue[:] = [cut]
    received = b""
    with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", timeout=30,
                      json={"model": "resilient", "messages": HELLO, "stream": True}) as response:
        assert response.status_code == 200
        try:
            for piece in response.iter_raw():
                received += piece
                if b" two" in received:
                    cut.release.set()
        except httpx.RemoteProtocolError:
            pass  # Envoy passes the cut on as it happened (or ends the stream with an error event)
    cut.release.set()
    body = received.decode(errors="replace")
    assert response.headers["x-switchyard-model"] == "local/solo"
    texts = [json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
             for line in body.splitlines() if line.startswith("data: {") and '"choices":[{' in line.replace(" ", "")]
    assert "".join(texts).startswith("one two")
    assert "three" not in body
    assert (len(a.received), len(b.received), len(c.received)) == (0, 0, 1)


def _received_stub():
    from tests.standins import Received

    return Received("POST", "/v1/chat/completions", {}, json.dumps({"model": "solo", "messages": HELLO, "stream": True}).encode())


def test_anthropic_clients_fail_over_too(gateway, providers):
    a, b, c = providers
    claude = anthropic.Anthropic(base_url=gateway.url, api_key="client-key", max_retries=0)
    b.script.queue[:] = [UNAVAILABLE]
    # anthropic/backup has no fallbacks of its own: the failure comes back, in Anthropic's shape.
    with pytest.raises(anthropic.InternalServerError) as caught:
        claude.messages.create(model="anthropic/backup", max_tokens=20, messages=HELLO)
    assert caught.value.status_code == 503
    a.script.queue[:] = [UNAVAILABLE, UNAVAILABLE]
    raw = claude.messages.with_raw_response.create(model="primary", max_tokens=20, messages=HELLO)
    message = raw.parse()
    assert raw.headers["x-switchyard-model"] == "anthropic/backup"
    assert message.content[0].text == "anthropic stand-in answering as backup"


@pytest.fixture
def dead():
    with refused_port() as port:
        yield port


def test_alias_fallbacks_and_connection_refused(gateway, providers, tmp_path, dead):
    a, b, c = providers
    config = {
        "llm_providers": [
            {"model": "local/gone", "base_url": f"http://127.0.0.1:{dead}/v1", "default": True},
            {"model": "openai/primary", "access_key": "k", "base_url": f"{a.url}/v1"},
        ],
        "model_aliases": {"resilient": {"target": "local/gone", "fallbacks": ["primary"]}},
        "routing": {"engine": "none"},
        "failover": {"retries": 0},
    }
    with Gateway(config, tmp_path) as second:
        response = httpx.post(f"{second.url}/v1/chat/completions", json={"model": "resilient", "messages": HELLO})
        assert response.status_code == 200
        assert response.headers["x-switchyard-model"] == "openai/primary"
        # Without fallbacks, a dead provider is a clear 503 in the client's shape.
        direct = httpx.post(f"{second.url}/v1/chat/completions", json={"model": "local/gone", "messages": HELLO})
        assert direct.status_code == 503 and direct.json()["error"]["type"] == "server_error"


def test_a_model_that_keeps_failing_is_skipped_for_the_cooldown(providers, tmp_path):
    a, b, c = providers
    config = {  # a gateway of its own: no failures of earlier tests count towards the cool-down
        "llm_providers": [
            {"model": "openai/primary", "access_key": "k", "base_url": f"{a.url}/v1", "default": True,
             "fallbacks": ["anthropic/backup"]},
            {"model": "anthropic/backup", "access_key": "k", "base_url": f"{b.url}/v1"},
        ],
        "routing": {"engine": "none"},
        "failover": {"retries": 1, "cooldown": f"{COOLDOWN_S}s", "failures_before_cooldown": 4},
    }
    with Gateway(config, tmp_path) as gateway:
        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="client-key", max_retries=0)
        a.script.queue[:] = [UNAVAILABLE] * 4  # two requests' worth: four consecutive failures
        for _ in range(2):
            raw = client.chat.completions.with_raw_response.create(model="openai/primary", messages=HELLO)
            assert raw.headers["x-switchyard-model"] == "anthropic/backup"
        assert len(a.received) == 4
        cooling_since = time.monotonic()
        a.clear()
        raw = client.chat.completions.with_raw_response.create(model="openai/primary", messages=HELLO)
        assert raw.headers["x-switchyard-model"] == "anthropic/backup"
        assert a.received == []  # in its cool-down: not even tried
        # Ask until the primary serves again: never before the cool-down is over, and soon after.
        while True:
            raw = client.chat.completions.with_raw_response.create(model="openai/primary", messages=HELLO)
            waited = time.monotonic() - cooling_since
            if raw.headers["x-switchyard-model"] == "openai/primary":
                break
            assert a.received == [] and waited < COOLDOWN_S + 10, "the primary never came back"
            time.sleep(0.2)  # pacing the polls, not waiting for an event
        assert waited >= COOLDOWN_S - 0.5


def test_many_concurrent_failovers_all_succeed(providers, tmp_path):
    """Envoy's default circuit breaker allows 3 concurrent retries: the chain must allow more."""
    from concurrent.futures import ThreadPoolExecutor

    a, b, c = providers
    always_down = Script(lambda request: UNAVAILABLE)
    with StandIn(always_down) as down:
        config = {
            "llm_providers": [
                {"model": "local/down", "base_url": f"{down.url}/v1", "default": True, "fallbacks": ["openai/primary"]},
                {"model": "openai/primary", "access_key": "k", "base_url": f"{a.url}/v1"},
            ],
            "routing": {"engine": "none"},
            "failover": {"retries": 0, "failures_before_cooldown": 100000},
        }
        with Gateway(config, tmp_path) as gateway:
            def ask(_):
                return httpx.post(f"{gateway.url}/v1/chat/completions", timeout=30,
                                  json={"model": "local/down", "messages": HELLO}).status_code

            with ThreadPoolExecutor(16) as pool:
                statuses = list(pool.map(ask, range(64)))
    assert statuses == [200] * 64
