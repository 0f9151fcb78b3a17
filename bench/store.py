"""`python -m bench.store`: the embedded store's design choice, measured against its alternatives.

Two processes (two filter workers) each run 8 concurrent coroutines that do what a pinned agent
step does — read a session with refresh — and, one time in four, what a routed turn does —
write one. Every candidate is driven through the same async calls:

- `sqlite-thread`: the shipped embedded store (filter/state/embedded.py): SQLite WAL in the
  runtime directory, each operation on the worker's store thread;
- `sqlite-inline`: the same statements run on the event loop (no thread hop, but a lock held by
  the other process blocks the loop);
- `socket-server`: a store served by one more process over a Unix socket (JSON lines, a dict):
  what a store hosted by the supervisor would cost;
- `redis`: the shipped Redis store against redis-server on a Unix socket (the replicas' store);
- `dict`: a dict per process — the floor, and wrong: the other worker never sees a pin.

Prints per-operation latency (p50, p99) and operations per second, and whether a pin written by
one process is seen by the other. Take the bench lock: `flock /tmp/switchyard-bench.lock
python -m bench.store`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from filter.state import Table
from filter.state.embedded import EmbeddedStore
from filter.state.redis_store import RedisStore
from tests.redis_server import RedisServer

TABLE = Table("sessions", ttl_s=600, max_entries=10_000)
VALUE = b'{"model":"openai/gpt-4o","route":"code_generation"}'
CONCURRENCY = 8


class InlineSqlite(EmbeddedStore):
    """The embedded store's statements, run on the event loop itself."""

    async def _run(self, operation, *args, write: bool = True):
        return self._transaction(operation, args, write)


class SocketClient:
    def __init__(self, path: str):
        self.path = path
        self.lock = None
        self.conn = None

    async def _ask(self, request: dict):
        if self.conn is None:
            self.conn = await asyncio.open_unix_connection(self.path)
            self.lock = asyncio.Lock()
        reader, writer = self.conn
        async with self.lock:  # one connection per worker, requests in turn
            writer.write(json.dumps(request).encode() + b"\n")
            await writer.drain()
            return json.loads(await reader.readline())

    async def get(self, table, key):
        value = (await self._ask({"op": "get", "key": key}))["value"]
        return value.encode("latin-1") if value is not None else None

    async def put(self, table, key, value):
        await self._ask({"op": "put", "key": key, "value": value.decode("latin-1")})

    async def aclose(self):
        if self.conn is not None:
            self.conn[1].close()


def serve_socket(path: str) -> None:
    data: dict[str, str] = {}

    async def handle(reader, writer):
        while line := await reader.readline():
            request = json.loads(line)
            if request["op"] == "put":
                data[request["key"]] = request["value"]
                writer.write(b'{"ok":true}\n')
            else:
                writer.write(json.dumps({"value": data.get(request["key"])}).encode() + b"\n")
            await writer.drain()

    async def main():
        server = await asyncio.start_unix_server(handle, path)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


class DictStore:
    def __init__(self):
        self.data = {}

    async def get(self, table, key):
        return self.data.get(key)

    async def put(self, table, key, value):
        self.data[key] = value

    async def aclose(self):
        pass


def make(kind: str, where: str):
    if kind == "sqlite-thread":
        return EmbeddedStore(where)
    if kind == "sqlite-inline":
        return InlineSqlite(where)
    if kind == "socket-server":
        return SocketClient(where)
    if kind == "redis":
        return RedisStore(where, key_prefix="bench:")
    return DictStore()


def worker(kind: str, where: str, ops: int, me: int, out) -> None:
    async def run():
        store = make(kind, where)
        await store.put(TABLE, f"shared-{me}", VALUE)
        latencies: list[float] = []

        async def client(c: int):
            for i in range(ops // CONCURRENCY):
                key = f"s{me}-{c}-{i % 50}"
                start = time.perf_counter()
                if i % 4 == 0:
                    await store.put(TABLE, key, VALUE)
                else:
                    await store.get(TABLE, key)
                latencies.append(time.perf_counter() - start)

        started = time.perf_counter()
        await asyncio.gather(*(client(c) for c in range(CONCURRENCY)))
        elapsed = time.perf_counter() - started
        await asyncio.sleep(0.2)
        seen = await store.get(TABLE, f"shared-{1 - me}")
        await store.aclose()
        out.put((latencies, elapsed, seen == VALUE))

    asyncio.run(run())


def measure(kind: str, where: str, ops: int) -> dict:
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    procs = [context.Process(target=worker, args=(kind, where, ops, me, out)) for me in (0, 1)]
    for p in procs:
        p.start()
    results = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join()
    latencies = sorted(x for r in results for x in r[0])
    return {"p50_us": statistics.median(latencies) * 1e6, "p99_us": latencies[int(0.99 * (len(latencies) - 1))] * 1e6,
            "ops_per_s": len(latencies) / max(r[1] for r in results), "shared": all(r[2] for r in results)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ops", type=int, default=8000, help="operations per process")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="switchyard-store-bench-"))
    rows = []
    try:
        with RedisServer(tmp / "redis") as redis:
            server = multiprocessing.get_context("spawn").Process(target=serve_socket, args=(str(tmp / "kv.sock"),))
            server.start()
            while not (tmp / "kv.sock").exists():
                time.sleep(0.01)
            try:
                for kind, where in (("sqlite-thread", str(tmp)), ("sqlite-inline", str(tmp / "inline")),
                                    ("socket-server", str(tmp / "kv.sock")), ("redis", redis.url), ("dict", "")):
                    if kind == "sqlite-inline":
                        os.makedirs(where, exist_ok=True)
                    row = measure(kind, where, args.ops)
                    rows.append((kind, row))
                    print(f"{kind:14s} p50 {row['p50_us']:7.1f} µs  p99 {row['p99_us']:8.1f} µs  "
                          f"{row['ops_per_s']:8.0f} ops/s  shared by the workers: {row['shared']}", flush=True)
            finally:
                server.terminate()
                server.join()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    print("| store | p50 per op | p99 per op | ops/s (2 processes × 8 coroutines) | one worker sees the other's pin |")
    print("| --- | ---: | ---: | ---: | --- |")
    for kind, row in rows:
        print(f"| {kind} | {row['p50_us']:.0f} µs | {row['p99_us']:.0f} µs | {row['ops_per_s']:.0f} | "
              f"{'yes' if row['shared'] else 'no'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
