"""The /metrics endpoint: one scrape shows every request, fast or filtered.

It serves, merged: the workers' multi-process metrics (routing decisions, failovers: each worker
writes its samples to files in PROMETHEUS_MULTIPROC_DIR, set here before the workers start) and
the per-request metrics Envoy counts itself (requests, upstream duration, time to first token,
tokens), read from Envoy's admin interface on loopback at each scrape (filter/envoy_stats.py).
If Envoy is not there (starting, restarting, or another container not yet up), the filter's own
metrics are still served and `switchyard_envoy_stats_up` says 0.

One thread runs an asyncio server: no thread per connection, a bound on connections, on the size
of a request and on the time to send it; the scrape itself is built off the event loop, one at
a time. Only GET /metrics (and HEAD) is served.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import tempfile
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from prometheus_client import CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily

from filter import envoy_stats
from filter.metrics import MULTIPROC_ENV

MAX_CONNECTIONS = 1024  # idle ones cost a few KB each, never a thread
MAX_REQUEST_BYTES = 8192
REQUEST_TIMEOUT_S = 10.0
ENVOY_TIMEOUT_S = 2.0
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class EnvoyCollector:
    """The request families from Envoy's counters, fetched from its admin at each collection."""

    def __init__(self, admin_port: Callable[[], int | None]):
        self.admin_port = admin_port  # Envoy's admin port once known (0 in the config: Envoy picks)

    def collect(self):
        up = GaugeMetricFamily("switchyard_envoy_stats_up", "1 if this scrape read Envoy's request counters")
        stats = self._fetch()
        up.add_metric([], 0 if stats is None else 1)
        if stats is not None:
            yield from envoy_stats.families(*stats)
        yield up

    def _fetch(self) -> tuple[dict, list[envoy_stats.Counted]] | None:
        """The Wasm extension's counters (JSON) and the native module's (Prometheus text)."""
        port = self.admin_port()
        if not port:
            return None
        try:
            base = f"http://127.0.0.1:{port}"
            with urllib.request.urlopen(base + envoy_stats.STATS_PATH, timeout=ENVOY_TIMEOUT_S) as answer:
                stats = json.loads(answer.read())
            with urllib.request.urlopen(base + envoy_stats.PROMETHEUS_PATH, timeout=ENVOY_TIMEOUT_S) as answer:
                return stats, envoy_stats.native_counters(answer.read().decode())
        except (OSError, ValueError):
            return None


class MetricsEndpoint:
    """The supervisor's side: a scratch directory for the workers and the /metrics server."""

    def __init__(self, port: int, address: str = "127.0.0.1", admin_port: Callable[[], int | None] = lambda: None):
        self.port = port
        self.address = address
        self.directory = tempfile.mkdtemp(prefix="switchyard-metrics-")
        self.registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(self.registry, path=self.directory)
        self.registry.register(EnvoyCollector(admin_port))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._scrapes = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metrics-scrape")
        self._open = 0

    def worker_env(self) -> dict[str, str]:
        return {MULTIPROC_ENV: self.directory}

    def start(self) -> None:
        """Bind now (an OSError reaches the caller), then serve from a thread of its own."""
        family = socket.AF_INET6 if ":" in self.address else socket.AF_INET
        sock = socket.create_server((self.address, self.port), family=family, backlog=128)
        self.port = sock.getsockname()[1]  # port 0: the one the system picked
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            server = self._loop.run_until_complete(asyncio.start_server(self._serve, sock=sock, limit=MAX_REQUEST_BYTES))
            ready.set()
            try:
                self._loop.run_forever()
            finally:
                server.close()
                self._loop.run_until_complete(server.wait_closed())
                self._loop.close()

        self._thread = threading.Thread(target=run, name="metrics-endpoint", daemon=True)
        self._thread.start()
        ready.wait()

    def scrape(self) -> bytes:
        return generate_latest(self.registry)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._open >= MAX_CONNECTIONS:
            writer.close()
            return
        self._open += 1
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT_S)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError, ConnectionError):
                return
            method, _, rest = head.partition(b" ")
            path = rest.partition(b" ")[0].partition(b"?")[0]
            if method not in (b"GET", b"HEAD"):
                await self._answer(writer, 405, b"only GET /metrics\n", extra=b"allow: GET, HEAD\r\n")
            elif path != b"/metrics":
                await self._answer(writer, 404, b"see /metrics\n")
            else:
                body = await asyncio.get_running_loop().run_in_executor(self._scrapes, self.scrape)
                await self._answer(writer, 200, body, head_only=method == b"HEAD", content_type=CONTENT_TYPE)
        finally:
            self._open -= 1
            writer.close()

    @staticmethod
    async def _answer(writer: asyncio.StreamWriter, status: int, body: bytes, *, extra: bytes = b"",
                      head_only: bool = False, content_type: str = "text/plain; charset=utf-8") -> None:
        reason = {200: b"OK", 404: b"Not Found", 405: b"Method Not Allowed"}[status]
        writer.write(b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\nconnection: close\r\n%s\r\n"
                     % (status, reason, content_type.encode(), len(body), extra))
        if not head_only:
            writer.write(body)
        try:
            await asyncio.wait_for(writer.drain(), REQUEST_TIMEOUT_S)
        except (asyncio.TimeoutError, ConnectionError):
            pass

    def worker_exited(self, pid: int) -> None:
        multiprocess.mark_process_dead(pid, self.directory)

    def close(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        self._scrapes.shutdown(wait=False)
        shutil.rmtree(self.directory, ignore_errors=True)
