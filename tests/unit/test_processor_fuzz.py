"""Random JSON thrown at the filter's request handling: it never crashes, and always answers either
a well-formed error in the client's shape or a well-formed upstream request."""

from __future__ import annotations

import asyncio

import orjson
from envoy.config.core.v3.base_pb2 import HeaderMap, HeaderValue
from envoy.service.ext_proc.v3.external_processor_pb2 import HttpHeaders
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from filter.config import parse_config
from filter.metrics import Metrics
from filter.processor import Exchange, Processor

CONFIG = parse_config(
    {
        "llm_providers": [
            {"model": "openai/gpt-4o", "access_key": "k1", "default": True},
            {"model": "anthropic/claude", "access_key": "k2"},
            {"model": "echo/e"},
        ],
        "model_aliases": {"fast": {"target": "gpt-4o"}},
        "routing": {"engine": "none"},
    },
    "fuzz.yaml",
    {},
)
PROCESSOR = Processor(CONFIG, None, Metrics())

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
roles = st.sampled_from(["user", "assistant", "system", "tool", "developer", "x"])
content = st.text(max_size=30) | st.lists(
    st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url", "image", "tool_result", "q"])},
                          optional={"text": json_values, "image_url": json_values, "source": json_values}),
    max_size=3) | json_values
message = st.fixed_dictionaries({"role": roles}, optional={"content": content, "tool_calls": json_values,
                                                           "tool_call_id": json_values})
bodies = st.fixed_dictionaries(
    {},
    optional={
        "model": st.sampled_from(["gpt-4o", "fast", "claude", "echo/e", "nope", "", "auto"]) | json_values,
        "messages": st.lists(message, max_size=4) | json_values,
        "stream": st.booleans() | json_values,
        "tools": json_values,
        "tool_choice": json_values,
        "max_tokens": json_values,
        "system": json_values,
        "metadata": json_values,
        "routing_preferences": json_values,
        "stop": json_values,
    },
) | json_values


def headers_message(path: str) -> HttpHeaders:
    values = [(":path", path), (":method", "POST"), ("content-type", "application/json")]
    return HttpHeaders(headers=HeaderMap(headers=[HeaderValue(key=k, raw_value=v.encode()) for k, v in values]))


def check(path: str, raw: bytes) -> None:
    exchange = Exchange()
    first = PROCESSOR.on_request_headers(exchange, headers_message(path))
    assert first.WhichOneof("response") == "request_headers"
    reply = asyncio.run(PROCESSOR.on_request_body(exchange, raw))
    kind = reply.WhichOneof("response")
    if kind == "immediate_response":
        response = reply.immediate_response
        headers = {h.header.key: h.header.raw_value.decode() for h in response.headers.set_headers}
        if headers["content-type"] == "text/event-stream":  # the echo provider, streaming
            assert response.status.code == 200
            assert response.body.rstrip().endswith(b"data: [DONE]" if path != "/v1/messages" else b'"message_stop"}')
            return
        body = orjson.loads(response.body)
        if response.status.code >= 400:
            if path == "/v1/messages":
                assert body["type"] == "error" and isinstance(body["error"]["message"], str)
            else:
                assert isinstance(body["error"]["message"], str) and "type" in body["error"]
        return
    assert kind == "request_body"
    common = reply.request_body.response
    headers = {h.header.key: h.header.raw_value.decode() for h in common.header_mutation.set_headers}
    forwarded = orjson.loads(common.body_mutation.body)
    assert isinstance(forwarded, dict) and forwarded["model"] in ("gpt-4o", "claude")
    assert headers["content-length"] == str(len(common.body_mutation.body))
    assert headers["x-switchyard-provider"].startswith("provider_")
    assert "routing_preferences" not in forwarded


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies, path=st.sampled_from(["/v1/chat/completions", "/v1/messages"]))
@example(body={"model": "echo/e", "messages": [{"role": "user"}], "stream": True}, path="/v1/chat/completions")
@example(body={"model": "echo/e", "messages": [{"role": "user"}], "stream": True}, path="/v1/messages")
def test_random_json_never_crashes_the_filter(body, path):
    check(path, orjson.dumps(body))


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=64), path=st.sampled_from(["/v1/chat/completions", "/v1/messages"]))
def test_random_bytes_never_crash_the_filter(raw, path):
    check(path, raw)
