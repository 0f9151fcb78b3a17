"""The processes of the performance benchmark: the stand-in upstream, bare Envoy, Switchyard and the
LiteLLM proxy; started on loopback with free ports and always stopped (also on Ctrl-C and errors)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from filter.runtime.supervisor import envoy_binary
from tests.gateway import Gateway


def free_port() -> int:
    """A port for a benchmark process that takes it as an argument (the stand-ins, wrk targets).
    The tests never do this (tests/gateway.py lets the system choose); a benchmark on a quiet
    machine takes the small risk of a clash."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "build"
BENCH_VENV = BUILD / "bench-venv"
LITELLM_VENV = BUILD / "litellm-venv"
KEY = "sk-bench-not-a-key"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (all its threads), in seconds; None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def descendants(root: int) -> list[int]:
    """Every live descendant of `root`, parents before children."""
    parent_of: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent_of[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    found, frontier = [], [root]
    while frontier:
        nxt = [pid for pid, ppid in parent_of.items() if ppid in frontier]
        found.extend(sorted(nxt))
        frontier = nxt
    return found


def wait_http(url: str, timeout: float, body: dict | None = None, proc: subprocess.Popen | None = None,
              log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"{url}: the process exited ({proc.returncode}) before answering\n{tail}")
        try:
            status, _, _ = http(url, body, timeout=5)
            if status == 200:
                return
            last = f"status {status}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer 200 within {timeout:.0f}s ({last})")


