"""A provider stream that never ends, or goes silent, is ended by the gateway before the listener
timeout, with the terminal event of the client's API (the official SDKs see a server error, not
a dropped connection), and logged and counted as cut — on the filter path and the fast path, for
native and translated streams."""

from __future__ import annotations

import json
import os
import re
import signal
import time

import anthropic
import httpx
import openai
import pytest

from tests.conftest import provider_behaviour
from tests.gateway import FILTER_ONLY_RUN, Gateway, eventually
from tests.standins import StandIn

TIMEOUT_S = 3  # the listener timeout of this test's gateway
HOLD_S = 20  # how long the stand-in keeps a hanging stream open: well past the timeout, bounded


def hanging(after: int, split: bool = False):
    """The provider's usual stream, which stops after `after` chunks and never ends (within
    HOLD_S). `split`: the last chunk sent is half an SSE event."""
    def behaviour(request):
        reply = provider_behaviour(request)
        if reply.chunks is not None:
            if split:
                piece = reply.chunks[after - 1]
                reply.chunks[after - 1:after] = [piece[: len(piece) // 2], piece[len(piece) // 2:]]
            reply.hold_after, reply.hold_s = after, HOLD_S
        return reply
    return behaviour


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    with StandIn(provider_behaviour) as upstream:
        config = {
            "listeners": {"egress_traffic": {"address": "127.0.0.1", "port": 0, "timeout": f"{TIMEOUT_S}s"}},
            "llm_providers": [
                {"model": "openai/gpt-4o", "access_key": "sk-test", "base_url": f"{upstream.url}/v1", "default": True},
                {"model": "anthropic/claude-sonnet-4-5", "access_key": "sk-ant-test", "base_url": f"{upstream.url}/v1"},
            ],
            "routing": {"engine": "none"},
        }
        with Gateway(config, tmp_path_factory.mktemp("cut")) as gw:
            yield gw, upstream


@pytest.fixture
def provider(gateway):
    gw, upstream = gateway
    yield upstream
    upstream.behaviour = provider_behaviour


def _chat(gw, model):
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key="unused", max_retries=0, timeout=30)
    seen = []
    with pytest.raises(openai.APIError) as raised:
        for chunk in client.chat.completions.create(model=model, stream=True,
                                                    messages=[{"role": "user", "content": "count to a million"}]):
            seen += [c.delta.content for c in chunk.choices if c.delta.content]
    assert not isinstance(raised.value, openai.APIConnectionError), raised.value  # an answer, not a dropped line
    return str(raised.value), seen


def _messages(gw, model):
    client = anthropic.Anthropic(base_url=gw.url, api_key="unused", max_retries=0, timeout=30)
    seen = []
    with pytest.raises(anthropic.APIStatusError) as raised:
        for event in client.messages.create(model=model, max_tokens=100, stream=True,
                                            messages=[{"role": "user", "content": "count to a million"}]):
            if event.type == "content_block_delta":
                seen.append(event.delta.text)
    return str(raised.value), seen


def _responses(gw, model):
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key="unused", max_retries=0, timeout=30)
    events = list(client.responses.create(model=model, input="count to a million", stream=True))
    last = events[-1]
    assert last.type == "response.failed", [e.type for e in events]
    assert last.response.status == "failed" and last.response.error.code == "server_error"
    numbers = [e.sequence_number for e in events]
    assert numbers == sorted(set(numbers)), numbers  # the gateway's event continues the sequence
    return last.response.error.message, [e.delta for e in events if e.type == "response.output_text.delta"]


CLIENTS = {"chat": _chat, "messages": _messages, "responses": _responses}
LABELS = {"chat": "openai", "messages": "anthropic", "responses": "responses"}  # client_api, as logged
CASES = [  # (client API, model, after how many provider chunks the stream hangs)
    ("chat", "gpt-4o", 3),                       # native
    ("messages", "claude-sonnet-4-5", 5),        # native
    ("responses", "gpt-4o", 6),                  # native
    ("chat", "claude-sonnet-4-5", 5),            # translated
    ("messages", "gpt-4o", 3),                   # translated
    ("responses", "claude-sonnet-4-5", 5),       # translated
]


@pytest.mark.parametrize("api, model, after", CASES, ids=[f"{a}-{m}" for a, m, _ in CASES])
def test_a_stream_still_running_at_the_listener_timeout_ends_with_the_clients_terminal_event(
        gateway, provider, api, model, after):
    gw, _ = gateway
    provider.behaviour = hanging(after)
    started = time.monotonic()
    message, seen = CLIENTS[api](gw, model)
    assert time.monotonic() - started < TIMEOUT_S + 1  # the gateway ended it; the provider never did
    assert "did not finish within the gateway's timeout (3s" in message
    assert seen, "what the provider sent before it hung reached the client"
    slug = "openai/gpt-4o" if model == "gpt-4o" else "anthropic/claude-sonnet-4-5"
    line = eventually(lambda: _logged(gw, slug, LABELS[api]))
    assert line["status"] == 200 and line["stream_end"] == "cut_timeout"
    eventually(lambda: _counted_cut(gw, LABELS[api], slug))  # Envoy's counters move at its next flush


