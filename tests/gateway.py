"""Running the real gateway (`switchyard up`: Envoy + filter workers) for a test, and stopping it."""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
SWITCHYARD = [sys.executable, "-m", "filter.runtime.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_block(count: int) -> int:
    """A first port such that `count` consecutive ports are free (filter workers use a block)."""
    for _ in range(50):
        first = free_port()
        ok = True
        for port in range(first, first + count):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return first
    raise RuntimeError("no free port block")


# `make test` runs the end-to-end suite a second time with this set: every gateway that does not
# choose itself (and has no client keys, which the fast path refuses) then has the fast path on.
FAST_PATH_RUN = os.environ.get("SWITCHYARD_TEST_FAST_PATH") == "1"


class Gateway:
    """`switchyard up` on a config dict, with free ports; output captured to a log file."""

    def __init__(self, config: dict, tmp: Path, env: dict[str, str] | None = None, workers: int = 1,
                 open_files: tuple[int, int] | None = None):
        self.port = free_port()
        self.admin_port = free_port()
        config = dict(config)
        config.setdefault("listeners", {"egress_traffic": {"address": "127.0.0.1", "port": self.port, "timeout": "30s"}})
        gateway = dict(config.get("gateway") or {})
        gateway.setdefault("admin_port", self.admin_port)
        gateway.setdefault("metrics_port", free_port())
        gateway.setdefault("workers", workers)
        if FAST_PATH_RUN and "client_keys" not in gateway:
            gateway.setdefault("fast_path", True)
        config["gateway"] = gateway
        self.config = config
        self.path = tmp / f"switchyard-{self.port}.yaml"
        self.path.write_text(yaml.safe_dump(config))
        self.log_path = tmp / f"switchyard-{self.port}.log"
        self.env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
        self.process: subprocess.Popen | None = None
        self.open_files = open_files  # (soft, hard) RLIMIT_NOFILE of the gateway, else inherited

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
            if b"switchyard ready" in self.log_path.read_bytes():
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


def eventually(check, timeout: float = 5.0):
    """Run `check` until it stops raising AssertionError (its value), or re-raise after `timeout`:
    for what Envoy flushes in batches (access logs, metrics)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
