"""The fast path (gateway.fast_path: true) end to end: Envoy alone serves literal and alias
requests, and nothing a client, a provider, the access log or the metrics see changes."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import stat
import subprocess
import time
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from filter.runtime.supervisor import envoy_binary
from tests.gateway import REPO, SWITCHYARD, Gateway, eventually

OPENAI_KEY = "sk-fast-path-openai-91b2"
GROQ_KEY = "gsk-fast-path-groq-3c4d"
ANTHROPIC_KEY = "sk-ant-fast-path-5e6f"
CLIENT_TRACE, CLIENT_SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
HI = [{"role": "user", "content": "hé, say hi ✓"}]


def _config(upstream, fast: bool) -> dict:
    return {
        "llm_providers": [
            {"model": "openai/gpt-4o", "access_key": "$FP_OPENAI_KEY", "base_url": f"{upstream.url}/v1", "default": True},
            {"model": "groq/llama-3.3-70b", "access_key": GROQ_KEY, "base_url": f"{upstream.url}/openai/v1"},
            {"model": "anthropic/claude-sonnet-4-5", "access_key": ANTHROPIC_KEY, "base_url": f"{upstream.url}/v1"},
            {"model": "local/qwen", "base_url": f"{upstream.url}/custom/api"},
        ],
        "model_aliases": {"fast-model": {"target": "llama-3.3-70b"}, "claude": {"target": "claude-sonnet-4-5"}},
        "routing": {"engine": "none"},
        "gateway": {"fast_path": fast},
    }


@pytest.fixture(scope="module")
def gateways(upstream, tmp_path_factory):
    """The same configuration twice: with the fast path, and with every request through the filter."""
    env = {"FP_OPENAI_KEY": OPENAI_KEY}
    with Gateway(_config(upstream, True), tmp_path_factory.mktemp("fast"), env=env) as fast, \
            Gateway(_config(upstream, False), tmp_path_factory.mktemp("filter"), env=env) as slow:
        yield fast, slow


# What clients send: (path, headers, body). Fast and not, well-formed and not.
REQUESTS = [
    ("/v1/chat/completions", {}, {"model": "fast-model", "messages": HI}),
    ("/v1/chat/completions?trace=1", {"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01", "authorization": "Bearer client"},
     {"model": "openai/gpt-4o", "messages": HI, "temperature": 0.5, "metadata": {"team": "a"}}),
    ("/v1/chat/completions", {"x-api-key": "client", "anthropic-version": "2023-06-01"},
     {"model": "gpt-4o", "messages": HI, "stream": True, "stream_options": {"include_usage": True}}),
    ("/v1/chat/completions", {}, {"model": "qwen", "messages": HI, "stream": False}),
    ("/v1/messages?beta=true", {"x-api-key": "client", "anthropic-beta": "tools-2024"},
     {"model": "claude", "max_tokens": 20, "messages": HI}),
    ("/v1/messages", {"anthropic-version": "2024-01-01"},
     {"model": "anthropic/claude-sonnet-4-5", "max_tokens": 20, "messages": HI, "stream": True}),
    # Through the filter on both gateways: translation, defaults, errors, a forged flag.
    ("/v1/chat/completions", {}, {"model": "claude", "messages": HI}),
    ("/v1/messages", {}, {"model": "fast-model", "max_tokens": 20, "messages": HI}),
    ("/v1/chat/completions", {}, {"messages": HI}),
    ("/v1/chat/completions", {}, {"model": "nope", "messages": HI}),
    ("/v1/chat/completions", {}, {"model": "gpt-4o", "messages": []}),
    ("/v1/chat/completions", {"x-switchyard-fast-model": "gpt-4o"}, {"model": "gpt-4o", "messages": "hi"}),
    ("/v1/chat/completions", {"x-switchyard-fast-model": "gpt-4o"}, {"model": "gpt-4o", "messages": HI,
                                                                      "routing_preferences": "bad"}),
    ("/v1/chat/completions", {"content-type": "text/plain"}, {"model": "gpt-4o", "messages": HI}),
    ("/v1/chat/completions", {}, b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "\xff"}]}'),
    ("/v1/chat/completions", {}, b'{"model": "gpt-4o", "messages": [{"role": "user"}], "n": 1e999}'),
]

# What each of REQUESTS must give, whichever path serves it (fixed here, so that a bug shared by
# both paths fails too): status, x-switchyard-model, and the (path, model) the provider gets.
EXPECTED = [
    (200, "groq/llama-3.3-70b", [("/openai/v1/chat/completions", "llama-3.3-70b")]),
    (200, "openai/gpt-4o", [("/v1/chat/completions", "gpt-4o")]),
    (200, "openai/gpt-4o", [("/v1/chat/completions", "gpt-4o")]),
    (200, "local/qwen", [("/custom/api/chat/completions", "qwen")]),
    (200, "anthropic/claude-sonnet-4-5", [("/v1/messages?beta=true", "claude-sonnet-4-5")]),
    (200, "anthropic/claude-sonnet-4-5", [("/v1/messages", "claude-sonnet-4-5")]),
    (200, "anthropic/claude-sonnet-4-5", [("/v1/messages", "claude-sonnet-4-5")]),  # translated
    (200, "groq/llama-3.3-70b", [("/openai/v1/chat/completions", "llama-3.3-70b")]),  # translated
    (200, "openai/gpt-4o", [("/v1/chat/completions", "gpt-4o")]),  # the default model
    (404, None, []),
    (400, None, []),
    (400, None, []),
    (400, None, []),
    (415, None, []),
    (400, None, []),
    (400, None, []),
]
# Token usage in the metrics by model (input, output, cached input), from the stand-ins' fixed
# usage: OpenAI 11 prompt tokens (3 cached) and 7 completion tokens a request; Anthropic 12 input
# + 4 cache reads and 9 output, streamed (REQUESTS[5]) or not.
EXPECTED_TOKENS = {
    "openai/gpt-4o": (33, 21, 9),
    "groq/llama-3.3-70b": (22, 14, 6),
    "local/qwen": (11, 7, 3),
    "anthropic/claude-sonnet-4-5": (48, 27, 12),
}

# Headers a provider sees whose values must match exactly.
COMPARED_HEADERS = ("authorization", "x-api-key", "api-key", "anthropic-version", "anthropic-beta", "content-type")
# Access log fields that differ between any two runs.
VOLATILE = {"time", "request_id", "duration_ms", "upstream_ms", "traceparent"}
TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def send(gateway: Gateway, upstream, path: str, headers: dict, body) -> dict:
    """One request and everything observable about it."""
    upstream.clear()
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = httpx.post(gateway.url + path, content=content, timeout=10,
                          headers={"content-type": "application/json", **headers})
    seen = []
    for received in upstream.received:
        # The bytes may differ (the filter re-encodes the body; Envoy changes only `model`), the JSON may not.
        assert int(received.headers["content-length"]) == len(received.body)
        sent = {name: received.headers.get(name) for name in COMPARED_HEADERS}
        trace = TRACEPARENT.match(received.headers.get("traceparent", ""))
        seen.append({"path": received.path, "json": received.json, "headers": sent,
                     "trace": (trace.group(1) if headers.get("traceparent") else "new", trace.group(3)) if trace else None,
                     "internal": sorted(h for h in received.headers if h.lower().startswith(("x-switchyard", "x-envoy")))})
    # A translated answer is stamped with the time it was made: the one field that may differ.
    body = re.sub(r'"created":\s*\d+', '"created":0', response.text)
    return {"status": response.status_code, "body": body, "model": response.headers.get("x-switchyard-model"),
            "content-type": response.headers.get("content-type"), "upstream": seen}


def access_log(gateway: Gateway) -> list[dict]:
    lines = [json.loads(line) for line in gateway.output().splitlines() if line.startswith('{"attempts"')]
    return [{k: v for k, v in line.items() if k not in VOLATILE | _unread(line)} for line in lines
            if line["path"] != "/v1/models"]


def _unread(line: dict) -> set[str]:
    # An answer the gateway gives before it needs the body: how much of the body Envoy had read
    # by then is a race between the client's packets and the answer, with or without the fast path.
    return {"bytes_received"} if line["attempts"] == 0 else set()


def request_metrics(gateway: Gateway) -> dict:
    text = httpx.get(f"http://127.0.0.1:{gateway.metrics_port}/metrics").text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples
            if s.name == "switchyard_requests_total" or s.name.startswith("gen_ai_client_token_usage")}


def test_clients_providers_logs_and_metrics_see_the_same_with_and_without_the_fast_path(gateways, upstream):
    fast, slow = gateways
    forwarded = 0
    for path, headers, body in REQUESTS:
        through_filter = send(slow, upstream, path, headers, body)
        through_fast_path = send(fast, upstream, path, headers, body)
        assert through_fast_path == through_filter, (path, headers, body)
        status, model, calls = EXPECTED[REQUESTS.index((path, headers, body))]
        assert (through_filter["status"], through_filter["model"]) == (status, model), (path, body)
        assert [(u["path"], u["json"]["model"]) for u in through_filter["upstream"]] == calls, (path, body)
        forwarded += bool(through_filter["upstream"])
    assert forwarded == 9  # six fast; two translated and one to the default model; the rest are errors
    assert eventually(lambda: _token_usage(fast, 9)) == EXPECTED_TOKENS

    eventually(lambda: _assert_equal(access_log(fast), access_log(slow)))
    eventually(lambda: _assert_equal(request_metrics(fast), request_metrics(slow)))
    assert any(line["decision"] == "alias" for line in access_log(fast))
    assert any(name.startswith("gen_ai_client_token_usage") for name, _ in request_metrics(fast))


def _assert_equal(a, b):
    assert a == b


def _token_usage(gateway: Gateway, answers: int) -> dict[str, tuple]:
    """Token usage by model from /metrics, once it counts `answers` answers."""
    samples = request_metrics(gateway)
    counted = sum(v for (name, labels), v in samples.items()
                  if name == "gen_ai_client_token_usage_count" and ("gen_ai_token_type", "output") in labels)
    assert counted == answers, f"{counted} of {answers} answers counted so far"
    usage: dict[str, list] = {}
    for (name, labels), value in samples.items():
        if name == "gen_ai_client_token_usage_sum":
            labels = dict(labels)
            kinds = usage.setdefault(labels["gen_ai_request_model"], [0, 0, 0])
            kinds[["input", "output", "cached_input"].index(labels["gen_ai_token_type"])] += value
    return {model: tuple(kinds) for model, kinds in usage.items()}


def test_fast_requests_need_no_filter_and_the_rest_still_do(gateways, upstream):
    """With the filter worker frozen, literal and alias requests from the real SDKs are served by
    Envoy alone, streaming included; a request that needs the filter waits for it and fails."""
    fast, _ = gateways
    worker = fast.child_pid("filter.runtime.worker")
    client = openai.OpenAI(base_url=f"{fast.url}/v1", api_key="client-key", max_retries=0, timeout=10)
    claude = anthropic.Anthropic(base_url=fast.url, api_key="client-key", max_retries=0, timeout=10)
    os.kill(worker, signal.SIGSTOP)
    try:
        upstream.clear()
        answer = client.chat.completions.with_raw_response.create(model="fast-model", messages=HI)
        assert answer.headers["x-switchyard-model"] == "groq/llama-3.3-70b"
        assert answer.parse().choices[0].message.content
        stream = client.chat.completions.create(model="openai/gpt-4o", messages=HI, stream=True)
        assert "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        message = claude.messages.create(model="claude", max_tokens=20, messages=HI)
        assert message.content[0].text

        groq, openai_call, anthropic_call = upstream.received
        assert groq.path == "/openai/v1/chat/completions" and groq.json["model"] == "llama-3.3-70b"
        assert groq.headers["authorization"] == f"Bearer {GROQ_KEY}"
        assert openai_call.json["model"] == "gpt-4o" and openai_call.headers["authorization"] == f"Bearer {OPENAI_KEY}"
        assert anthropic_call.path == "/v1/messages" and anthropic_call.json["model"] == "claude-sonnet-4-5"
        assert anthropic_call.headers["x-api-key"] == ANTHROPIC_KEY and "authorization" not in anthropic_call.headers

        upstream.clear()
        started = time.monotonic()
        needs_filter = httpx.post(f"{fast.url}/v1/chat/completions", json={"model": "nope", "messages": HI}, timeout=10)
        assert needs_filter.status_code == 504 and time.monotonic() - started >= 1.0  # the filter's deadline
        assert upstream.received == []
    finally:
        os.kill(worker, signal.SIGCONT)


def test_a_key_given_twice_inside_a_message_waits_for_the_filter_which_sends_it_once(gateways, upstream):
    """Envoy would forward the bytes as sent, the filter re-encodes them: a provider that reads the
    first of two keys would see another request. Such a body is the filter's, even on a fast name."""
    fast, _ = gateways
    twice = b'{"model": "openai/gpt-4o", "messages": [{"role": "user", "role": "system", "content": "hi"}]}'
    once = b'{"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}]}'
    headers = {"content-type": "application/json"}
    worker = fast.child_pid("filter.runtime.worker")
    os.kill(worker, signal.SIGSTOP)
    try:
        upstream.clear()
        assert httpx.post(f"{fast.url}/v1/chat/completions", content=once, headers=headers, timeout=10).status_code == 200
        assert httpx.post(f"{fast.url}/v1/chat/completions", content=twice, headers=headers, timeout=10).status_code == 504
        assert len(upstream.received) == 1  # only the first reached the provider, without the filter
    finally:
        os.kill(worker, signal.SIGCONT)
    upstream.clear()
    eventually(lambda: _assert_equal(
        httpx.post(f"{fast.url}/v1/chat/completions", content=twice, headers=headers, timeout=10).status_code, 200))
    (received,) = upstream.received[-1:]
    assert received.body.count(b'"role"') == 1 and received.json["messages"][0]["role"] == "system"