def _counted_cut(gw, api, slug):
    metrics = httpx.get(f"http://127.0.0.1:{gw.metrics_port}/metrics").text
    assert re.search(rf'switchyard_streams_cut_total\{{client_api="{api}",model="{slug}"\}} [1-9]', metrics), metrics


@pytest.mark.skipif(FILTER_ONLY_RUN, reason="the fast path is off in this run: the filter guards every stream")
@pytest.mark.parametrize("api, model, after", CASES[:2], ids=[f"{a}-{m}" for a, m, _ in CASES[:2]])
def test_with_the_filter_frozen_a_fast_path_stream_is_still_ended_in_the_clients_format(
        gateway, provider, api, model, after):
    """Envoy guards the fast path's streams (Chat Completions and Messages) itself
    (envoy/switchyard_stream_guard.c): no Python on the answer's way, so a frozen filter changes
    nothing for them."""
    gw, _ = gateway
    provider.behaviour = hanging(after)
    worker = gw.child_pid("filter.runtime.worker")
    os.kill(worker, signal.SIGSTOP)
    try:
        started = time.monotonic()
        message, seen = CLIENTS[api](gw, model)
        assert time.monotonic() - started < TIMEOUT_S + 1
        assert "did not finish within the gateway's timeout (3s" in message and seen
    finally:
        os.kill(worker, signal.SIGCONT)
    slug = "openai/gpt-4o" if model == "gpt-4o" else "anthropic/claude-sonnet-4-5"
    assert eventually(lambda: _logged(gw, slug, LABELS[api]))["stream_end"] == "cut_timeout"


@pytest.mark.skipif(FILTER_ONLY_RUN, reason="the filter can end a body only once a chunk of it reached it")
@pytest.mark.parametrize("api, model", [("chat", "gpt-4o"), ("messages", "claude-sonnet-4-5")])
def test_a_fast_path_stream_silent_after_its_headers_is_ended_too(gateway, provider, api, model):
    """Envoy's guard keeps its own time: an answer that sent its headers and not one byte more
    still ends in the client's format, not with a reset."""
    gw, _ = gateway
    provider.behaviour = hanging(0)
    started = time.monotonic()
    message, seen = CLIENTS[api](gw, model)
    assert time.monotonic() - started < TIMEOUT_S + 1
    assert "did not finish within the gateway's timeout (3s" in message and not seen


def test_with_usage_metrics_off_the_filter_guards_and_counts_fast_path_streams(tmp_path):
    """Nothing in Envoy would count a cut with the metrics extension off: the fast path's streams
    then go back to the filter's relay, which ends them and counts them itself."""
    with StandIn(provider_behaviour) as upstream:
        config = {
            "listeners": {"egress_traffic": {"address": "127.0.0.1", "port": 0, "timeout": f"{TIMEOUT_S}s"}},
            "llm_providers": [{"model": "openai/gpt-4o", "access_key": "sk-test", "base_url": f"{upstream.url}/v1",
                               "default": True}],
            "routing": {"engine": "none"},
            "gateway": {"usage_metrics": False},
        }
        with Gateway(config, tmp_path) as gw:
            upstream.behaviour = hanging(3)
            message, seen = _chat(gw, "gpt-4o")
            assert "did not finish within the gateway's timeout (3s" in message and seen
            assert eventually(lambda: _logged(gw, "openai/gpt-4o", "openai"))["stream_end"] == "cut_timeout"
            eventually(lambda: _counted_cut(gw, "openai", "openai/gpt-4o"))


HI = [{"role": "user", "content": "hi"}]


def test_a_stream_silent_after_its_first_event_or_half_an_event_ends_cleanly_after_whole_events(gateway, provider):
    gw, _ = gateway
    body = {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    for behaviour, expected_events in ((hanging(1), 1), (hanging(3, split=True), 2)):
        provider.behaviour = behaviour
        with httpx.stream("POST", f"{gw.url}/v1/chat/completions", json=body, timeout=30) as response:
            raw = response.read()  # a reset would raise RemoteProtocolError here
        assert response.status_code == 200
        events = [e for e in raw.decode().split("\n\n") if e]
        assert len(events) == expected_events + 2, raw  # whole events, the error, [DONE]
        for event in events[:-1]:
            assert event.startswith("data: ") and json.loads(event[6:])  # no broken half event
        assert "error" in json.loads(events[-2][6:]) and events[-1] == "data: [DONE]"


def test_a_stream_that_finishes_in_time_is_relayed_unchanged(gateway, provider):
    gw, upstream = gateway
    body = {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi there you"}]}
    provider.behaviour = provider_behaviour
    with httpx.stream("POST", f"{gw.url}/v1/chat/completions", json=body, timeout=30) as response:
        raw = response.read()
    upstream.clear()
    expected = b"".join(provider_behaviour(_as_received(body)).chunks)
    assert raw == expected


def _as_received(body):
    from tests.standins import Received

    return Received("POST", "/v1/chat/completions", {}, json.dumps({**body, "model": "gpt-4o"}).encode())


def _logged(gw, slug, api):
    lines = [json.loads(l) for l in gw.output().splitlines() if l.startswith("{") and '"stream_end"' in l]
    cut = [l for l in lines if l.get("model") == slug and l.get("client_api") == api and l["stream_end"]]
    assert cut, f"no access-log line for a cut {api} stream of {slug}"
    return cut[-1]
