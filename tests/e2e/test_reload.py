"""Hot reload (SIGHUP or a changed file) without dropping in-flight streams, and SIGTERM draining."""

from __future__ import annotations

import signal
import threading
import time

import httpx
import yaml

from tests.gateway import Gateway
from tests.standins import openai_reply


def wait_for(gateway: Gateway, text: str, count: int = 1, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while gateway.output().count(text) < count:
        assert time.monotonic() < deadline, f"{text!r} not seen:\n{gateway.output()[-3000:]}"
        time.sleep(0.05)


def slow_stream(request):
    reply = openai_reply(request, text="one two three four five six seven eight")
    reply.chunk_delay_s = 0.25
    return reply


def stream_in_background(gateway: Gateway, model: str) -> dict:
    result: dict = {}

    def run():
        with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", timeout=30,
                          json={"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": True}) as r:
            result["status"] = r.status_code
            result["model"] = r.headers.get("x-switchyard-model")
            result["body"] = r.read().decode()

    thread = threading.Thread(target=run)
    thread.start()
    result["thread"] = thread
    return result


def streamed_text(body: str) -> str:
    import json

    text = ""
    for line in body.splitlines():
        if line.startswith("data: {"):
            for choice in json.loads(line[6:])["choices"]:
                text += choice["delta"].get("content") or ""
    return text


def test_sighup_reloads_providers_and_aliases_without_dropping_a_stream(upstream, fresh, tmp_path):
    config = {
        "llm_providers": [{"model": "openai/gpt-4o", "access_key": "k", "base_url": f"{upstream.url}/v1", "default": True}],
        "model_aliases": {"fast": {"target": "gpt-4o"}},
        "routing": {"engine": "none"},
    }
    with Gateway(config, tmp_path) as gateway:
        fresh.behaviour = slow_stream
        in_flight = stream_in_background(gateway, "fast")
        time.sleep(0.5)  # the stream is under way

        config["llm_providers"].append({"model": "groq/llama-3.3", "access_key": "k2", "base_url": f"{upstream.url}/openai/v1"})
        config["model_aliases"]["fast"] = {"target": "groq/llama-3.3"}
        gateway.path.write_text(yaml.safe_dump({**gateway.config, **config}))
        gateway.process.send_signal(signal.SIGHUP)
        wait_for(gateway, "configuration reloaded")

        answer = httpx.post(f"{gateway.url}/v1/chat/completions",
                            json={"model": "fast", "messages": [{"role": "user", "content": "x"}]}, timeout=30)
        assert answer.status_code == 200
        assert answer.headers["x-switchyard-model"] == "groq/llama-3.3"
        assert fresh.received[-1].path == "/openai/v1/chat/completions"

        in_flight["thread"].join(timeout=30)
        assert in_flight["status"] == 200 and in_flight["model"] == "openai/gpt-4o"
        assert streamed_text(in_flight["body"]) == "one two three four five six seven eight"
        assert in_flight["body"].rstrip().endswith("data: [DONE]")


def test_an_invalid_new_config_is_rejected_and_the_old_one_keeps_serving(upstream, fresh, tmp_path):
    config = {
        "llm_providers": [{"model": "openai/gpt-4o", "access_key": "k", "base_url": f"{upstream.url}/v1", "default": True}],
        "routing": {"engine": "none"},
    }
    with Gateway(config, tmp_path) as gateway:
        broken = {**gateway.config, "model_aliases": {"fast": {"target": "nowhere"}}}
        time.sleep(1.1)  # a visibly newer modification time
        gateway.path.write_text(yaml.safe_dump(broken))  # a changed file reloads without a signal
        wait_for(gateway, "reload rejected")
        assert "model_aliases.fast.target" in gateway.output()
        answer = httpx.post(f"{gateway.url}/v1/chat/completions",
                            json={"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]})
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
        time.sleep(1.1)
        gateway.path.write_text(yaml.safe_dump(updated))
        wait_for(gateway, "configuration reloaded")
        answer = httpx.post(f"{gateway.url}/v1/chat/completions",
                            json={"model": "local/coder", "messages": [{"role": "user", "content": "x"}]})
        assert answer.status_code == 200 and answer.headers["x-switchyard-model"] == "local/coder"
        assert fresh.received[-1].path == "/local/chat/completions"
        assert [m["id"] for m in httpx.get(f"{gateway.url}/v1/models").json()["data"]] == ["openai/gpt-4o", "local/coder"]


def test_sigterm_drains_in_flight_requests_and_refuses_new_ones(upstream, fresh, tmp_path):
    config = {
        "llm_providers": [{"model": "openai/gpt-4o", "access_key": "k", "base_url": f"{upstream.url}/v1", "default": True}],
        "routing": {"engine": "none"},
    }
    gateway = Gateway(config, tmp_path).start()
    try:
        fresh.behaviour = slow_stream
        in_flight = stream_in_background(gateway, "gpt-4o")
        time.sleep(0.5)
        gateway.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        refused = False
        try:
            httpx.post(f"{gateway.url}/v1/chat/completions", timeout=5,
                       json={"model": "gpt-4o", "messages": [{"role": "user", "content": "late"}]})
        except httpx.TransportError:
            refused = True
        assert refused, "a new request was accepted while draining"
        in_flight["thread"].join(timeout=30)
        assert in_flight["status"] == 200
        assert streamed_text(in_flight["body"]) == "one two three four five six seven eight"
        assert gateway.process.wait(timeout=30) == 0
    finally:
        gateway.stop()
