"""The relay of an answer's body (filter/stream_guard.py): relayed unchanged when the provider
finishes, ended in the client's format — as the official SDKs parse it — when the deadline comes."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from envoy.service.ext_proc.v3.external_processor_pb2 import HttpBody, ProcessingRequest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai._streaming import SSEDecoder

from filter.errors import ClientApi
from filter.stream_guard import StreamGuard, _Passthrough, cut_message, deadline_margin, monotonic_start, stream_deadline
from tests.standins import Received, anthropic_reply, openai_reply, responses_reply

MESSAGE = cut_message(5)


def provider_stream(api: ClientApi, words: int) -> bytes:
    """A provider's real-shaped SSE answer (the stand-ins' wire format)."""
    text = " ".join(f"w{i}" for i in range(words))
    if api is ClientApi.CHAT:
        body, make = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "x"}]}, openai_reply
    elif api is ClientApi.MESSAGES:
        body, make = {"model": "m", "max_tokens": 9, "stream": True,
                      "messages": [{"role": "user", "content": "x"}]}, anthropic_reply
    else:
        body, make = {"model": "m", "stream": True, "input": "x"}, responses_reply
    reply = make(Received("POST", "/v1/x", {}, json.dumps(body).encode()), text=text)
    return b"".join(reply.chunks)


def events(raw: bytes) -> list:
    """The events as the OpenAI SDK's own SSE decoder reads them."""
    return list(SSEDecoder().iter_bytes(iter([raw])))


def relay(passthrough: _Passthrough, raw: bytes, cuts: list[int], end: bool) -> bytes:
    out, last = [], 0
    points = sorted(set(c for c in cuts if 0 < c < len(raw)))
    for point in points + [len(raw)]:
        out.append(passthrough.feed(raw[last:point], end and point == len(raw)))
        last = point
    return b"".join(out)


APIS = st.sampled_from(list(ClientApi))


@settings(max_examples=150, deadline=None)
@given(api=APIS, words=st.integers(1, 12), cuts=st.lists(st.integers(0, 4000), max_size=12))
def test_a_stream_that_ends_is_relayed_byte_for_byte_however_it_is_chunked(api, words, cuts):
    raw = provider_stream(api, words)
    assert relay(_Passthrough(api, 1 << 20), raw, cuts, end=True) == raw


@settings(max_examples=200, deadline=None)
@given(api=APIS, words=st.integers(1, 12), cuts=st.lists(st.integers(0, 4000), max_size=12),
       stop=st.floats(0, 1))
def test_a_stream_cut_anywhere_ends_after_whole_events_with_the_clients_error(api, words, cuts, stop):
    raw = provider_stream(api, words)
    sent = raw[: int(len(raw) * stop)]  # what the provider sent before it hung
    passthrough = _Passthrough(api, 1 << 20)
    out = relay(passthrough, sent, cuts, end=False) + passthrough.cut(MESSAGE)
    whole_events = sent[: sent.rfind(b"\n\n") + 2] if b"\n\n" in sent else b""  # the stand-ins end lines with \n
    assert out.startswith(whole_events)  # every whole event the provider sent, unchanged; no partial one
    whole, last = events(whole_events), events(out[len(whole_events):])
    if whole_events == raw:  # the provider's terminal event went out: the stream just ends
        assert last == []
    elif api is ClientApi.CHAT:
        assert [e.data for e in last][1:] == ["[DONE]"]
        assert json.loads(last[0].data)["error"]["message"] == MESSAGE  # the SDK raises APIError on this
    elif api is ClientApi.MESSAGES:
        assert len(last) == 1 and last[0].event == "error"
        assert json.loads(last[0].data) == {"type": "error", "error": {"type": "api_error", "message": MESSAGE}}
    else:
        assert len(last) == 1
        event = json.loads(last[0].data)
        numbers = [json.loads(e.data)["sequence_number"] for e in whole]
        assert event["sequence_number"] == (max(numbers) + 1 if numbers else 0)
        started = any(e.event == "response.created" for e in whole)
        if started:  # the response the client was told of, failed
            assert last[0].event == "response.failed" and event["response"]["id"] == "resp_standin"
            assert event["response"]["status"] == "failed"
            assert event["response"]["error"] == {"code": "server_error", "message": MESSAGE}
        else:
            assert last[0].event == "error" and event["code"] == "server_error"