def test_provider_keys_stay_out_of_envoys_config_and_the_key_files_are_private(gateways, upstream):
    fast, _ = gateways
    send(fast, upstream, *REQUESTS[0])
    dump = httpx.get(f"http://127.0.0.1:{fast.admin_port}/config_dump?include_eds").text
    for key in (OPENAI_KEY, GROQ_KEY, ANTHROPIC_KEY):
        assert key not in dump and key not in fast.output()
    key_files = sorted({Path(p) for p in re.findall(r'"path": "([^"]+_key\.yaml)"', dump)})
    assert len(key_files) == 3  # openai, groq, anthropic; local/qwen has no key
    for path in key_files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def _wait_until(check, what: str, process: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{what} did not come up:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.05)


def test_a_rendered_envoy_serves_the_fast_path_with_keys_read_from_files(upstream, tmp_path):
    """What a Kubernetes pod runs: `switchyard render` (keys from files named after their $ENV,
    never in the bootstrap), `switchyard workers`, and Envoy on the rendered bootstrap. Fast
    requests get the key from its file, client keys are checked by Envoy, and one /metrics
    scrape counts the requests of both paths."""
    config = {
        "listeners": {"egress_traffic": {"address": "127.0.0.1", "port": 0}},
        "llm_providers": [
            {"model": "openai/gpt-4o", "access_key": "$FP_OPENAI_KEY", "base_url": f"{upstream.url}/v1", "default": True},
            {"model": "anthropic/claude-sonnet-4-5", "access_key": "$FP_ANTHROPIC_KEY", "base_url": f"{upstream.url}/v1"},
        ],
        "model_aliases": {"fast-model": {"target": "openai/gpt-4o"}},
        "routing": {"engine": "none"},
        # The volume the filter and Envoy containers share for the workers' sockets.
        "gateway": {"admin_port": 0, "metrics_port": 0, "socket_dir": str(tmp_path / "sockets"),
                    "client_keys": [{"name": "team-a", "key": "$FP_CLIENT_KEY"}]},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "FP_OPENAI_KEY": OPENAI_KEY, "FP_ANTHROPIC_KEY": ANTHROPIC_KEY, "FP_CLIENT_KEY": "client-team-a"}
    # The Secret, mounted as files. Here the files differ from the filter's environment, so that
    # the provider shows who set the key: Envoy alone (the fast path) or the filter.
    keys = tmp_path / "provider-keys"
    keys.mkdir()
    (keys / "FP_OPENAI_KEY").write_text(OPENAI_KEY + "-file")
    (keys / "FP_ANTHROPIC_KEY").write_text(ANTHROPIC_KEY + "-file")
    rendered = subprocess.run([*SWITCHYARD, "render", "--keys-dir", str(keys), str(path)], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=60)
    assert rendered.returncode == 0, rendered.stderr
    for secret in (OPENAI_KEY, ANTHROPIC_KEY, "client-team-a"):
        assert secret not in rendered.stdout and secret not in rendered.stderr
    bootstrap = tmp_path / "envoy.yaml"
    bootstrap.write_text(rendered.stdout)

    workers_log, envoy_log, admin_file = tmp_path / "workers.log", tmp_path / "envoy.log", tmp_path / "admin.address"
    workers = None
    with open(envoy_log, "wb") as out:  # Envoy picks its ports (0) and says which
        envoy = subprocess.Popen([envoy_binary(), "-c", str(bootstrap), "--disable-hot-restart", "--log-level", "warn",
                                  "--admin-address-path", str(admin_file), "--base-id", str(os.getpid() % 60000)],
                                 stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_until(lambda: admin_file.exists() and admin_file.read_text().strip(), "Envoy's admin", envoy, envoy_log)
        admin = int(admin_file.read_text().strip().rsplit(":", 1)[1])
        listeners = httpx.get(f"http://127.0.0.1:{admin}/listeners?format=json", timeout=5).json()["listener_statuses"]
        port = listeners[0]["local_address"]["socket_address"]["port_value"]
        # The workers' /metrics reads Envoy's counters from its admin: the port Envoy chose.
        path.write_text(yaml.safe_dump({**config, "gateway": {**config["gateway"], "admin_port": admin}}))
        with open(workers_log, "wb") as out:
            workers = subprocess.Popen([*SWITCHYARD, "workers", str(path)], cwd=REPO, env=env, stdout=out,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        _wait_until(lambda: b"ready" in workers_log.read_bytes(), "the filter workers", workers, workers_log)
        metrics = int(re.search(rb"metrics on :(\d+)/metrics", workers_log.read_bytes()).group(1))

        def answers() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 401
            except httpx.HTTPError:
                return False
        _wait_until(answers, "Envoy", envoy, envoy_log)

        client = {"authorization": "Bearer client-team-a"}
        fast = send_through(port, upstream, {"model": "fast-model", "messages": HI}, client)
        assert fast["status"] == 200 and fast["model"] == "openai/gpt-4o"
        assert fast["upstream"].headers["authorization"] == f"Bearer {OPENAI_KEY}-file"  # Envoy, from its file
        claude = send_through(port, upstream, {"model": "claude-sonnet-4-5", "max_tokens": 9, "messages": HI},
                              {"x-api-key": "client-team-a"}, path="/v1/messages")
        assert claude["status"] == 200 and claude["upstream"].headers["x-api-key"] == f"{ANTHROPIC_KEY}-file"
        assert "authorization" not in claude["upstream"].headers
        filtered = send_through(port, upstream, {"messages": HI}, client)  # no model: the filter decides
        assert filtered["status"] == 200 and filtered["model"] == "openai/gpt-4o"
        assert filtered["upstream"].headers["authorization"] == f"Bearer {OPENAI_KEY}-file"  # the injector's, again
        # With the filter workers frozen, the fast path still serves.
        frozen = [int(pid) for pid in subprocess.run(["pgrep", "-P", str(workers.pid)], capture_output=True,
                                                      text=True).stdout.split()]
        assert frozen
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        try:
            alone = send_through(port, upstream, {"model": "openai/gpt-4o", "messages": HI}, client)
            assert alone["status"] == 200 and alone["upstream"].json["model"] == "gpt-4o"
        finally:
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)
        refused = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json={"model": "fast-model", "messages": HI},
                             headers={"authorization": "Bearer wrong"}, timeout=10)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"

        def counted():
            text = httpx.get(f"http://127.0.0.1:{metrics}/metrics", timeout=10).text
            samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                       for family in text_string_to_metric_families(text) for s in family.samples}
            served: dict[tuple[str, str], float] = {}
            for (name, labels), value in samples.items():
                labels = dict(labels)
                if name == "switchyard_requests_total" and labels["client"] == "team-a":
                    key = (labels["decision"], labels["status_class"])
                    served[key] = served.get(key, 0) + value
            assert served == {("alias", "2xx"): 1, ("literal", "2xx"): 2, ("default", "2xx"): 1}
            assert samples[("switchyard_envoy_stats_up", ())] == 1
        eventually(counted)
        for secret in (OPENAI_KEY, ANTHROPIC_KEY, "client-team-a"):
            assert secret not in envoy_log.read_text() and secret not in workers_log.read_text()
    finally:
        for process in (envoy, workers):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=20)


