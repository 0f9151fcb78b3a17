"""The shared store (filter/state/): the same contract checked against both implementations —
the embedded SQLite store and a real redis-server on a Unix socket this module starts and stops.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import socket
import sqlite3
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

from filter.state import Increment, StoreError, Table, ValueTooLarge, open_store
from filter.state.embedded import EmbeddedStore
from filter.state.redis_store import RedisStore, safe_url
from filter.state.windows import calendar_period, fixed_window
from tests.redis_server import RedisServer

SESSIONS = Table("sessions", ttl_s=600, max_entries=3)
BLOBS = Table("responses", ttl_s=600, max_entries=100, refresh_on_read=False, max_value_bytes=1024)


def run(coro):
    return asyncio.run(coro)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["embedded", "redis"])
def make_store(request, tmp_path):
    """A factory of fresh stores of one kind (each test gets keys of its own)."""
    made = []

    def make(prefix: str = f"t{time.monotonic_ns()}:", **kwargs):
        if request.param == "embedded":
            store = EmbeddedStore(kwargs.pop("directory", tmp_path), **kwargs)
        else:
            server = request.getfixturevalue("redis_server")
            store = RedisStore(server.url, key_prefix=prefix, **kwargs)
        made.append(store)
        return store

    yield make


# --------------------------------------------------------------------------- tables


def test_a_value_put_is_read_back_and_a_missing_key_is_none(make_store):
    store = make_store()

    async def scenario():
        assert await store.get(SESSIONS, "a") is None
        await store.put(SESSIONS, "a", b'{"model": "openai/gpt-4o"}')
        assert await store.get(SESSIONS, "a") == b'{"model": "openai/gpt-4o"}'
        await store.put(SESSIONS, "a", b"\x00binary\xff")
        assert await store.get(SESSIONS, "a") == b"\x00binary\xff"
        await store.delete(SESSIONS, "a")
        assert await store.get(SESSIONS, "a") is None
        await store.aclose()

    run(scenario())


def test_the_first_writer_wins_with_put_if_absent(make_store):
    store = make_store()

    async def scenario():
        assert await store.put_if_absent(SESSIONS, "k", b"first") == b"first"
        assert await store.put_if_absent(SESSIONS, "k", b"second") == b"first"
        assert await store.get(SESSIONS, "k") == b"first"
        await store.aclose()

    run(scenario())


def test_tables_are_bounded_and_the_least_recently_used_entry_goes_first(make_store):
    store = make_store()

    async def scenario():
        for key in ("a", "b", "c"):
            await store.put(SESSIONS, key, key.encode())
        assert await store.get(SESSIONS, "a") == b"a"  # a is now the most recently used
        await store.put(SESSIONS, "d", b"d")  # over max_entries=3: b (least recently used) goes
        assert await store.get(SESSIONS, "b") is None
        assert [await store.get(SESSIONS, k) for k in ("a", "c", "d")] == [b"a", b"c", b"d"]  # read in this order
        await store.put(SESSIONS, "e", b"e")  # now a, the least recently read, goes
        assert await store.get(SESSIONS, "a") is None
        assert [await store.get(SESSIONS, k) for k in ("c", "d", "e")] == [b"c", b"d", b"e"]
        await store.aclose()

    run(scenario())


def test_tables_do_not_share_keys_or_bounds(make_store):
    store = make_store()
    other = Table("other", ttl_s=600, max_entries=1)

    async def scenario():
        await store.put(SESSIONS, "k", b"session")
        await store.put(other, "k", b"other")
        await store.put(other, "k2", b"other2")  # evicts only within `other`
        assert await store.get(SESSIONS, "k") == b"session"
        assert await store.get(other, "k") is None and await store.get(other, "k2") == b"other2"
        await store.aclose()

    run(scenario())


def test_a_value_over_the_table_limit_is_refused_and_nothing_is_stored(make_store):
    store = make_store()

    async def scenario():
        with pytest.raises(ValueTooLarge):
            await store.put(BLOBS, "big", b"x" * 1025)
        assert await store.get(BLOBS, "big") is None
        await store.put(BLOBS, "fits", b"x" * 1024)
        assert await store.get(BLOBS, "fits") == b"x" * 1024
        await store.aclose()

    run(scenario())


# --------------------------------------------------------------------------- counters


def test_counters_add_in_one_call_and_read_back(make_store):
    store = make_store()

    async def scenario():
        assert await store.read(["rpm", "usd"]) == [0.0, 0.0]
        assert await store.add([Increment("rpm", 1, 60), Increment("usd", 0.0125, 86400)]) == [1.0, 0.0125]
        assert await store.add([Increment("rpm", 1, 60), Increment("usd", 0.5, 86400)]) == [2.0, 0.5125]
        assert await store.read(["rpm", "usd", "missing"]) == [2.0, 0.5125, 0.0]
        assert await store.add([]) == [] and await store.read([]) == []
        await store.aclose()

    run(scenario())


def _count_in_another_process(kind: str, where: str, prefix: str, times: int) -> None:
    async def work():
        store = EmbeddedStore(where) if kind == "embedded" else RedisStore(where, key_prefix=prefix)
        for _ in range(times):
            await store.add([Increment("shared", 1, 600)])
        await store.put(SESSIONS, "from-child", b"written by the other process")
        await store.aclose()

    asyncio.run(work())


def test_two_processes_share_one_store_and_no_increment_is_lost(make_store, tmp_path, request):
    kind = request.node.callspec.params["make_store"]
    prefix = f"mp{time.monotonic_ns()}:"
    store = make_store(prefix)
    where = str(tmp_path) if kind == "embedded" else request.getfixturevalue("redis_server").url
    context = multiprocessing.get_context("spawn")
    child = context.Process(target=_count_in_another_process, args=(kind, where, prefix, 2000))

    async def scenario():
        while (await store.read(["shared"]))[0] == 0:  # counting side by side with the child
            assert child.is_alive() or child.exitcode is None
            await asyncio.sleep(0.01)
        for _ in range(500):
            await store.add([Increment("shared", 1, 600)])
        await asyncio.to_thread(child.join, 60)
        assert child.exitcode == 0
        assert await store.read(["shared"]) == [2500.0]
        assert await store.get(SESSIONS, "from-child") == b"written by the other process"
        await store.aclose()

    child.start()
    run(scenario())


def test_workers_that_open_a_new_embedded_store_at_once_all_get_it(tmp_path):
    """SQLite answers "locked" at once, without its busy wait, to a connection that meets another
    one setting up a new file (switching it to WAL, building its index): without the store
    thread's own wait, about 3 % of opens by three workers at once failed, each a request counted
    as a store outage (and a flaky governance test)."""
    failures = []

    def first_add(store: EmbeddedStore, barrier: threading.Barrier) -> None:
        barrier.wait()
        try:
            asyncio.run(store.add([Increment("opened", 1, 600)]))
        except StoreError as exc:
            failures.append(str(exc))
        finally:
            asyncio.run(store.aclose())

    for trial in range(60):
        directory = tmp_path / f"trial-{trial}"
        directory.mkdir()
        barrier = threading.Barrier(3)
        threads = [threading.Thread(target=first_add, args=(EmbeddedStore(directory), barrier)) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        if not failures:
            check = EmbeddedStore(directory)
            assert run(check.read(["opened"])) == [3.0]
            run(check.aclose())
    assert failures == []


# --------------------------------------------------------------------------- time: embedded


def test_embedded_entries_expire_and_reads_refresh_them(tmp_path):
    clock = FakeClock()
    store = EmbeddedStore(tmp_path, clock=clock)
    table = Table("sessions", ttl_s=600, max_entries=10)

    async def scenario():
        await store.put(table, "k", b"v")
        await store.put(BLOBS, "r", b"blob")
        clock.now += 599
        assert await store.get(table, "k") == b"v"  # read at 599 s: the TTL starts again
        assert await store.get(BLOBS, "r") == b"blob"  # not refreshed
        clock.now += 599
        assert await store.get(table, "k") == b"v"
        assert await store.get(BLOBS, "r") is None  # 1,198 s after it was written
        clock.now += 601
        assert await store.get(table, "k") is None
        assert await store.put_if_absent(table, "k", b"new") == b"new"  # an expired entry is absent
        await store.aclose()

    run(scenario())


def test_embedded_counters_restart_after_their_ttl(tmp_path):
    clock = FakeClock()
    store = EmbeddedStore(tmp_path, clock=clock)

    async def scenario():
        await store.add([Increment("w", 5, 60)])
        clock.now += 30
        assert await store.add([Increment("w", 1, 60)]) == [6.0]  # the TTL runs from the first add
        clock.now += 31
        assert await store.read(["w"]) == [0.0]
        assert await store.add([Increment("w", 2, 60)]) == [2.0]
        await store.aclose()

    run(scenario())


def test_embedded_eviction_drops_expired_entries_before_live_ones(tmp_path):
    clock = FakeClock()
    store = EmbeddedStore(tmp_path, clock=clock)
    table = Table("sessions", ttl_s=10, max_entries=2)

    async def scenario():
        await store.put(table, "old", b"1")
        clock.now += 5
        await store.put(table, "live", b"2")
        clock.now += 6  # "old" has expired, "live" has not
        await store.put(table, "new", b"3")
        assert await store.get(table, "live") == b"2" and await store.get(table, "new") == b"3"
        await store.aclose()

    run(scenario())


def test_embedded_store_never_blocks_the_event_loop_on_another_workers_lock(tmp_path):
    """While another process holds the write lock, an operation waits on the store thread and
    the event loop keeps running; it completes once the lock is released."""
    store = EmbeddedStore(tmp_path)

    async def scenario():
        await store.put(SESSIONS, "k", b"before")  # the file exists; the event-loop connection is open
        other = sqlite3.connect(store.path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another worker's transaction holds the write lock
        write = asyncio.create_task(store.put(SESSIONS, "k", b"after"))
        ticks = 0
        while ticks < 20:  # the loop runs on while the write waits
            await asyncio.sleep(0.005)
            ticks += 1
        assert not write.done() and store.deferred == 1
        other.execute("COMMIT")
        other.close()
        await asyncio.wait_for(write, 5)
        assert await store.get(SESSIONS, "k") == b"after"
        await store.aclose()

    run(scenario())


def test_embedded_store_file_is_in_the_directory_given(tmp_path):
    store = open_store(None, key_prefix="ignored:", password=None, directory=tmp_path)

    async def scenario():
        await store.start()
        assert (tmp_path / "state.sqlite3").exists()  # at start-up, before any request
        await store.put(SESSIONS, "k", b"v")
        await store.aclose()

    run(scenario())
    assert (tmp_path / "state.sqlite3").exists()


def test_embedded_store_in_a_missing_directory_is_a_store_error_not_a_crash(tmp_path):
    store = EmbeddedStore(tmp_path / "does-not-exist")

    async def scenario():
        await store.start()  # logged, not raised
        with pytest.raises(StoreError):
            await store.get(SESSIONS, "k")
        await store.aclose()

    run(scenario())


# --------------------------------------------------------------------------- time and keys: Redis


def test_redis_entries_carry_their_ttl_and_a_read_starts_it_again(redis_server):
    store = RedisStore(redis_server.url, key_prefix="ttl:")
    table = Table("sessions", ttl_s=600, max_entries=10)
    entry = "ttl:sessions:e:k"

    async def scenario():
        await store.put(table, "k", b"v")
        assert 599_000 < int(redis_server.command("PTTL", entry)[1:-2]) <= 600_000
        redis_server.command("PEXPIRE", entry, "5000")  # as if 595 s had passed
        assert await store.get(table, "k") == b"v"
        assert int(redis_server.command("PTTL", entry)[1:-2]) > 599_000
        await store.put(BLOBS, "r", b"blob")
        redis_server.command("PEXPIRE", "ttl:responses:e:r", "5000")
        assert await store.get(BLOBS, "r") == b"blob"
        assert int(redis_server.command("PTTL", "ttl:responses:e:r")[1:-2]) <= 5000  # not refreshed
        redis_server.command("PEXPIRE", entry, "1")
        await _until(lambda: redis_server.command("EXISTS", entry) == b":0\r\n")
        assert await store.get(table, "k") is None
        await store.aclose()

    run(scenario())


def test_redis_counters_expire_from_their_first_increment(redis_server):
    store = RedisStore(redis_server.url, key_prefix="cnt:")

    async def scenario():
        await store.add([Increment("w", 1, 60)])
        redis_server.command("PEXPIRE", "cnt:counter:w", "30000")
        await store.add([Increment("w", 1, 60)])  # a later increment keeps the first one's expiry
        assert int(redis_server.command("PTTL", "cnt:counter:w")[1:-2]) <= 30000
        await store.aclose()

    run(scenario())


def test_redis_key_prefixes_separate_tenants(redis_server):
    a = RedisStore(redis_server.url, key_prefix="tenant-a:")
    b = RedisStore(redis_server.url, key_prefix="tenant-b:")

    async def scenario():
        await a.put(SESSIONS, "same-id", b"a's pin")
        await a.add([Increment("rpm", 3, 60)])
        assert await b.get(SESSIONS, "same-id") is None
        assert await b.read(["rpm"]) == [0.0]
        await b.put(SESSIONS, "same-id", b"b's pin")
        assert await a.get(SESSIONS, "same-id") == b"a's pin"
        await a.aclose()
        await b.aclose()

    run(scenario())
    assert all(k.startswith(("tenant-a:", "tenant-b:")) for k in redis_server.keys("tenant-*"))
    assert set(redis_server.keys("tenant-a:*")) == {"tenant-a:sessions:e:same-id", "tenant-a:sessions:lru",
                                                     "tenant-a:counter:rpm"}


def test_redis_with_a_password(tmp_path):
    with RedisServer(tmp_path / "auth", password="s3cret-pass") as server:
        good = RedisStore(server.url, key_prefix="p:", password="s3cret-pass")
        bad = RedisStore(server.url, key_prefix="p:", password=None)

        async def scenario():
            await good.put(SESSIONS, "k", b"v")
            assert await good.get(SESSIONS, "k") == b"v"
            with pytest.raises(StoreError) as refused:
                await bad.get(SESSIONS, "k")
            await good.aclose()
            await bad.aclose()
            return str(refused.value)

        message = run(scenario())
        assert "s3cret-pass" not in message


def test_urls_are_logged_without_credentials():
    assert safe_url("redis://user:pw@redis.internal:6380/2") == "redis://redis.internal:6380/2"
    assert safe_url("rediss://:pw@r.example:6379/0?ssl_ca_certs=/ca.pem&password=pw") == "rediss://r.example:6379/0"
    assert safe_url("unix:///run/redis.sock?password=pw") == "unix:///run/redis.sock"


def test_an_outage_is_a_store_error_at_once_and_the_store_recovers(tmp_path):
    server = RedisServer(tmp_path / "outage").start()
    store = RedisStore(server.url, key_prefix="o:")

    async def scenario():
        await store.start()
        await store.put(SESSIONS, "k", b"v")
        server.stop()
        started = time.monotonic()
        for _ in range(20):  # the first fails on the socket, the rest are refused without trying
            with pytest.raises(StoreError):
                await store.get(SESSIONS, "k")
        elapsed = time.monotonic() - started
        server.start()
        # Back once the pause after the failure has passed; the restarted server is empty.
        while True:
            try:
                await store.put(SESSIONS, "k", b"again")
                break
            except StoreError:
                assert time.monotonic() - started < 15, "the store never came back"
                await asyncio.sleep(0.05)
        assert await store.get(SESSIONS, "k") == b"again"
        await store.aclose()
        return elapsed

    try:
        elapsed = run(scenario())
    finally:
        server.stop()
    assert elapsed < 20 * 0.25  # never a full operation timeout per refused call


def test_an_unresponsive_redis_costs_one_deadline_then_nothing(tmp_path):
    """A server that accepts and never answers (a hung Redis, a black-holed network)."""
    path = tmp_path / "silent.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen(16)
    store = RedisStore(f"unix://{path}", key_prefix="s:", timeout_s=0.2)

    async def scenario():
        started = time.monotonic()
        await store.start()  # a hung server at start-up: one deadline, logged, no exception
        first = time.monotonic() - started
        started = time.monotonic()
        with pytest.raises(StoreError):
            await store.get(SESSIONS, "k")
        second = time.monotonic() - started
        await store.aclose()
        return first, second

    try:
        first, second = run(scenario())
    finally:
        listener.close()
    assert first >= 0.2 and second < first / 4


def test_rediss_url_speaks_tls(tmp_path, redis_server):
    """`rediss://` through a TLS endpoint this test owns (in front of the real server)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    proxy = _TlsToUnix(cert, key, redis_server.socket)
    seen_tls = []
    proxy.on_handshake = seen_tls.append
    store = RedisStore(f"rediss://127.0.0.1:{proxy.port}/0?ssl_ca_certs={cert}", key_prefix="tls:")

    untrusting = RedisStore(f"rediss://127.0.0.1:{proxy.port}/0", key_prefix="tls:")  # system CAs only

    async def scenario():
        await store.put(SESSIONS, "k", b"over tls")
        assert await store.get(SESSIONS, "k") == b"over tls"
        with pytest.raises(StoreError):  # a certificate it cannot verify: refused, not trusted
            await untrusting.get(SESSIONS, "k")
        await store.aclose()
        await untrusting.aclose()

    try:
        run(scenario())
    finally:
        proxy.close()
    assert seen_tls and seen_tls[0].startswith("TLS")


