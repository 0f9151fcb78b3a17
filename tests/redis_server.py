"""A real redis-server (Debian's `/usr/bin/redis-server`) on a Unix socket of the test's own.

No TCP port: the server listens only on `<dir>/redis.sock`, keeps nothing on disk, and is
stopped by the test (`stop()` mid-test simulates an outage; `start()` brings it back on the same
socket). Readiness is awaited by asking it, never by sleeping.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

def stop_process(process: subprocess.Popen | None) -> None:
    """Stop a server a test started: SIGTERM, then SIGKILL after 10 s."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class RedisServer:
    def __init__(self, directory: Path, *, password: str | None = None):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.socket = self.directory / "redis.sock"
        self.password = password
        self.process: subprocess.Popen | None = None
        self._log = self.directory / "redis.log"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self, timeout: float = 10.0) -> "RedisServer":
        args = [REDIS_SERVER, "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700",
                "--save", "", "--appendonly", "no", "--dir", str(self.directory), "--logfile", str(self._log)]
        if self.password:
            args += ["--requirepass", self.password]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self._log.read_text(errors='replace')[-2000:]}")
            if self.ping():
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("redis-server did not answer PING")

    def command(self, *words: str) -> bytes:
        """One command in RESP over the socket; the raw reply."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            s.connect(str(self.socket))
            parts = ([b"AUTH", self.password.encode()] if self.password else [])
            if parts:
                s.sendall(_resp(parts))
                s.recv(1024)
            s.sendall(_resp([w.encode() for w in words]))
            return s.recv(1 << 20)

    def ping(self) -> bool:
        try:
            return self.command("PING").startswith(b"+PONG")
        except OSError:
            return False

    def keys(self, pattern: str = "*") -> list[str]:
        reply = self.command("KEYS", pattern).decode()
        return [line for line in reply.split("\r\n")[1:] if line and not line.startswith("$")]

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _resp(words: list[bytes]) -> bytes:
    out = [b"*%d\r\n" % len(words)]
    for w in words:
        out.append(b"$%d\r\n%s\r\n" % (len(w), w))
    return b"".join(out)