def send_through(port: int, upstream, body: dict, headers: dict, path: str = "/v1/chat/completions") -> dict:
    upstream.clear()
    response = httpx.post(f"http://127.0.0.1:{port}{path}", json=body, headers=headers, timeout=10)
    received = upstream.received[-1] if upstream.received else None
    return {"status": response.status_code, "model": response.headers.get("x-switchyard-model"), "upstream": received}


def test_a_reload_changes_fast_aliases_and_keys_at_once(upstream, tmp_path):
    config = _config(upstream, True)
    with Gateway(config, tmp_path, env={"FP_OPENAI_KEY": OPENAI_KEY}) as gateway:
        assert send(gateway, upstream, *REQUESTS[0])["model"] == "groq/llama-3.3-70b"
        config["llm_providers"][1]["access_key"] = "gsk-rotated-key"
        config["model_aliases"]["fast-model"] = {"target": "openai/gpt-4o"}
        gateway.path.write_text(yaml.safe_dump({**gateway.config, "llm_providers": config["llm_providers"],
                                                "model_aliases": config["model_aliases"]}))
        gateway.process.send_signal(signal.SIGHUP)
        eventually(lambda: _assert_equal(gateway.output().count("switchyard: configuration reloaded"), 1), timeout=20)

        seen = send(gateway, upstream, *REQUESTS[0])
        assert seen["model"] == "openai/gpt-4o" and seen["upstream"][0]["json"]["model"] == "gpt-4o"
        groq = send(gateway, upstream, "/v1/chat/completions", {}, {"model": "groq/llama-3.3-70b", "messages": HI})
        assert groq["upstream"][0]["headers"]["authorization"] == "Bearer gsk-rotated-key"


