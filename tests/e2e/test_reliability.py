"""Bad input, client authentication, a filter that is down or stuck, and secrets that never leak."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import anthropic
import httpx
import openai
import pytest

from filter.config import parse_config
from filter.render.bootstrap import render_bootstrap
from tests.gateway import Gateway, eventually, start_envoy

OPENAI_KEY = "sk-reliability-openai-5e7c1"
ANTHROPIC_KEY = "sk-ant-reliability-88d02"
CLIENT_KEYS = "team-a-key-1,team-b-key-2"
MAX_BODY = 256 * 1024


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory):
    config = {
        "llm_providers": [
            {"model": "openai/gpt-4o", "access_key": "$REL_OPENAI_KEY", "base_url": f"{upstream.url}/v1", "default": True},
            {"model": "anthropic/claude-sonnet-4-5", "access_key": "$REL_ANTHROPIC_KEY", "base_url": f"{upstream.url}/v1"},
        ],
        "routing": {"engine": "none"},
        "gateway": {"client_keys": "$REL_CLIENT_KEYS", "max_request_bytes": MAX_BODY, "log_level": "debug"},
    }
    env = {"REL_OPENAI_KEY": OPENAI_KEY, "REL_ANTHROPIC_KEY": ANTHROPIC_KEY, "REL_CLIENT_KEYS": CLIENT_KEYS}
    with Gateway(config, tmp_path_factory.mktemp("reliability"), env=env) as gw:
        yield gw


AUTH = {"authorization": "Bearer team-a-key-1"}
HELLO = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}


def post(gateway, path, body=None, headers=None, **kw):
    return httpx.post(f"{gateway.url}{path}", json=body, headers={**AUTH, **(headers or {})}, **kw)


# ---------------------------------------------------------------- client authentication


def test_requests_without_a_client_key_get_401_before_anything_else(gateway, fresh):
    assert httpx.post(f"{gateway.url}/v1/chat/completions", json=HELLO).status_code == 401
    assert httpx.get(f"{gateway.url}/v1/models").status_code == 401
    assert httpx.get(f"{gateway.url}/no/such/path").status_code == 401
    wrong = httpx.post(f"{gateway.url}/v1/chat/completions", json=HELLO, headers={"authorization": "Bearer team-a-key"})
    assert wrong.status_code == 401 and wrong.json()["error"]["type"] == "authentication_error"
    assert fresh.received == []


def test_any_configured_client_key_works_with_either_sdk_and_is_not_forwarded(gateway, fresh):
    oai = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="team-b-key-2", max_retries=0)
    assert oai.chat.completions.create(model="gpt-4o", messages=HELLO["messages"]).choices
    claude = anthropic.Anthropic(base_url=gateway.url, api_key="team-a-key-1", max_retries=0)
    assert claude.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=HELLO["messages"]).content
    with pytest.raises(anthropic.AuthenticationError) as caught:
        anthropic.Anthropic(base_url=gateway.url, api_key="nope", max_retries=0).messages.create(
            model="claude-sonnet-4-5", max_tokens=10, messages=HELLO["messages"])
    assert caught.value.body["error"]["type"] == "authentication_error"
    for request in fresh.received:
        assert "team-a-key-1" not in str(request.headers) and "team-b-key-2" not in str(request.headers)


def test_either_valid_credential_is_enough_and_the_bearer_scheme_is_case_insensitive(gateway, fresh):
    url = f"{gateway.url}/v1/chat/completions"
    # An SDK may carry a stale x-api-key beside a valid Authorization: the valid one wins.
    both = httpx.post(url, json=HELLO, headers={"x-api-key": "stale-key", "authorization": "Bearer team-a-key-1"})
    assert both.status_code == 200
    assert httpx.post(url, json=HELLO, headers={"x-api-key": "team-b-key-2", "authorization": "Bearer wrong"}).status_code == 200
    assert httpx.post(url, json=HELLO, headers={"authorization": "bearer team-a-key-1"}).status_code == 200
    assert httpx.post(url, json=HELLO, headers={"authorization": "BEARER  team-b-key-2"}).status_code == 200
    for headers in ({"x-api-key": "stale-key", "authorization": "Bearer wrong"}, {"authorization": "Basic team-a-key-1"},
                    {"authorization": "team-a-key-1"}, {"authorization": "Bearer"}):
        assert httpx.post(url, json=HELLO, headers=headers).status_code == 401, headers
    assert len(fresh.received) == 4
    for request in fresh.received:
        assert "team-a-key-1" not in str(request.headers) and "team-b-key-2" not in str(request.headers)


# ---------------------------------------------------------------- the bad-input matrix


@pytest.mark.parametrize("path, api", [("/v1/chat/completions", "openai"), ("/v1/messages", "anthropic")])
def test_body_over_the_limit_is_413_in_the_clients_shape(gateway, fresh, path, api):
    huge = {"model": "gpt-4o", "max_tokens": 5, "messages": [{"role": "user", "content": "x" * (MAX_BODY + 10)}]}
    response = post(gateway, path, huge)
    assert response.status_code == 413
    body = response.json()
    if api == "openai":
        assert body["error"]["code"] == "request_too_large"
    else:
        assert body["type"] == "error" and body["error"]["type"] == "request_too_large"
    assert fresh.received == []


def test_a_body_just_under_the_limit_is_served(gateway, fresh):
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "y" * (MAX_BODY - 1000)}]}
    assert post(gateway, "/v1/chat/completions", body).status_code == 200
    assert len(fresh.received[0].body) > MAX_BODY - 1000


def test_unsupported_path_is_404(gateway, fresh):
    response = post(gateway, "/v1/audio/speech", HELLO)
    assert response.status_code == 404 and "unknown path" in response.json()["error"]["message"]
    assert fresh.received == []


def test_wrong_method_is_405_with_allow(gateway, fresh):
    response = httpx.get(f"{gateway.url}/v1/chat/completions", headers=AUTH)
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    response = httpx.delete(f"{gateway.url}/v1/messages", headers=AUTH)
    assert response.status_code == 405 and response.json()["type"] == "error"
    assert fresh.received == []


def test_wrong_content_type_is_415(gateway, fresh):
    response = httpx.post(f"{gateway.url}/v1/chat/completions", content=b"model=gpt-4o",
                          headers={**AUTH, "content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 415 and response.json()["error"]["code"] == "unsupported_media_type"
    assert fresh.received == []


def test_empty_body_is_400(gateway, fresh):
    response = httpx.post(f"{gateway.url}/v1/chat/completions", headers={**AUTH, "content-type": "application/json"})
    assert response.status_code == 400
    assert fresh.received == []


def test_truncated_json_in_anthropic_shape(gateway, fresh):
    response = httpx.post(f"{gateway.url}/v1/messages", content=b'{"model": "claude-sonnet-4-5", "messa',
                          headers={**AUTH, "content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert fresh.received == []


# ---------------------------------------------------------------- secrets


def test_provider_keys_appear_nowhere_in_a_full_runs_output(gateway, fresh):
    """Errors, debug logs, access log, metrics: grep everything for the key values."""
    post(gateway, "/v1/chat/completions", HELLO)
    post(gateway, "/v1/chat/completions", {"model": "nope", "messages": HELLO["messages"]})
    post(gateway, "/v1/messages", {"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": HELLO["messages"]})
    metrics = httpx.get(f"http://127.0.0.1:{gateway.metrics_port}/metrics").text
    render = subprocess.run(
        [os.sys.executable, "-m", "filter.runtime.cli", "render", str(gateway.path)], capture_output=True, text=True,
        env={**os.environ, "REL_OPENAI_KEY": OPENAI_KEY, "REL_ANTHROPIC_KEY": ANTHROPIC_KEY,
             "REL_CLIENT_KEYS": CLIENT_KEYS}, timeout=60).stdout
    # Envoy flushes its access log in batches: wait until it holds the three requests.
    eventually(lambda: _assert_at_least(gateway.output().count('"path":"/v1/'), 3), timeout=10)
    everything = gateway.output() + metrics + render
    for secret in (OPENAI_KEY, ANTHROPIC_KEY, "team-a-key-1", "team-b-key-2"):
        assert secret not in everything
    assert '"decision":"literal"' in gateway.output()  # the log really holds the requests


def _assert_at_least(count: int, minimum: int) -> None:
    assert count >= minimum, f"{count} access log lines, expected {minimum}"


# ---------------------------------------------------------------- the filter down or stuck


def test_filter_down_means_a_clear_503_and_nothing_upstream(upstream, tmp_path):
    upstream.clear()
    config = parse_config({
        "listeners": {"egress_traffic": {"address": "127.0.0.1", "port": 0}},
        "llm_providers": [{"model": "openai/gpt-4o", "access_key": "k", "base_url": f"{upstream.url}/v1", "default": True}],
        "gateway": {"admin_port": 0, "socket_dir": str(tmp_path / "sockets")},  # no worker listens there
    }, "t.yaml", {})
    envoy, port, _ = start_envoy(render_bootstrap(config), tmp_path)
    try:
        response = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=HELLO)
        assert response.status_code == 503
        assert response.json()["error"]["type"] == "server_error"
        assert "gateway error" in response.json()["error"]["message"]
        messages = httpx.post(f"http://127.0.0.1:{port}/v1/messages", json=HELLO)
        assert messages.status_code == 503 and messages.json()["type"] == "error"
        assert upstream.received == []
    finally:
        envoy.terminate()
        envoy.wait(timeout=20)


def test_a_stuck_filter_times_out_into_a_json_error_and_nothing_upstream(upstream, tmp_path):
    upstream.clear()
    config = {"llm_providers": [{"model": "openai/gpt-4o", "access_key": "k", "base_url": f"{upstream.url}/v1",
                                 "default": True}],
              "routing": {"engine": "none", "timeout": "200ms"}}
    with Gateway(config, tmp_path) as gateway:
        worker = gateway.child_pid("filter.runtime.worker")
        os.kill(worker, signal.SIGSTOP)
        try:
            start = time.monotonic()
            # No model: only the filter decides (the default model), fast path or not.
            response = httpx.post(f"{gateway.url}/v1/chat/completions", json={"messages": HELLO["messages"]}, timeout=10)
            assert time.monotonic() - start < 3
            assert response.status_code >= 500
            assert "gateway error" in response.json()["error"]["message"]
            assert upstream.received == []
        finally:
            os.kill(worker, signal.SIGCONT)
