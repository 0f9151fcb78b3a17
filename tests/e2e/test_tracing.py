"""W3C trace context to the provider and the router, and spans exported over OTLP."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from tests.gateway import Gateway, eventually
from tests.standins import Reply, StandIn, json_reply

TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-01$")
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


class Collector:
    """A stand-in OTLP/HTTP collector (JSON encoding): keeps every span it is sent."""

    def __init__(self):
        self.spans = []
        self.services = set()

    def __call__(self, request) -> Reply:
        assert request.path == "/v1/traces" and request.headers["content-type"] == "application/json"
        for resource_spans in request.json["resourceSpans"]:
            for attribute in resource_spans["resource"]["attributes"]:
                if attribute["key"] == "service.name":
                    self.services.add(attribute["value"]["stringValue"])
            for scope_spans in resource_spans["scopeSpans"]:
                self.spans.extend(scope_spans["spans"])
        return Reply(status=200, body=b"{}")


def router_behaviour(request):
    return json_reply(200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": '{"route": "code"}'}}]})


@pytest.fixture(scope="module")
def setup(upstream, tmp_path_factory):
    collector = Collector()
    with StandIn(router_behaviour) as router, StandIn(collector) as otlp:
        config = {
            "llm_providers": [
                {"model": "openai/gpt-4o-mini", "access_key": "k", "base_url": f"{upstream.url}/v1", "default": True},
                {"model": "openai/gpt-4o", "access_key": "k", "base_url": f"{upstream.url}/v1",
                 "routing_preferences": [{"name": "code", "description": "writing code"}]},
            ],
            "routing": {"engine": "arch-router", "endpoint": f"{router.url}/v1"},
            "gateway": {"tracing": {"otlp_endpoint": f"{otlp.url}/v1/traces", "service_name": "switchyard-test"}},
        }
        with Gateway(config, tmp_path_factory.mktemp("tracing")) as gateway:
            yield gateway, router, collector


def ask(gateway, content, headers=None):
    return httpx.post(f"{gateway.url}/v1/chat/completions", headers=headers or {},
                      json={"model": "auto", "messages": [{"role": "user", "content": content}]})


def test_a_trace_is_started_when_the_client_sends_none(setup, fresh):
    gateway, router, _ = setup
    router.clear()
    assert ask(gateway, "write code please").status_code == 200
    upstream_trace = TRACEPARENT.match(fresh.received[0].headers["traceparent"])
    router_trace = TRACEPARENT.match(router.received[0].headers["traceparent"])
    assert upstream_trace and router_trace
    assert upstream_trace.group(1) == router_trace.group(1)  # one trace
    assert upstream_trace.group(2) != router_trace.group(2)  # two spans


def test_the_clients_trace_is_continued_and_spans_are_exported(setup, fresh):
    gateway, router, collector = setup
    router.clear()
    assert ask(gateway, "write more code", {"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"}).status_code == 200
    upstream_trace = TRACEPARENT.match(fresh.received[0].headers["traceparent"])
    assert upstream_trace.group(1) == CLIENT_TRACE and upstream_trace.group(2) != CLIENT_SPAN
    assert TRACEPARENT.match(router.received[0].headers["traceparent"]).group(1) == CLIENT_TRACE

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        spans = {s["name"]: s for s in collector.spans if s["traceId"] == CLIENT_TRACE}
        if len(spans) == 3:
            break
        time.sleep(0.1)
    assert set(spans) == {"switchyard.request", "switchyard.routing", "chat openai/gpt-4o"}
    request, routing, call = spans["switchyard.request"], spans["switchyard.routing"], spans["chat openai/gpt-4o"]
    assert request["parentSpanId"] == CLIENT_SPAN and request["kind"] == 2  # SERVER
    assert routing["parentSpanId"] == request["spanId"] and call["parentSpanId"] == request["spanId"]
    assert call["spanId"] == upstream_trace.group(2)  # the provider saw the call span's id
    start = lambda span: int(span["startTimeUnixNano"])  # noqa: E731
    assert start(request) <= start(routing) <= start(call) <= int(call["endTimeUnixNano"])
    attributes = {a["key"]: a["value"] for a in call["attributes"]}
    assert attributes["gen_ai.request.model"]["stringValue"] == "openai/gpt-4o"
    assert collector.services == {"switchyard-test"}


@pytest.mark.parametrize("header", [
    "00-zzzz-1234-01",  # not hex, wrong lengths
    f"00-{'0' * 32}-{CLIENT_SPAN}-01",  # the all-zero trace id is invalid
    f"00-{CLIENT_TRACE}-{'0' * 16}-01",  # so is the all-zero parent id
    f"ff-{CLIENT_TRACE}-{CLIENT_SPAN}-01",  # version ff is forbidden
    f"00-{CLIENT_TRACE[:-1]}-{CLIENT_SPAN}-01",  # one hex digit short
], ids=["garbage", "zero-trace", "zero-parent", "version-ff", "short"])
def test_a_malformed_traceparent_starts_a_new_trace(setup, fresh, header):
    gateway, _, collector = setup
    sent = []
    for _ in range(2):
        fresh.clear()
        assert ask(gateway, "and again", {"traceparent": header}).status_code == 200
        match = TRACEPARENT.match(fresh.received[0].headers["traceparent"])
        assert match, fresh.received[0].headers["traceparent"]
        sent.append(match.group(1))
    first, second = sent
    assert first not in header and second not in header  # not the client's (invalid) trace
    assert first != second  # a fresh trace for each request
    assert first.strip("0")

    def request_span():
        spans = [s for s in collector.spans if s["traceId"] == first and s["name"] == "switchyard.request"]
        assert len(spans) == 1, "the request span was not exported (yet)"
        return spans[0]

    span = eventually(request_span, timeout=10)
    assert not span.get("parentSpanId")  # a root span: no parent in an invalid header was taken


def test_a_literal_request_has_its_spans_whichever_path_serves_it(setup, fresh):
    """A literal model: Envoy serves it alone by default (the fast path), the filter with
    fast_path: false; the client's trace is continued and both spans reach the collector."""
    gateway, _, collector = setup
    trace = "a" * 31 + "1"
    response = httpx.post(f"{gateway.url}/v1/chat/completions", headers={"traceparent": f"00-{trace}-{CLIENT_SPAN}-01"},
                          json={"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200
    upstream_trace = TRACEPARENT.match(fresh.received[0].headers["traceparent"])
    assert upstream_trace.group(1) == trace

    def exported():
        spans = {s["name"]: s for s in collector.spans if s["traceId"] == trace}
        assert set(spans) == {"switchyard.request", "chat openai/gpt-4o-mini"}
        return spans
    spans = eventually(exported, timeout=10)
    request, call = spans["switchyard.request"], spans["chat openai/gpt-4o-mini"]
    assert request["parentSpanId"] == CLIENT_SPAN and call["parentSpanId"] == request["spanId"]
    assert call["spanId"] == upstream_trace.group(2)
    attributes = {a["key"]: a["value"] for a in request["attributes"]}
    assert attributes["switchyard.decision"]["stringValue"] == "literal"
