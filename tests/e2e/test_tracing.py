"""W3C trace context to the provider and the router, and spans exported over OTLP."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.gateway import Gateway
from tests.standins import Reply, StandIn, json_reply

TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-01$")
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


class Collector:
    """A stand-in OTLP/HTTP collector: keeps every span it is sent."""

    def __init__(self):
        self.spans = []

    def __call__(self, request) -> Reply:
        export = ExportTraceServiceRequest.FromString(request.body)
        for resource_spans in export.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                self.spans.extend(scope_spans.spans)
        return Reply(status=200, body=b"", content_type="application/x-protobuf")


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
        spans = {s.name: s for s in collector.spans if s.trace_id.hex() == CLIENT_TRACE}
        if len(spans) == 3:
            break
        time.sleep(0.1)
    assert set(spans) == {"switchyard.request", "switchyard.routing", "chat openai/gpt-4o"}
    request, routing, call = spans["switchyard.request"], spans["switchyard.routing"], spans["chat openai/gpt-4o"]
    assert request.parent_span_id.hex() == CLIENT_SPAN
    assert routing.parent_span_id == request.span_id and call.parent_span_id == request.span_id
    assert call.span_id.hex() == upstream_trace.group(2)  # the provider saw the call span's id
    assert request.start_time_unix_nano <= routing.start_time_unix_nano <= call.start_time_unix_nano
    assert call.end_time_unix_nano >= call.start_time_unix_nano
    attributes = {a.key: a.value for a in call.attributes}
    assert attributes["gen_ai.request.model"].string_value == "openai/gpt-4o"


def test_a_malformed_traceparent_starts_a_new_trace(setup, fresh):
    gateway, _, _ = setup
    assert ask(gateway, "and again", {"traceparent": "00-zzzz-1234-01"}).status_code == 200
    sent = TRACEPARENT.match(fresh.received[0].headers["traceparent"])
    assert sent and sent.group(1) != "zzzz"
