"""Load for the performance benchmark: `wrk` with a generated Lua script (fixed concurrency or
paced with `delay()`), and a sequential raw-socket client that measures streaming time to first byte."""

from __future__ import annotations

import json
import resource
import secrets
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

WRK_MARK = "BENCH_JSON "

# done() prints one JSON line: wrk's own counters and its latency histogram (microseconds).
_DONE = r'''
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max))
end
'''


def lua_script(path: str, body: dict, *, vary: bool, delay_ms: float | None) -> str:
    """A wrk script POSTing `body` as JSON. `vary` puts a per-thread counter in the last message
    (every request is a new conversation: no cache can answer it); `delay_ms` paces each
    connection with a random wait of mean `delay_ms` (uniform ±50 %) before each request."""
    text = json.dumps(body, separators=(",", ":"))
    lines = [
        "local counter = 0",
        # A global: setup()'s thread:set() sets the thread's global `tid`, which a local would hide
        # (every thread then counted "0-1", "0-2", … and repeated the others' prompts).
        "tid = 0",
        "local threads = 0",
        "function setup(thread) threads = threads + 1; thread:set('tid', threads) end",
        "function init(args) math.randomseed(tonumber(tid) * 7919 + os.time()) end",
        "local headers = {['content-type'] = 'application/json', ['authorization'] = 'Bearer sk-bench-not-a-key'}",
    ]
    if vary:
        marker = "__COUNTER__"
        assert marker in text
        prefix, suffix = text.split(marker)
        # Counters restart with every wrk run, so each script numbers its prompts from its own
        # random base: the prompts of an earlier run (the warm-up, the previous round) must not
        # come back as decision-cache hits. One number, so the prompt keeps its length in tokens.
        base = secrets.randbelow(9 * 10**8) + 10**8
        lines += [
            f"local prefix = {_lua_string(prefix)}",
            f"local suffix = {_lua_string(suffix)}",
            "function request()",
            "  counter = counter + 1",
            f"  return wrk.format('POST', {_lua_string(path)}, headers, prefix .. string.format('%d', {base} + tid * 10000000 + counter) .. suffix)",
            "end",
        ]
    else:
        lines += [
            "wrk.method = 'POST'",
            f"wrk.path = {_lua_string(path)}",
            f"wrk.body = {_lua_string(text)}",
            "wrk.headers['content-type'] = 'application/json'",
            "wrk.headers['authorization'] = 'Bearer sk-bench-not-a-key'",
        ]
    if delay_ms is not None:
        low, high = max(0, round(delay_ms * 0.5)), max(1, round(delay_ms * 1.5))
        lines += [f"function delay() return math.random({low}, {high}) end"]
    return "\n".join(lines) + "\n" + _DONE


def _lua_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


@dataclass
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: int
    non2xx: int
    socket_errors: int
    wrk_cpu_s: float


def run_wrk(url: str, script: str, workdir: Path, *, seconds: float, connections: int, threads: int,
            procs: list | None = None) -> WrkResult:
    lua = workdir / "wrk-script.lua"
    lua.write_text(script)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    argv = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds:g}s", "--timeout", "10s",
            "-s", str(lua), url]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if procs is not None:
        procs.append(proc)
    try:
        out, _ = proc.communicate(timeout=seconds + 60)
    finally:
        if procs is not None:
            procs.remove(proc)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((ln for ln in out.splitlines() if ln.startswith(WRK_MARK)), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}):\n{out}")
    data = json.loads(line[len(WRK_MARK):])
    secs = data["duration_us"] / 1e6
    socket_errors = data["connect"] + data["read"] + data["write"] + data["timeout"]
    return WrkResult(
        requests=data["requests"], seconds=secs, rps=data["requests"] / secs,
        p50_ms=data["p50_us"] / 1000, p90_ms=data["p90_us"] / 1000, p99_ms=data["p99_us"] / 1000,
        errors=data["status"] + socket_errors, non2xx=data["status"], socket_errors=socket_errors,
        wrk_cpu_s=(after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
    )


class StreamClient:
    """One keep-alive HTTP/1.1 connection; `ttfb()` sends a streaming chat request and returns the
    seconds from the end of the send to the first SSE event's bytes (status and headers alone do
    not count), then reads the stream to its end."""

    def __init__(self, url: str, path: str, body: dict):
        host, port = url.removeprefix("http://").split(":")
        self.address = (host, int(port))
        payload = json.dumps(body).encode()
        self.request = (f"POST {path} HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\n"
                        f"authorization: Bearer sk-bench-not-a-key\r\naccept: text/event-stream\r\n"
                        f"content-length: {len(payload)}\r\n\r\n").encode() + payload
        self.sock: socket.socket | None = None

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(self.address, timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def ttfb(self) -> float:
        if self.sock is None:
            self.sock = self._connect()
        sock = self.sock
        sock.sendall(self.request)
        start = time.perf_counter()
        buf = b""
        first = None
        while True:
            data = sock.recv(65536)
            if not data:
                self.close()
                raise RuntimeError("connection closed mid-response")
            if first is None and b"data:" in buf[-8:] + data:
                first = time.perf_counter() - start
            buf += data
            if first is not None and buf.endswith(b"0\r\n\r\n"):
                break
        status = buf[:buf.find(b"\r\n")]
        if b" 200 " not in status + b" ":
            raise RuntimeError(f"streaming answer was {status!r}")
        if b"connection: close" in buf[:buf.find(b"\r\n\r\n")].lower():
            self.close()
        return first

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
