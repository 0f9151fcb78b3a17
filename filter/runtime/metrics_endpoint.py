"""The merged /metrics endpoint: the supervisor's side of the workers' multi-process metrics.

Each worker writes its samples to files in PROMETHEUS_MULTIPROC_DIR (set here before the workers
start); this serves the merged view.
"""

from __future__ import annotations

import shutil
import tempfile

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client import multiprocess

from filter.metrics import MULTIPROC_ENV


class MetricsEndpoint:
    """The supervisor's side: a scratch directory for the workers and the /metrics HTTP server."""

    def __init__(self, port: int, address: str = "0.0.0.0"):
        self.port = port
        self.address = address
        self.directory = tempfile.mkdtemp(prefix="switchyard-metrics-")

    def worker_env(self) -> dict[str, str]:
        return {MULTIPROC_ENV: self.directory}

    def start(self) -> None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self.directory)
        self._server, self._thread = start_http_server(self.port, addr=self.address, registry=registry)
        self.port = self._server.server_port  # the system's choice when configured as 0

    def worker_exited(self, pid: int) -> None:
        multiprocess.mark_process_dead(pid, self.directory)

    def close(self) -> None:
        server = getattr(self, "_server", None)
        if server is not None:
            server.shutdown()
            server.server_close()
        shutil.rmtree(self.directory, ignore_errors=True)

