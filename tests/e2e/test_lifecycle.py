"""`switchyard up`: ready only when the listener answers, stops cleanly, and never half-runs."""

from __future__ import annotations

import os
import signal
import time

import httpx

from tests.gateway import Gateway

CONFIG = {"llm_providers": [{"model": "echo/e", "default": True}], "routing": {"engine": "none"}}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        return "Z" not in open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False


def _wait_exit(gateway: Gateway, timeout: float = 20) -> int:
    deadline = time.monotonic() + timeout
    while gateway.process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gateway.process.poll() is not None, "supervisor did not exit"
    return gateway.process.returncode


def test_ready_means_the_listener_answers_and_sigterm_stops_everything(tmp_path):
    gateway = Gateway(CONFIG, tmp_path, workers=2).start()
    try:
        assert httpx.get(f"{gateway.url}/v1/models").status_code == 200  # no wait needed after "ready"
        children = gateway.children()
        assert len(children) == 3 and gateway.child_pid("envoy") in children
        gateway.process.send_signal(signal.SIGTERM)
        assert _wait_exit(gateway) == 0
        assert not any(_alive(pid) for pid in children)
    finally:
        gateway.stop()


def test_sigint_stops_everything_like_ctrl_c(tmp_path):
    gateway = Gateway(CONFIG, tmp_path).start()
    try:
        children = gateway.children()
        gateway.process.send_signal(signal.SIGINT)
        assert _wait_exit(gateway) == 0
        assert not any(_alive(pid) for pid in children)
    finally:
        gateway.stop()


def test_envoy_that_keeps_dying_stops_everything_with_the_reason(tmp_path):
    """One death is restarted (tests/e2e/test_hardening.py); a crash loop is not hidden."""
    gateway = Gateway(CONFIG, tmp_path).start()
    try:
        worker = gateway.child_pid("filter.runtime.worker")
        for kills in range(1, 10):
            envoy = _wait_child(gateway, "envoy")
            if envoy is None:
                break
            os.kill(envoy, signal.SIGKILL)
            deadline = time.monotonic() + 20
            while gateway.process.poll() is None and gateway.output().count("Envoy restarted") < kills \
                    and time.monotonic() < deadline:
                time.sleep(0.05)
            if gateway.process.poll() is not None:
                break
        assert _wait_exit(gateway) != 0
        assert "Envoy keeps dying (killed by SIGKILL); stopping" in gateway.output()
        assert gateway.output().count("Envoy restarted") == 5  # MAX_RESTARTS_PER_MINUTE
        assert not _alive(worker)
    finally:
        gateway.stop()


def _wait_child(gateway: Gateway, program: str, timeout: float = 20) -> int | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and gateway.process.poll() is None:
        try:
            return gateway.child_pid(program)
        except LookupError:
            time.sleep(0.05)
    return None


def test_a_crashed_worker_is_restarted_and_the_gateway_keeps_serving(tmp_path):
    gateway = Gateway(CONFIG, tmp_path, workers=2).start()
    try:
        worker = gateway.child_pid("filter.runtime.worker")
        os.kill(worker, signal.SIGKILL)
        # Right away, while the worker is dead: the other one serves every request.
        answers = [httpx.post(f"{gateway.url}/v1/chat/completions",
                              json={"messages": [{"role": "user", "content": "hi"}]}).status_code for _ in range(20)]
        assert answers == [200] * 20
        deadline = time.monotonic() + 20
        while "restarting" not in gateway.output() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "restarting" in gateway.output()
        deadline = time.monotonic() + 20
        while len([c for c in gateway.children().values() if "filter.runtime.worker" in c]) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert worker not in gateway.children()
        assert len([c for c in gateway.children().values() if "filter.runtime.worker" in c]) == 2
        assert gateway.process.poll() is None
    finally:
        gateway.stop()


def test_ctrl_c_to_the_whole_process_group_still_exits_cleanly(tmp_path):
    """A terminal sends SIGINT to every process of the foreground group."""
    gateway = Gateway(CONFIG, tmp_path).start()
    try:
        children = gateway.children()
        os.killpg(gateway.process.pid, signal.SIGINT)
        assert _wait_exit(gateway) == 0, gateway.output()
        assert not any(_alive(pid) for pid in children)
    finally:
        gateway.stop()


def test_a_killed_supervisor_leaves_no_orphans(tmp_path):
    gateway = Gateway(CONFIG, tmp_path).start()
    children = gateway.children()
    try:
        gateway.process.kill()
        gateway.process.wait(timeout=10)
        deadline = time.monotonic() + 15
        while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in children)
    finally:
        for pid in children:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        gateway.stop()