class _TlsToUnix:
    """A TLS listener on 127.0.0.1 (a port it binds itself) relaying bytes to a Unix socket."""

    def __init__(self, cert: Path, key: Path, target: Path):
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.target = target
        self.on_handshake = lambda version: None
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self._stop:
            try:
                raw, _ = self.server.accept()
            except OSError:
                return
            try:
                client = self.context.wrap_socket(raw, server_side=True)
            except (ssl.SSLError, OSError):
                raw.close()
                continue
            self.on_handshake(client.version() or "")
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(str(self.target))
            threading.Thread(target=_pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=_pipe, args=(upstream, client), daemon=True).start()

    def close(self):
        self._stop = True
        self.server.close()


def _pipe(source, sink):
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for s in (source, sink):
            try:
                s.close()
            except OSError:
                pass


async def _until(check, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


# --------------------------------------------------------------------------- windows


def test_fixed_windows_name_the_window_and_when_it_resets():
    w = fixed_window("rpm:key-1", 60, 1_800_000_030.5)
    assert w.key == "rpm:key-1:w60:30000000" and w.resets_at == 1_800_000_060.0 and w.ttl_s == 120.0
    assert fixed_window("rpm:key-1", 60, 1_800_000_059.9).key == w.key
    assert fixed_window("rpm:key-1", 60, 1_800_000_060.0).key == "rpm:key-1:w60:30000001"


def test_calendar_periods_are_utc_days_and_months():
    # 2027-01-31 23:30:00 UTC
    now = 1_801_438_200.0
    day = calendar_period("budget:team", "day", now)
    assert day.key == "budget:team:2027-01-31" and day.resets_at == 1_801_440_000.0
    month = calendar_period("budget:team", "month", now)
    assert month.key == "budget:team:2027-01" and month.resets_at == 1_801_440_000.0
    december = calendar_period("b", "month", 1_796_083_200.0)  # 2026-12-01 00:00 UTC
    assert december.key == "b:2026-12" and december.resets_at == 1_798_761_600.0  # 2027-01-01
    with pytest.raises(ValueError):
        calendar_period("b", "week", now)
