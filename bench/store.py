"""`python -m bench.store`: the embedded store's design choice, measured against its alternatives.

Two processes (two filter workers) each run 1 or 8 concurrent coroutines that do what a pinned agent
step does — read a session with refresh — and, one time in four, what a routed turn does —
write one. Every candidate is driven through the same async calls:

- `sqlite`: the shipped embedded store (filter/state/embedded.py): SQLite WAL in the runtime
  directory, each operation on the event loop unless the other worker holds the lock, then on
  the worker's store thread;
- `sqlite-thread`: the same, every operation on the store thread (a thread hop each);
- `sqlite-loop-waits`: the same, every operation on the event loop, waiting there for a lock;
- `socket-server`: a store served by one more process over a Unix socket (JSON lines, a dict):
  what a store hosted by the supervisor would cost;
- `redis`: the shipped Redis store against redis-server on a Unix socket (the replicas' store);
- `dict`: a dict per process — the floor, and wrong: the other worker never sees a pin.

Prints per-operation latency (p50, p99), operations per second, CPU per operation (all threads
of both processes), how late each worker's event loop ran a 1 ms timer meanwhile (what every
other request on that worker waits), and whether a pin written by one process is seen by the
other. Take the bench lock: `flock /tmp/switchyard-bench.lock
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
CONCURRENCIES = (1, 8)  # requests in flight per worker


class ThreadSqlite(EmbeddedStore):
    """The embedded store's statements, every one on the store thread."""

    async def _run(self, operation, *args, write: bool = True):
        return await self._on_thread(operation, args, write)


class WaitingSqlite(EmbeddedStore):
    """The embedded store's statements on the event loop, waiting there for another's lock."""

    async def _run(self, operation, *args, write: bool = True):
        return self._transaction(self._thread_connection(), operation, args, write)


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
    if kind == "sqlite":
        return EmbeddedStore(where)
    if kind == "sqlite-thread":
        return ThreadSqlite(where)
    if kind == "sqlite-loop-waits":
        return WaitingSqlite(where)
    if kind == "socket-server":
        return SocketClient(where)
    if kind == "redis":
        return RedisStore(where, key_prefix="bench:")
    return DictStore()


def worker(kind: str, where: str, ops: int, concurrency: int, me: int, out) -> None:
    async def run():
        store = make(kind, where)
        await store.put(TABLE, f"shared-{me}", VALUE)
        latencies: list[float] = []
        lags: list[float] = []
        done = asyncio.Event()

        async def ticker():  # how late the event loop wakes a 1 ms timer: what other requests wait
            while not done.is_set():
                start = time.perf_counter()
                await asyncio.sleep(0.001)
                lags.append(time.perf_counter() - start - 0.001)

        async def client(c: int):
            for i in range(ops // concurrency):
                key = f"s{me}-{c}-{i % 50}"
                start = time.perf_counter()
                if i % 4 == 0:
                    await store.put(TABLE, key, VALUE)
                else:
                    await store.get(TABLE, key)
                latencies.append(time.perf_counter() - start)
                await asyncio.sleep(0)  # a request does I/O between store calls: other tasks run

        tick = asyncio.create_task(ticker())
        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(client(c) for c in range(concurrency)))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        done.set()
        await tick
        await asyncio.sleep(0.2)
        seen = await store.get(TABLE, f"shared-{1 - me}")
        deferred = getattr(store, "deferred", 0)
        await store.aclose()
        out.put((latencies, elapsed, seen == VALUE, cpu, sorted(lags), deferred))

    asyncio.run(run())


def measure(kind: str, where: str, ops: int, concurrency: int) -> dict:
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    procs = [context.Process(target=worker, args=(kind, where, ops, concurrency, me, out)) for me in (0, 1)]
    for p in procs:
        p.start()
    results = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join()
    latencies = sorted(x for r in results for x in r[0])
    lags = sorted(x for r in results for x in r[4])
    return {"p50_us": statistics.median(latencies) * 1e6, "p99_us": latencies[int(0.99 * (len(latencies) - 1))] * 1e6,
            "ops_per_s": len(latencies) / max(r[1] for r in results), "shared": all(r[2] for r in results),
            "cpu_us": sum(r[3] for r in results) / len(latencies) * 1e6,
            "lag_p99_ms": lags[int(0.99 * (len(lags) - 1))] * 1e3, "lag_max_ms": lags[-1] * 1e3,
            "max_us": latencies[-1] * 1e6, "deferred": sum(r[5] for r in results) / len(latencies)}


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
                for concurrency in CONCURRENCIES:
                    for kind, where in (("sqlite", str(tmp / f"s{concurrency}")),
                                        ("sqlite-thread", str(tmp / f"t{concurrency}")),
                                        ("sqlite-loop-waits", str(tmp / f"w{concurrency}")),
                                        ("socket-server", str(tmp / "kv.sock")), ("redis", redis.url), ("dict", "")):
                        if kind.startswith("sqlite"):  # a file of its own per variant
                            os.makedirs(where, exist_ok=True)
                        row = measure(kind, where, args.ops, concurrency)
                        rows.append((kind, concurrency, row))
                        print(f"{kind:17s} ×{concurrency} p50 {row['p50_us']:7.1f} µs  p99 {row['p99_us']:8.1f} µs  "
                              f"max {row['max_us']:8.0f} µs  deferred {100 * row['deferred']:.2f} %  "
                              f"{row['ops_per_s']:8.0f} ops/s  CPU {row['cpu_us']:6.1f} µs/op  loop lag p99 "
                              f"{row['lag_p99_ms']:.2f} max {row['lag_max_ms']:.2f} ms  shared: {row['shared']}", flush=True)
            finally:
                server.terminate()
                server.join()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    print("| store | in flight per worker | p50 per op | p99 per op | max | ops/s (2 workers) | CPU per op | "
          "event-loop lag p99 / max | one worker sees the other's pin |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for kind, concurrency, row in rows:
        print(f"| {kind} | {concurrency} | {row['p50_us']:.0f} µs | {row['p99_us']:.0f} µs | {row['max_us'] / 1000:.1f} ms | "
              f"{row['ops_per_s']:.0f} | "
              f"{row['cpu_us']:.0f} µs | {row['lag_p99_ms']:.2f} / {row['lag_max_ms']:.2f} ms | "
              f"{'yes' if row['shared'] else 'no'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
