"""A real Prometheus (Debian's `/usr/bin/prometheus`) scraping what a test names, on loopback.

It listens on 127.0.0.1 port 0; the port the kernel gave it is read from its own listening
socket (`/proc/<pid>/fd` and `/proc/net/tcp`), so the test binds nothing for it. Data lives in
the test's directory; the process is stopped when the test leaves the `with` block. Readiness is
awaited by asking it (`/-/ready`), never by sleeping.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx

from tests.redis_server import stop_process

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


def _listening_port(pid: int) -> int | None:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
            return int(fields[1].split(":")[1], 16)
    return None


class PrometheusServer:
    def __init__(self, directory: Path, targets: list[str], *, scrape_interval: str = "1s"):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.targets = targets
        self.scrape_interval = scrape_interval
        self.process: subprocess.Popen | None = None
        self.url = ""

    def __enter__(self) -> "PrometheusServer":
        config = self.directory / "prometheus.yml"
        config.write_text(
            f"global: {{scrape_interval: {self.scrape_interval}, evaluation_interval: {self.scrape_interval}}}\n"
            "scrape_configs:\n"
            f"  - {{job_name: switchyard, static_configs: [{{targets: {self.targets!r}}}]}}\n")
        log = open(self.directory / "prometheus.log", "wb")
        self.process = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={self.directory / 'data'}",
             "--web.listen-address=127.0.0.1:0", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited: {(self.directory / 'prometheus.log').read_text()[-2000:]}")
            port = _listening_port(self.process.pid)
            if port:
                self.url = f"http://127.0.0.1:{port}"
                try:
                    if httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
            time.sleep(0.05)
        self.__exit__(None, None, None)
        raise RuntimeError("prometheus did not become ready")

    def __exit__(self, *exc) -> None:
        stop_process(self.process)
        self.process = None

    def query(self, expr: str) -> list[dict]:
        """An instant query's result (a list of series with `metric` and `value`); raises on a bad query."""
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10).json()
        if answer.get("status") != "success":
            raise AssertionError(f"{expr}: {answer.get('errorType')}: {answer.get('error')}")
        return answer["data"]["result"]
