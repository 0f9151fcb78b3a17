"""Hot reload (SIGHUP or a changed file) without dropping in-flight streams, and SIGTERM draining.

A saved file reloads by itself (its modification time changes), so the SIGHUP tests put the old
modification time back after writing: only the signal can then make the gateway read the file.
Streams in flight are held open by the stand-in provider until the test releases them.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import httpx
import yaml

from tests.gateway import Gateway, eventually
from tests.standins import openai_reply

WORDS = "one two three four five six seven eight"


def wait_for(gateway: Gateway, text: str, count: int = 1, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while gateway.output().count(text) < count:
        assert time.monotonic() < deadline, f"{text!r} not seen:\n{gateway.output()[-3000:]}"
        time.sleep(0.05)


class HeldStream:
    """The provider's behaviour: the first request's stream sends its first words, then waits for
    `release`; later requests are answered at once."""

    def __init__(self):
        self.replies = []

    def __call__(self, request):
        reply = openai_reply(request, text=WORDS)
        if not self.replies:
            reply.hold_after = 3  # the role chunk and two words
            self.replies.append(reply)
        return reply

    def wait_sent(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.replies:
            assert time.monotonic() < deadline, "the stream never reached the provider"
            time.sleep(0.02)
        assert self.replies[0].sent.wait(timeout), "the provider never sent the first words"

    def release(self) -> None:
        for reply in self.replies:
            reply.release.set()


def stream_in_background(gateway: Gateway, model: str) -> dict:
    result: dict = {}

    def run():
        with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", timeout=60,
                          json={"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": True}) as r:
            result["status"] = r.status_code
            result["model"] = r.headers.get("x-switchyard-model")
            result["body"] = r.read().decode()

    thread = threading.Thread(target=run)
    thread.start()
    result["thread"] = thread
    return result


def streamed_text(body: str) -> str:
    text = ""
    for line in body.splitlines():
        if line.startswith("data: {"):
            for choice in json.loads(line[6:])["choices"]:
                text += choice["delta"].get("content") or ""
    return text


def rewrite_keeping_mtime(gateway: Gateway, config: dict) -> None:
    """Write a new configuration but leave the file's modification time as it was."""
    before = os.stat(gateway.path)
    gateway.path.write_text(yaml.safe_dump(config))
    os.utime(gateway.path, ns=(before.st_atime_ns, before.st_mtime_ns))


def rewrite_newer(gateway: Gateway, config: dict) -> None:
    """Write a new configuration with a modification time visibly later than the old one."""
    before = os.stat(gateway.path).st_mtime
    gateway.path.write_text(yaml.safe_dump(config))
    os.utime(gateway.path, (before + 5, before + 5))