def test_a_chunked_body_reaches_the_provider_with_its_length(gateways, upstream):
    fast, _ = gateways
    upstream.clear()
    body = json.dumps({"model": "fast-model", "messages": HI}).encode()
    response = httpx.post(f"{fast.url}/v1/chat/completions", content=iter([body[:10], body[10:]]), timeout=10,
                          headers={"content-type": "application/json"})  # an iterator: sent chunked
    assert response.status_code == 200 and response.headers["x-switchyard-model"] == "groq/llama-3.3-70b"
    [received] = upstream.received
    assert received.json["model"] == "llama-3.3-70b"
    assert int(received.headers["content-length"]) == len(received.body)


def _without_a_length(behaviour):
    """The provider's JSON answers sent chunked (no content-length), in three pieces cut inside the
    `usage` object, so that Envoy cannot know the answer's size before it has all of it."""
    def reply(request):
        answer = behaviour(request)
        if answer.chunks is not None or answer.content_type != "application/json":
            return answer
        body = answer.body
        at = body.index(b'"usage"')
        cuts = [0, at + 3, body.index(b"_tokens", at) + 4, len(body)]
        return dataclasses.replace(answer, body=b"", chunks=[body[a:b] for a, b in zip(cuts, cuts[1:])])
    return reply


def _token_sums(gateway: Gateway, model: str) -> tuple[float, float, float]:
    samples = request_metrics(gateway)
    return tuple(sum(v for (name, labels), v in samples.items() if name == "gen_ai_client_token_usage_sum"
                     and ("gen_ai_request_model", model) in labels and ("gen_ai_token_type", kind) in labels)
                 for kind in ("input", "output", "cached_input"))