def test_an_event_too_large_to_hold_is_relayed_as_it_comes():
    passthrough = _Passthrough(ClientApi.CHAT, 64)
    assert passthrough.feed(b"data: " + b"x" * 100, False) == b"data: " + b"x" * 100


@pytest.mark.parametrize("timeout, margin", [(30, 1.0), (10, 1.0), (3, 0.3), (0.5, 0.1), (0.1, 0.05)])
def test_the_gateway_acts_a_margin_before_the_listener_timeout(timeout, margin):
    assert deadline_margin(timeout) == pytest.approx(margin)
    assert stream_deadline(100.0, timeout, now=100.0 + timeout / 2) == pytest.approx(100.0 + timeout - margin)


@pytest.mark.parametrize("started", [130.0, 100.0 - 30.0, 100.0 - 3000.0], ids=["ahead", "at-timeout", "long-ago"])
def test_a_start_a_stepped_clock_made_impossible_counts_from_now(started):
    """Envoy's start (its wall clock) and the worker's disagree: the headers came before the start
    or after the listener timeout. The gateway then gives the stream the whole timeout from now."""
    assert stream_deadline(started, 30, now=100.0) == pytest.approx(100.0 + 30 - 1.0)


def test_a_fast_streams_start_keeps_the_time_elapsed_since_envoy_began_it():
    assert monotonic_start(time.time() - 2.0) == pytest.approx(time.monotonic() - 2.0, abs=0.05)


# ---------------------------------------------------------------- the ext_proc exchange


def body(data: bytes, end: bool = False) -> ProcessingRequest:
    return ProcessingRequest(response_body=HttpBody(body=data, end_of_stream=end))


async def arrive(messages, gaps):
    for message, gap in zip(messages, gaps):
        await asyncio.sleep(gap)
        yield message
    await asyncio.sleep(3600)  # the provider hangs


def run(guard: StreamGuard, messages, gaps=None):
    async def collect():
        return [reply async for reply in guard.relay(arrive(messages, gaps or [0] * len(messages)))]
    return asyncio.run(collect())


def guard(deadline_in: float, cuts: list):
    return StreamGuard(ClientApi.CHAT, time.monotonic() + deadline_in, 5, None, 1 << 20, lambda: cuts.append(1))


def streamed(reply):
    return reply.response_body.response.body_mutation.streamed_response


def test_a_stream_is_relayed_as_it_comes_and_ended_by_the_gateway_at_the_deadline():
    cuts = []
    chunk = b'data: {"choices": []}\n\n'
    replies = run(guard(0.3, cuts), [body(chunk), body(b'data: {"cho')])
    assert streamed(replies[0]).body == chunk and not streamed(replies[0]).end_of_stream
    end = streamed(replies[1])  # the half event is never sent
    assert end.end_of_stream and end.body.startswith(b'data: {"error"') and end.body.endswith(b"data: [DONE]\n\n")
    assert replies[1].dynamic_metadata.fields["switchyard"].struct_value.fields["stream_end"].string_value == "cut_timeout"
    assert cuts == [1] and len(replies) == 2


def test_a_provider_that_finishes_in_time_is_relayed_to_its_end_and_nothing_is_cut():
    cuts = []
    replies = run(guard(5, cuts), [body(b"data: 1\n\n"), body(b"data: [DONE]\n\n", end=True)], [0, 0.05])
    assert [streamed(r).body for r in replies] == [b"data: 1\n\n", b"data: [DONE]\n\n"]
    assert streamed(replies[-1]).end_of_stream and cuts == []
