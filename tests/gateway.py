"""Running the real gateway (`switchyard up`: Envoy + filter workers) for a test, and stopping it."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

REPO = Path(__file__).resolve().parent.parent
SWITCHYARD = [sys.executable, "-m", "filter.runtime.cli"]


# "switchyard ready: http://127.0.0.1:PORT (N filter worker(s), admin on 127.0.0.1:PORT, metrics on :PORT/metrics)"
READY = re.compile(r"switchyard ready: http://[^ ]+:(\d+) .*admin on [^ ]+:(\d+), metrics on :(\d+)/metrics")
_SERIAL = itertools.count()

# `make test` runs the end-to-end suite twice: as configured (the fast path is on by default),
# then with this set to 0: every gateway that does not choose itself has the fast path off, so
# every request goes through the filter.
FILTER_ONLY_RUN = os.environ.get("SWITCHYARD_TEST_FAST_PATH") == "0"


class Gateway:
    """`switchyard up` on a config dict; output captured to a log file. Envoy's listener and admin
    and the metrics endpoint get ports the system chooses (port 0, unless the test sets one), read
    back from the ready line: no port is picked here and handed on. The filter workers listen on
    Unix sockets in the gateway's private runtime directory."""

    def __init__(self, config: dict, tmp: Path, env: dict[str, str] | None = None, workers: int = 1,
                 open_files: tuple[int, int] | None = None):
        config = dict(config)
        config.setdefault("listeners", {"egress_traffic": {"address": "127.0.0.1", "port": 0, "timeout": "30s"}})
        gateway = dict(config.get("gateway") or {})
        gateway.setdefault("admin_port", 0)
        gateway.setdefault("metrics_port", 0)
        gateway.setdefault("workers", workers)
        if FILTER_ONLY_RUN:
            gateway.setdefault("fast_path", False)
        config["gateway"] = gateway
        self.config = config
        name = f"switchyard-{os.getpid()}-{next(_SERIAL)}"
        self.path = tmp / f"{name}.yaml"
        self.path.write_text(yaml.safe_dump(config))
        self.log_path = tmp / f"{name}.log"
        self.env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
        self.process: subprocess.Popen | None = None
        self.open_files = open_files  # (soft, hard) RLIMIT_NOFILE of the gateway, else inherited
        # Known once the gateway is ready (its ready line names them).
        self.port: int | None = None
        self.admin_port: int | None = None
        self.metrics_port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> "Gateway":
        self._log = open(self.log_path, "wb")
        limits = self.open_files
        self.process = subprocess.Popen(
            [*SWITCHYARD, "up", str(self.path)], cwd=REPO, env=self.env,
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=(lambda: resource.setrlimit(resource.RLIMIT_NOFILE, limits)) if limits else None,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready = READY.search(self.log_path.read_text(errors="replace"))
            if ready:
                self.port, self.admin_port, self.metrics_port = (int(g) for g in ready.groups())
                return self
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited early:\n{self.output()}")
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"gateway not ready in {timeout}s:\n{self.output()}")

    def children(self) -> dict[int, str]:
        """pid → command line of the supervisor's child processes (Envoy and the workers)."""
        assert self.process is not None
        found = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == self.process.pid:
                    cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                    found[int(stat.parent.name)] = cmdline
            except (OSError, IndexError, ValueError):
                continue
        return found

    def child_pid(self, program: str) -> int:
        """The child whose executable or module is `program` ("envoy" or "filter.runtime.worker")."""
        for pid, cmd in self.children().items():
            argv = cmd.split()
            if Path(argv[0]).name == program or argv[1:3] == ["-m", program]:
                return pid
        raise LookupError(program)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def __enter__(self) -> "Gateway":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@contextlib.contextmanager
def refused_port():
    """A loopback port where connections are refused, for a provider or router that is down: the
    socket is bound (so nobody else gets the port) and never listens, for as long as the test runs."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def start_envoy(bootstrap: dict, tmp: Path) -> tuple[subprocess.Popen, int, int]:
    """Envoy alone on a bootstrap whose listener and admin ports are 0; (process, listener port,
    admin port) once both are bound, read back from Envoy itself."""
    from filter.runtime.supervisor import envoy_binary

    config, address = tmp / f"envoy-{next(_SERIAL)}.yaml", tmp / f"admin-{next(_SERIAL)}.address"
    config.write_text(yaml.safe_dump(bootstrap))
    process = subprocess.Popen([envoy_binary(), "-c", str(config), "--disable-hot-restart", "--log-level", "error",
                                "--admin-address-path", str(address)])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        text = address.read_text().strip() if address.exists() else ""
        if text:
            admin = int(text.rsplit(":", 1)[1])
            try:
                listeners = httpx.get(f"http://127.0.0.1:{admin}/listeners?format=json").json()["listener_statuses"]
                port = listeners[0]["local_address"]["socket_address"]["port_value"]
                if port:
                    return process, int(port), admin
            except (httpx.HTTPError, KeyError, IndexError, ValueError):
                pass
        time.sleep(0.05)
    process.kill()
    process.wait()
    raise RuntimeError("envoy did not start")


def eventually(check, timeout: float = 5.0, exceptions: tuple[type[BaseException], ...] = (AssertionError,)):
    """Run `check` until it stops raising AssertionError (or one of `exceptions`) and return its
    value, or re-raise after `timeout`: for what Envoy flushes in batches (access logs, metrics)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except exceptions:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