def test_a_json_answer_without_a_length_is_delivered_whole_and_its_tokens_counted(gateways, fresh):
    """A provider that streams its JSON answer chunked: the client gets it whole, and its token
    counts reach the metrics, on the fast path and through the filter alike."""
    fresh.behaviour = _without_a_length(fresh.behaviour)
    for gateway in gateways:
        gpt, claude = _token_sums(gateway, "openai/gpt-4o"), _token_sums(gateway, "anthropic/claude-sonnet-4-5")
        chat = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="client", max_retries=0)
        answer = chat.chat.completions.create(model="openai/gpt-4o", messages=HI)
        assert answer.choices[0].message.content == "openai stand-in answering as gpt-4o"
        assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (11, 7)
        messages = anthropic.Anthropic(base_url=gateway.url, api_key="client", max_retries=0)
        reply = messages.messages.create(model="claude", max_tokens=50, messages=HI)
        assert reply.content[0].text == "anthropic stand-in answering as claude-sonnet-4-5"
        assert (reply.usage.input_tokens, reply.usage.output_tokens) == (12, 9)

        def counted():
            assert _token_sums(gateway, "openai/gpt-4o") == (gpt[0] + 11, gpt[1] + 7, gpt[2] + 3)
            # Anthropic's input leaves out cache reads: every prompt token counts as input.
            assert _token_sums(gateway, "anthropic/claude-sonnet-4-5") == (claude[0] + 16, claude[1] + 9, claude[2] + 4)
        eventually(counted)
    assert len(fresh.received) == 4 and all(r.path.endswith(("/chat/completions", "/messages")) for r in fresh.received)