def http(url: str, body: dict | None = None, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json",
                                                              "authorization": f"Bearer {KEY}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


@dataclass
class System:
    """One thing under test: its base URL and the processes whose CPU is charged to it."""

    name: str
    url: str
    processes: dict[str, int] = field(default_factory=dict)  # label → pid
    log_path: Path | None = None  # Switchyard's output: Envoy's JSON access log among it

    def cpu(self) -> dict[str, float]:
        return {label: c for label, pid in self.processes.items() if (c := cpu_seconds(pid)) is not None}


class Fleet:
    """Starts processes and remembers them, so that `stop_all` can end every one of them."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.popens: list[subprocess.Popen] = []
        self.gateways: list[Gateway] = []
        self.logs: list = []

    # ------------------------------------------------------------------ generic

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> tuple[subprocess.Popen, Path]:
        log_path = self.workdir / f"{name}.log"
        log = open(log_path, "wb")
        self.logs.append(log)
        proc = subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, **(env or {})}, start_new_session=True)
        self.popens.append(proc)
        return proc, log_path

    def stop_all(self) -> None:
        for gateway in reversed(self.gateways):
            try:
                gateway.stop()
            except Exception as exc:  # keep stopping the others
                print(f"bench: stopping a gateway: {exc}", file=sys.stderr)
            _kill_group(gateway.process)
        for proc in reversed(self.popens):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 15
        for proc in self.popens:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _kill_group(proc)
        for log in self.logs:
            log.close()
        self.popens.clear()
        self.gateways.clear()

    # ------------------------------------------------------------------ the systems

    def upstream(self) -> System:
        port = free_port()
        python = BENCH_VENV / "bin" / "python"
        argv = [str(python) if python.exists() else sys.executable, "-m", "bench.upstream", "--port", str(port)]
        proc, log = self.spawn("upstream", argv)
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/health", 20, proc=proc, log=log)
        return System("upstream", url, {"upstream": proc.pid})

    def bare_envoy(self, upstream: System) -> System:
        return self._envoy("envoy", bare_envoy_bootstrap, upstream)

    def noop_filter_envoy(self, upstream: System) -> System:
        """Bare Envoy plus an ext_proc filter to a Python server that does nothing (bench/noop_filter.py)."""
        return self._envoy_with_noop_filter("noop", noop_filter_bootstrap, upstream)

    def native_routing_envoy(self, upstream: System) -> System:
        """Envoy alone routing on the body's model (a design study, not Switchyard: see
        `native_routing_bootstrap`)."""
        return self._envoy("native", native_routing_bootstrap, upstream)

    def _envoy_with_noop_filter(self, name: str, bootstrap_for, upstream: System) -> System:
        """Starts a no-op filter, then Envoy from `bootstrap_for(port, admin, upstream, filter_port)`."""
        filter_port = free_port()
        noop, _ = self.spawn(f"{name}-noop-filter", [sys.executable, "-m", "bench.noop_filter", "--port", str(filter_port)])
        system = self._envoy(name, lambda port, admin, up: bootstrap_for(port, admin, up, filter_port), upstream)
        system.processes["noop filter"] = noop.pid
        return system

    def _envoy(self, name: str, bootstrap_for, upstream: System) -> System:
        port, admin = free_port(), free_port()
        up_port = int(upstream.url.rsplit(":", 1)[1])
        path = self.workdir / f"{name}-envoy.yaml"
        path.write_text(yaml.safe_dump(bootstrap_for(port, admin, up_port), sort_keys=False))
        # The flags Switchyard's supervisor gives its Envoy (filter/supervisor.py), same binary.
        argv = [envoy_binary(), "-c", str(path), "--log-level", "error", "--disable-hot-restart",
                "--file-flush-interval-msec", "500", "--concurrency", str(max(1, os.cpu_count() or 1))]
        proc, log = self.spawn(f"{name}-envoy", argv)
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/health", 30, proc=proc, log=log)
        return System(name, url, {"envoy": proc.pid, "upstream": upstream.processes["upstream"]})

    def switchyard(self, name: str, upstream: System, *, workers: int, engine: str,
                   usage_metrics: bool = True, fast_path: bool = True, tracing: bool = False,
                   governance: str | None = None, **routing) -> System:
        config = switchyard_config(upstream.url, engine=engine, usage_metrics=usage_metrics, fast_path=fast_path,
                                   tracing=tracing, governance=governance)
        config["routing"].update(routing)
        gateway = Gateway(config, self.workdir, workers=workers)
        self.gateways.append(gateway)
        gateway.start(timeout=180)
        processes = {"envoy": gateway.child_pid("envoy")}
        worker_pids = sorted(pid for pid, cmd in gateway.children().items() if "filter.runtime.worker" in cmd)
        for i, pid in enumerate(worker_pids, 1):
            processes[f"worker{i}"] = pid
        assert gateway.process is not None
        processes["supervisor"] = gateway.process.pid
        processes["upstream"] = upstream.processes["upstream"]
        return System(name, gateway.url, processes, log_path=gateway.log_path)

    def litellm(self, upstream: System, workers: int = 2) -> System:
        binary = LITELLM_VENV / "bin" / "litellm"
        if not binary.exists():
            raise RuntimeError(f"{binary} is missing (make bench creates it)")
        port = free_port()
        config = {
            "model_list": [{"model_name": "fast", "litellm_params": {
                "model": "openai/gpt-4o-mini", "api_base": upstream.url + "/v1", "api_key": KEY}}],
            "litellm_settings": {"set_verbose": False, "json_logs": False, "turn_off_message_logging": True,
                                 "drop_params": True, "telemetry": False},
            # Master key off, as the comparison asks (this release refuses that unless told).
            "general_settings": {"dangerously_permit_weak_or_unset_master_key": True},
        }
        path = self.workdir / "litellm.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        env = {"LITELLM_LOG": "ERROR", "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False",
               "DISABLE_SCHEMA_UPDATE": "True",
               "NO_DOCS": "True", "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
        for var in ("LITELLM_MASTER_KEY", "DATABASE_URL"):  # master key off, no database
            os.environ.pop(var, None)
        argv = [str(binary), "--config", str(path), "--host", "127.0.0.1", "--port", str(port),
                "--num_workers", str(workers)]
        proc, log = self.spawn("litellm", argv, env)
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/v1/chat/completions", 240, body=chat_body("fast"), proc=proc, log=log)
        time.sleep(1.0)  # let every worker finish starting
        processes = {"litellm-main": proc.pid}
        workers = 0
        for pid in descendants(proc.pid):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"resource_tracker" in cmdline:
                processes["litellm-tracker"] = pid
            else:
                workers += 1
                processes[f"litellm-worker{workers}"] = pid
        processes["upstream"] = upstream.processes["upstream"]
        return System("litellm", url, processes)


def _kill_group(proc: subprocess.Popen | None) -> None:
    if proc is None:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def chat_body(model: str, content: str = "Say hello.", stream: bool = False) -> dict:
    body: dict = {"model": model, "messages": [{"role": "user", "content": content}]}
    if stream:
        body["stream"] = True
    return body


ROUTES = [  # the descriptions of examples/demo.yaml
    ("openai/gpt-4o", "creative_writing", "creative writing: stories, poems, song lyrics, jokes, slogans, marketing copy, fiction"),
    ("openai/gpt-4o-mini", "code_generation", "writing code: new functions, classes, scripts, programs, algorithms, "
     "implementations in Python, Rust, Go, JavaScript, SQL queries, boilerplate"),
]


# Limits the load never reaches: what the bench measures is their cost on every request.
FAR_LIMITS = {"rpm": 2 * 10**9, "tpm": 2 * 10**9}


def switchyard_config(upstream_url: str, *, engine: str, usage_metrics: bool, fast_path: bool = True,
                      tracing: bool = False, governance: str | None = None) -> dict:
    """Two OpenAI-compatible models on the stand-in, an alias, and (embedded engine) two routes.
    With `tracing`, spans go to the stand-in (it answers any POST), exported as in production.
    `governance`: "keys" (the load's key is a client key Envoy checks) or "limits" (that key
    with rpm, tpm and a budget, and rpm and tpm on each model, all far above the load)."""
    providers = []
    for model, route, description in ROUTES:
        entry: dict = {"model": model, "access_key": KEY, "base_url": upstream_url + "/v1"}
        if model == "openai/gpt-4o":
            entry["default"] = True
        if engine != "none":
            entry["routing_preferences"] = [{"name": route, "description": description}]
        if governance == "limits":
            entry["limits"] = dict(FAR_LIMITS)
        providers.append(entry)
    keys = {}
    if governance:
        key = {"name": "bench", "key": KEY}
        if governance == "limits":
            key.update(limits=dict(FAR_LIMITS), budget={"usd": 10**9, "period": "day"})
        keys = {"client_keys": [key]}
    return {
        "llm_providers": providers,
        "model_aliases": {"fast": {"target": "gpt-4o-mini"}},
        "routing": {"engine": engine},
        "gateway": {"usage_metrics": usage_metrics, "fast_path": fast_path, **keys,
                    **({"tracing": {"otlp_endpoint": upstream_url + "/v1/traces"}} if tracing else {})},
    }


def bare_envoy_bootstrap(port: int, admin_port: int, upstream_port: int) -> dict:
    """Listener + HTTP connection manager + router + one plain cluster: Envoy's own cost."""
    return {
        "node": {"id": "bench-bare", "cluster": "bench-bare"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "static_resources": {
            "listeners": [{
                "name": "bare_listener",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
                "per_connection_buffer_limit_bytes": 16 * 1024 * 1024,  # Switchyard's default body limit
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "bare",
                        "codec_type": "AUTO",
                        "route_config": {"name": "bare", "virtual_hosts": [{
                            "name": "bare", "domains": ["*"],
                            "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "upstream", "timeout": "30s"}}],
                        }]},
                        "http_filters": [{
                            "name": "envoy.filters.http.router",
                            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
                                             "suppress_envoy_headers": True},
                        }],
                    },
                }]}],
            }],
            "clusters": [{
                "name": "upstream",
                "type": "STATIC",
                "connect_timeout": "5s",
                "load_assignment": {"cluster_name": "upstream", "endpoints": [{"lb_endpoints": [{"endpoint": {
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": upstream_port}}}}]}]},
            }],
        },
    }



def noop_filter_bootstrap(port: int, admin_port: int, upstream_port: int, filter_port: int) -> dict:
    """Bare Envoy's bootstrap plus an ext_proc filter in Switchyard's processing mode (request
    headers sent, request body buffered, response phases skipped) to the no-op Python server."""
    bootstrap = bare_envoy_bootstrap(port, admin_port, upstream_port)
    manager = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    manager["http_filters"].insert(0, {
        "name": "envoy.filters.http.ext_proc",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor",
            "grpc_service": {"envoy_grpc": {"cluster_name": "noop_filter"}},
            "failure_mode_allow": False,
            "message_timeout": "2s",
            "processing_mode": {"request_header_mode": "SEND", "request_body_mode": "BUFFERED",
                                "response_header_mode": "SKIP", "response_body_mode": "NONE"},
        },
    })
    bootstrap["static_resources"]["clusters"].append({
        "name": "noop_filter",
        "type": "STATIC",
        "connect_timeout": "1s",
        "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {}}}},
        "load_assignment": {"cluster_name": "noop_filter", "endpoints": [{"lb_endpoints": [{"endpoint": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": filter_port}}}}]}]},
    })
    return bootstrap


TRANSFORM = "type.googleapis.com/envoy.extensions.filters.http.transform.v3.TransformConfig"


def native_routing_bootstrap(port: int, admin_port: int, upstream_port: int) -> dict:
    """A design study, not Switchyard: what the alias path costs when Envoy does it alone.

    Envoy's transform filter copies the body's `model` into a header and re-matches the route; the
    route for `model: fast` rewrites the body's model to `gpt-4o-mini` (a second transform filter,
    configured per route) and sets the provider's key. No Python, and none of the gateway's request
    checks (a malformed `messages` would be forwarded), metadata, metrics or tracing.
    """
    bootstrap = bare_envoy_bootstrap(port, admin_port, upstream_port)
    manager = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    model_header = {"append": {"header": {"key": "x-model-name", "value": "%REQUEST_BODY(model)%"},
                               "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}}
    manager["http_filters"][:0] = [
        {"name": "model_header", "typed_config": {"@type": TRANSFORM, "clear_route_cache": True,
                                                  "request_transformation": {"headers_mutations": [model_header]}}},
        {"name": "rewrite", "typed_config": {"@type": TRANSFORM}},
    ]
    rewrite = {"@type": TRANSFORM, "request_transformation": {
        "headers_mutations": [{"append": {"header": {"key": "authorization", "value": f"Bearer {KEY}"},
                                          "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}}],
        "body_transformation": {"body_format": {"json_format": {"model": "gpt-4o-mini"}}, "action": "MERGE"}}}
    manager["route_config"]["virtual_hosts"][0]["routes"] = [
        {"match": {"path": "/v1/chat/completions",
                   "headers": [{"name": "x-model-name", "string_match": {"exact": "fast"}}]},
         "route": {"cluster": "upstream", "timeout": "30s"},
         "request_headers_to_remove": ["x-model-name", "x-api-key"],
         "typed_per_filter_config": {"rewrite": rewrite}},
        {"match": {"path": "/health"}, "route": {"cluster": "upstream", "timeout": "30s"}},
        {"match": {"prefix": "/"}, "direct_response": {"status": 404}},
    ]
    return bootstrap