def ask(gateway: Gateway, model: str, key: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.post(f"{gateway.url}/v1/chat/completions", headers=headers, timeout=30,
                      json={"model": model, "messages": [{"role": "user", "content": "x"}]})


def test_sighup_reloads_providers_and_aliases_without_dropping_a_stream(upstream, fresh, tmp_path):
    config = {
        "llm_providers": [{"model": "openai/gpt-4o", "access_key": "k", "base_url": f"{upstream.url}/v1", "default": True}],
        "model_aliases": {"fast": {"target": "gpt-4o"}},
        "routing": {"engine": "none"},
    }
    with Gateway(config, tmp_path) as gateway:
        held = HeldStream()
        fresh.behaviour = held
        in_flight = stream_in_background(gateway, "fast")
        try:
            held.wait_sent()  # the stream is under way
            config["llm_providers"].append({"model": "groq/llama-3.3", "access_key": "k2",
                                            "base_url": f"{upstream.url}/openai/v1"})
            config["model_aliases"]["fast"] = {"target": "groq/llama-3.3"}
            rewrite_keeping_mtime(gateway, {**gateway.config, **config})
            gateway.process.send_signal(signal.SIGHUP)
            wait_for(gateway, "configuration reloaded")

            answer = ask(gateway, "fast")
            assert answer.status_code == 200
            assert answer.headers["x-switchyard-model"] == "groq/llama-3.3"
            assert fresh.received[-1].path == "/openai/v1/chat/completions"
        finally:
            held.release()
        in_flight["thread"].join(timeout=30)
        assert in_flight["status"] == 200 and in_flight["model"] == "openai/gpt-4o"
        assert streamed_text(in_flight["body"]) == WORDS
        assert in_flight["body"].rstrip().endswith("data: [DONE]")


def test_sighup_reloads_client_keys_and_routing_settings(upstream, fresh, tmp_path):
    config = {
        "llm_providers": [{"model": "openai/gpt-4o", "access_key": "k", "base_url": f"{upstream.url}/v1", "default": True}],
        "routing": {"engine": "none", "unknown_model": "reject"},
        "gateway": {"client_keys": ["old-client-key"]},
    }
    with Gateway(config, tmp_path) as gateway:
        assert ask(gateway, "gpt-4o", "old-client-key").status_code == 200
        assert ask(gateway, "gpt-4o", "new-client-key").status_code == 401
        assert ask(gateway, "claude-opus-4-1", "old-client-key").status_code == 404

        updated = {**gateway.config, "routing": {"engine": "none", "unknown_model": "default"},
                   "gateway": {**gateway.config["gateway"], "client_keys": ["new-client-key"]}}
        rewrite_keeping_mtime(gateway, updated)
        gateway.process.send_signal(signal.SIGHUP)
        wait_for(gateway, "configuration reloaded")

        assert ask(gateway, "gpt-4o", "old-client-key").status_code == 401
        assert ask(gateway, "gpt-4o", "new-client-key").status_code == 200
        unknown = ask(gateway, "claude-opus-4-1", "new-client-key")  # unknown_model: default now
        assert unknown.status_code == 200 and unknown.headers["x-switchyard-model"] == "openai/gpt-4o"
        assert "old-client-key" not in json.dumps([r.headers for r in fresh.received])


def spend(gateway: Gateway, client: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{gateway.metrics_port}/metrics").text
    return sum(float(line.rpartition(" ")[2]) for line in text.splitlines()
               if line.startswith("switchyard_cost_usd_total{") and f'client="{client}"' in line)


def test_a_reload_that_adds_a_limit_enforces_it_and_the_spend_is_counted_once(upstream, fresh, tmp_path):
    """With no limit anywhere the governance has nothing to enforce (Envoy leaves its filter out
    under `switchyard up`, the request metrics count the cost); a reload that adds one enforces it
    from then on, without a restart, and each answer's cost is still counted exactly once."""
    prices = {"input": 1000.0, "output": 2000.0, "cached_input": 100.0}
    config = {
        "llm_providers": [{"model": "openai/gpt-4o", "access_key": "k", "base_url": f"{upstream.url}/v1",
                           "default": True, "prices": prices}],
        "routing": {"engine": "none"},
        "gateway": {"client_keys": [{"name": "team", "key": "sk-client-team-reload"}]},
    }
    one = ((11 - 3) * prices["input"] + 3 * prices["cached_input"] + 7 * prices["output"]) / 1e6  # the stand-in's usage
    with Gateway(config, tmp_path) as gateway:
        for _ in range(3):
            assert ask(gateway, "gpt-4o", "sk-client-team-reload").status_code == 200
        eventually(lambda: _close(spend(gateway, "team"), 3 * one))

        limited = {**gateway.config, "gateway": {**gateway.config["gateway"], "limits": {"default": {"rpm": 2}}}}
        rewrite_keeping_mtime(gateway, limited)
        gateway.process.send_signal(signal.SIGHUP)
        wait_for(gateway, "configuration reloaded")

        def refused() -> None:
            assert ask(gateway, "gpt-4o", "sk-client-team-reload").status_code == 429
        eventually(refused)
        admitted = sum(1 for r in fresh.received if r.path.endswith("/chat/completions"))
        eventually(lambda: _close(spend(gateway, "team"), admitted * one))


def _close(value: float, expected: float) -> None:
    assert abs(value - expected) < 1e-9, (value, expected)


def test_an_invalid_new_config_is_rejected_and_the_old_one_keeps_serving(upstream, fresh, tmp_path):
    config = {
        "llm_providers": [{"model": "openai/gpt-4o", "access_key": "k", "base_url": f"{upstream.url}/v1", "default": True}],
        "routing": {"engine": "none"},
    }
    with Gateway(config, tmp_path) as gateway:
        broken = {**gateway.config, "model_aliases": {"fast": {"target": "nowhere"}}}
        rewrite_newer(gateway, broken)  # a changed file reloads without a signal
        wait_for(gateway, "reload rejected")
        assert "model_aliases.fast.target" in gateway.output()
        answer = ask(gateway, "gpt-4o")
        assert answer.status_code == 200
        assert gateway.process.poll() is None


def test_a_changed_file_reloads_routes_for_new_providers(upstream, fresh, tmp_path):
    config = {
        "llm_providers": [{"model": "openai/gpt-4o", "access_key": "k", "base_url": f"{upstream.url}/v1", "default": True}],
        "routing": {"engine": "none"},
    }
    with Gateway(config, tmp_path) as gateway:
        updated = {**gateway.config, "llm_providers": config["llm_providers"] + [
            {"model": "local/coder", "base_url": f"{upstream.url}/local"}]}
        rewrite_newer(gateway, updated)
        wait_for(gateway, "configuration reloaded")
        answer = ask(gateway, "local/coder")
        assert answer.status_code == 200 and answer.headers["x-switchyard-model"] == "local/coder"
        assert fresh.received[-1].path == "/local/chat/completions"
        assert [m["id"] for m in httpx.get(f"{gateway.url}/v1/models").json()["data"]] == ["openai/gpt-4o", "local/coder"]


def test_sigterm_drains_in_flight_requests_and_refuses_new_ones(upstream, fresh, tmp_path):
    config = {
        "llm_providers": [{"model": "openai/gpt-4o", "access_key": "k", "base_url": f"{upstream.url}/v1", "default": True}],
        "routing": {"engine": "none"},
    }
    gateway = Gateway(config, tmp_path).start()
    held = HeldStream()
    try:
        fresh.behaviour = held
        in_flight = stream_in_background(gateway, "gpt-4o")
        held.wait_sent()
        gateway.process.send_signal(signal.SIGTERM)

        def refused():
            try:
                httpx.post(f"{gateway.url}/v1/chat/completions", timeout=5,
                           json={"model": "gpt-4o", "messages": [{"role": "user", "content": "late"}]})
            except httpx.TransportError:
                return
            raise AssertionError("a new request was accepted while draining")

        eventually(refused, timeout=10)
        assert in_flight["thread"].is_alive() and gateway.process.poll() is None  # still draining
        held.release()
        in_flight["thread"].join(timeout=30)
        assert in_flight["status"] == 200
        assert streamed_text(in_flight["body"]) == WORDS
        assert gateway.process.wait(timeout=30) == 0
    finally:
        held.release()
        gateway.stop()
