"""Plano users' configurations through the real Envoy: v0.4 ranked routes as failover chains,
`prefer: cheapest`, the Plano-Orchestrator router (its prompt checked byte for byte by a stand-in
router), the decision endpoint in Plano's shape, and base_url as Plano reads it on the filter
path, the fast path and failover attempts."""

from __future__ import annotations

import hashlib
import os
import signal
import socket

import anthropic
import httpx
import openai
import pytest

from tests.gateway import Gateway
from tests.standin_router import KeywordRouter
from tests.standins import StandIn, anthropic_reply, json_reply, openai_reply

CHECK_PROMPT_SHA256 = "608e09337d8dc10f106b6d1d481bb0764e67b4be391f456479dcbebc9f1dd64d"
CHECK_CONVERSATION = [
    {"role": "user", "content": "hi"},
    {"role": "assistant", "content": "Hello! How can I assist you today?"},
    {"role": "user", "content": "given the image In style of Andy Warhol, portrait of Bart and Lisa Simpson"},
]
UNAVAILABLE = json_reply(503, {"error": {"message": "overloaded", "type": "server_error"}})
# The request's own routes (Plano's v0.4 shape) replace the configured ones: the router sees
# exactly Plano's check case.
IMAGE_ROUTE = {"routing_preferences": [{"name": "Image generation", "description": "generating image",
                                        "models": ["anthropic/claude-sonnet-4-6", "openai/gpt-4o"]}]}


class Script:
    """A provider whose next answers a test can queue; then it answers normally."""

    def __init__(self, normal):
        self.normal = normal
        self.queue = []

    def __call__(self, request):
        return self.queue.pop(0) if self.queue else self.normal(request)


@pytest.fixture(scope="module")
def refused():
    """A loopback port bound by this test and never listening: connections to it are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


@pytest.fixture(scope="module")
def stack(refused, tmp_path_factory):
    mini, big, claude = Script(openai_reply), Script(openai_reply), Script(anthropic_reply)
    router = KeywordRouter({"function": "code generation", "weather": "weather"},
                           {CHECK_PROMPT_SHA256: ["Image generation"]})
    with StandIn(mini) as a, StandIn(big) as b, StandIn(claude) as c, StandIn(router) as r:
        config = {
            "version": "v0.4.0",
            "model_providers": [
                # Host-only base_urls: each provider's own default path.
                {"model": "openai/gpt-4o-mini", "access_key": "key-mini", "base_url": a.url, "default": True},
                {"model": "openai/gpt-4o", "access_key": "key-big", "base_url": b.url},
                {"model": "anthropic/claude-sonnet-4-6", "access_key": "key-claude", "base_url": c.url},
                {"model": "local/gone", "base_url": f"http://127.0.0.1:{refused}"},
            ],
            "routing_preferences": [
                {"name": "Image generation", "description": "generating image",
                 "models": ["anthropic/claude-sonnet-4-6", "openai/gpt-4o"]},
                {"name": "code generation", "description": "generating new code snippets or boilerplate",
                 "models": ["anthropic/claude-sonnet-4-6", "openai/gpt-4o"], "selection_policy": {"prefer": "cheapest"}},
                {"name": "weather", "description": "questions about the weather", "models": ["local/gone", "openai/gpt-4o"]},
            ],
            "routing": {"engine": "plano-orchestrator", "endpoint": f"{r.url}/v1", "timeout": "3s", "turn_pinning": False},
            "failover": {"retries": 0, "first_byte_timeout": "3s"},
        }
        with Gateway(config, tmp_path_factory.mktemp("plano")) as gateway:
            yield gateway, a, b, c, router


@pytest.fixture(autouse=True)
def clean(stack):
    _, *servers, router = stack
    for server in servers:
        server.clear()
        server.behaviour.queue.clear()
    router.prompts.clear()


def client(gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="client-key", max_retries=0, timeout=20)


def test_the_orchestrator_prompt_reaches_the_router_byte_for_byte_and_the_route_is_served(stack):
    gateway, _, _, claude, router = stack
    raw = client(gateway).chat.completions.with_raw_response.create(model="auto", messages=CHECK_CONVERSATION,
                                                                    extra_body=IMAGE_ROUTE)
    assert hashlib.sha256(router.prompts[0].encode()).hexdigest() == CHECK_PROMPT_SHA256
    assert raw.headers["x-switchyard-route"] == "Image generation"
    assert raw.headers["x-switchyard-model"] == "anthropic/claude-sonnet-4-6"
    assert raw.parse().choices[0].message.content
    [call] = claude.received
    assert call.path == "/v1/messages"  # host-only base_url: Anthropic's default path
    assert call.headers["x-api-key"] == "key-claude"


def test_a_routes_next_model_serves_when_the_first_answers_503(stack):
    gateway, _, big, claude, _ = stack
    claude.behaviour.queue[:] = [UNAVAILABLE]
    raw = client(gateway).chat.completions.with_raw_response.create(model="auto", messages=CHECK_CONVERSATION,
                                                                    extra_body=IMAGE_ROUTE)
    assert raw.headers["x-switchyard-model"] == "openai/gpt-4o"
    assert raw.parse().choices[0].message.content == "openai stand-in answering as gpt-4o"
    assert [r.path for r in claude.received] == ["/v1/messages"]
    [call] = big.received
    assert call.path == "/v1/chat/completions" and call.headers["authorization"] == "Bearer key-big"
    assert call.json["model"] == "gpt-4o"


def test_an_anthropic_client_fails_over_across_api_families_streaming(stack):
    gateway, _, big, claude, _ = stack
    claude.behaviour.queue[:] = [UNAVAILABLE]
    claude_client = anthropic.Anthropic(base_url=gateway.url, api_key="client-key", max_retries=0, timeout=20)
    with claude_client.messages.stream(model="auto", max_tokens=50, messages=CHECK_CONVERSATION,
                                       extra_body=IMAGE_ROUTE) as stream:
        text = "".join(stream.text_stream)
    assert text == "openai stand-in answering as gpt-4o"
    assert len(big.received) == 1 and big.received[0].json["stream"] is True


def test_a_refused_first_model_fails_over_to_the_next(stack):
    gateway, _, big, _, _ = stack
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "what's the weather in Paris?"}])
    assert raw.headers["x-switchyard-route"] == "weather"
    assert raw.headers["x-switchyard-model"] == "openai/gpt-4o"
    assert len(big.received) == 1


def test_prefer_cheapest_serves_the_cheaper_model_first(stack):
    gateway, _, big, claude, _ = stack
    # Written first: claude-sonnet-4-6 ($3 + $15 per million); cheaper: gpt-4o ($2.50 + $10).
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "write a function that reverses a list"}])
    assert raw.headers["x-switchyard-route"] == "code generation"
    assert raw.headers["x-switchyard-model"] == "openai/gpt-4o"
    assert len(big.received) == 1 and claude.received == []


def test_the_decision_endpoint_answers_in_plano_shape_and_sends_nothing_upstream(stack):
    gateway, mini, big, claude, _ = stack
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    answer = httpx.post(f"{gateway.url}/routing/v1/chat/completions", timeout=20,
                        headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
                        json={"model": "openai/gpt-4o-mini",
                              "messages": [{"role": "user", "content": "write a function in python"}]}).json()
    # A named model is served as named (Switchyard's precedence): no route.
    assert answer["models"] == ["openai/gpt-4o-mini"] and answer["route"] is None
    assert answer["trace_id"] == trace_id
    routed = httpx.post(f"{gateway.url}/routing/v1/chat/completions", timeout=20,
                        json={"messages": [{"role": "user", "content": "write a function in python"}]}).json()
    assert routed["models"] == ["openai/gpt-4o", "anthropic/claude-sonnet-4-6"]
    assert (routed["route"], routed["model"], routed["decision"]) == ("code generation", "openai/gpt-4o", "preference")
    assert len(routed["trace_id"]) == 32 and routed["router_ms"] is not None
    assert {"session_id", "pinned"} <= routed.keys()
    nothing = httpx.post(f"{gateway.url}/routing/v1/chat/completions", timeout=20,
                         json={"messages": [{"role": "user", "content": "hello there"}]}).json()
    assert (nothing["models"], nothing["route"], nothing["decision"]) == (["openai/gpt-4o-mini"], None, "default")
    assert mini.received == big.received == claude.received == []


# --------------------------------------------------------------------------- base_url forms


@pytest.fixture(scope="module", params=[False, True], ids=["filter-path", "fast-path"])
def forms(request, refused, tmp_path_factory):
    with StandIn(openai_reply) as openai_like, StandIn(anthropic_reply) as claude_like:
        config = {
            "version": "v0.4.0",
            "model_providers": [
                {"model": "openai/gpt-4o", "access_key": "k1", "base_url": openai_like.url, "default": True},
                {"model": "groq/llama-3.3-70b", "access_key": "k2", "base_url": openai_like.url},
                {"model": "vllm/qwen", "base_url": f"{openai_like.url}/models/v2/"},
                {"model": "corp/proxied", "access_key": "k3", "base_url": f"{openai_like.url}/ai-gateway/openai",
                 "http_host": "api.custom-provider.com"},
                {"model": "anthropic/claude-sonnet-4-6", "access_key": "k4", "base_url": claude_like.url},
                {"model": "anthropic/claude-proxied", "access_key": "k5", "base_url": f"{claude_like.url}/ai/anthropic"},
                {"model": "local/gone", "base_url": f"http://127.0.0.1:{refused}",
                 "fallbacks": ["corp/proxied", "anthropic/claude-sonnet-4-6"]},
            ],
            "routing": {"engine": "none"},
            "gateway": {"fast_path": request.param},
            "failover": {"retries": 0},
        }
        with Gateway(config, tmp_path_factory.mktemp("forms")) as gateway:
            yield gateway, openai_like, claude_like, request.param


OPENAI_PATHS = [("openai/gpt-4o", "/v1/chat/completions", None),
                ("groq/llama-3.3-70b", "/openai/v1/chat/completions", None),
                ("vllm/qwen", "/models/v2/chat/completions", None),
                ("corp/proxied", "/ai-gateway/openai/chat/completions", "api.custom-provider.com")]
ANTHROPIC_PATHS = [("anthropic/claude-sonnet-4-6", "/v1/messages"), ("anthropic/claude-proxied", "/ai/anthropic/messages")]


def test_host_only_and_path_base_urls_get_plano_paths(forms):
    gateway, openai_like, claude_like, fast = forms
    openai_like.clear()
    claude_like.clear()
    worker = gateway.child_pid("filter.runtime.worker")
    if fast:
        os.kill(worker, signal.SIGSTOP)  # what follows is served by Envoy alone
    try:
        chat = client(gateway)
        for model, _, _ in OPENAI_PATHS:
            assert chat.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}]).choices
        claude = anthropic.Anthropic(base_url=gateway.url, api_key="client-key", max_retries=0, timeout=20)
        for model, _ in ANTHROPIC_PATHS:
            assert claude.messages.create(model=model, max_tokens=20, messages=[{"role": "user", "content": "hi"}]).content
    finally:
        if fast:
            os.kill(worker, signal.SIGCONT)
    assert [r.path for r in openai_like.received] == [path for _, path, _ in OPENAI_PATHS]
    port = openai_like.url.rsplit(":", 1)[1]
    assert [r.headers["host"] for r in openai_like.received] == \
        [host or f"127.0.0.1:{port}" for _, _, host in OPENAI_PATHS]
    assert [r.path for r in claude_like.received] == [path for _, path in ANTHROPIC_PATHS]


def test_failover_attempts_use_each_members_base_url_and_host(forms):
    gateway, openai_like, claude_like, _ = forms
    openai_like.clear()
    openai_like.behaviour = lambda request: UNAVAILABLE
    try:
        raw = client(gateway).chat.completions.with_raw_response.create(
            model="local/gone", messages=[{"role": "user", "content": "hi"}])
    finally:
        openai_like.behaviour = openai_reply
    assert raw.headers["x-switchyard-model"] == "anthropic/claude-sonnet-4-6"
    [proxied] = openai_like.received
    assert proxied.path == "/ai-gateway/openai/chat/completions" and proxied.headers["host"] == "api.custom-provider.com"
    assert proxied.headers["authorization"] == "Bearer k3"
    assert claude_like.received[-1].path == "/v1/messages"
    assert claude_like.received[-1].headers["host"] == f"127.0.0.1:{claude_like.url.rsplit(':', 1)[1]}"


# --------------------------------------------------------------------------- prefer: fastest


def test_prefer_fastest_orders_the_pool_by_the_latency_envoy_observed(tmp_path):
    from tests.gateway import eventually
    from tests.standins import Reply

    def slowly(request):
        reply = openai_reply(request)
        return Reply(status=reply.status, body=reply.body, content_type=reply.content_type, delay_s=0.3)

    router = KeywordRouter({"hello": "chat"})
    with StandIn(slowly) as slow, StandIn(openai_reply) as quick, StandIn(router) as r:
        config = {
            "version": "v0.4.0",
            "model_providers": [
                {"model": "openai/gpt-4o-mini", "access_key": "k", "base_url": quick.url, "default": True},
                {"model": "local/slow", "base_url": slow.url},
                {"model": "local/quick", "base_url": quick.url},
            ],
            "routing_preferences": [{"name": "chat", "description": "small talk", "models": ["local/slow", "local/quick"],
                                     "selection_policy": {"prefer": "fastest"}}],
            "routing": {"engine": "plano-orchestrator", "endpoint": f"{r.url}/v1", "timeout": "3s",
                        "turn_pinning": False, "cache_size": 0},
        }
        with Gateway(config, tmp_path) as gateway:
            decision_url = f"{gateway.url}/routing/v1/chat/completions"
            body = {"messages": [{"role": "user", "content": "hello"}]}

            def first():
                return httpx.post(decision_url, json=body, timeout=10).json()["models"]

            assert first() == ["local/slow", "local/quick"]  # nothing observed yet: as written

            def observed():
                for model in ("local/slow", "local/quick"):  # traffic for Envoy to time
                    httpx.post(f"{gateway.url}/v1/chat/completions", timeout=10,
                               json={"model": model, "messages": [{"role": "user", "content": "hi"}]})
                assert first() == ["local/quick", "local/slow"]

            eventually(observed, timeout=40)


# --------------------------------------------------------------------------- wildcards, passthrough_auth, headers


def test_wildcards_passthrough_auth_and_extra_headers_reach_the_provider(tmp_path):
    from tests.gateway import eventually

    with StandIn(openai_reply) as upstream:
        config = {
            "version": "v0.4.0",
            "model_providers": [
                {"model": "openai/gpt-4o", "access_key": "key-exact", "base_url": upstream.url, "default": True},
                {"model": "openai/*", "access_key": "key-wild", "base_url": upstream.url},
                {"model": "litellm/team-model", "base_url": f"{upstream.url}/litellm", "passthrough_auth": True,
                 "headers": {"X-Org": "acme", "User-Agent": "$UA"}},
                {"model": "chatgpt/*"},
            ],
            "routing": {"engine": "none"},
        }
        with Gateway(config, tmp_path, env={"UA": "KimiCLI/1.3"}) as gateway:
            chat = client(gateway)
            exact = chat.chat.completions.with_raw_response.create(model="openai/gpt-4o", messages=[{"role": "user", "content": "a"}])
            wild = chat.chat.completions.with_raw_response.create(model="openai/gpt-5.2-codex",
                                                                  messages=[{"role": "user", "content": "b"}])
            own = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-virtual-team-key", max_retries=0)
            own.chat.completions.create(model="litellm/team-model", messages=[{"role": "user", "content": "c"}])
            with pytest.raises(openai.BadRequestError) as refused:
                chat.chat.completions.create(model="chatgpt/gpt-5.2", messages=[{"role": "user", "content": "d"}])
            metrics = f"http://127.0.0.1:{gateway.metrics_port}/metrics"

            def counted():
                text = httpx.get(metrics, timeout=10).text
                assert 'model="openai/*"' in text and 'model="openai/gpt-5.2-codex"' not in text

            eventually(counted, timeout=10)
    assert exact.headers["x-switchyard-model"] == "openai/gpt-4o"
    assert wild.headers["x-switchyard-model"] == "openai/gpt-5.2-codex"
    first, second, third = upstream.received
    assert (first.json["model"], first.headers["authorization"]) == ("gpt-4o", "Bearer key-exact")
    assert (second.json["model"], second.headers["authorization"]) == ("gpt-5.2-codex", "Bearer key-wild")
    assert third.path == "/litellm/chat/completions"
    assert third.headers["authorization"] == "Bearer sk-virtual-team-key"  # the client's own key
    assert (third.headers["x-org"], third.headers["user-agent"]) == ("acme", "KimiCLI/1.3")
    assert "Responses API only" in refused.value.message
