"""The embedded store: one SQLite file in the gateway's private runtime directory, in WAL mode,
shared by every filter worker of the machine. No service to run.

Why SQLite (measured with `python -m bench.store`, figures in docs/design-notes.md): every worker
sees every other's writes at once (Envoy spreads the steps of one agent loop across workers), an
operation costs about ten microseconds, WAL lets readers and the one writer proceed together, and
it ships with Python. The state is disposable (pins, counters, stored answers live minutes), so
`synchronous=OFF`: nothing waits on the disk.

Each operation is one short transaction, tried first on the event loop with a connection that
never waits for a lock: a thread hop would cost four times the operation. When another worker
holds the write lock at that moment (its transactions take microseconds), the operation is done
instead on the worker's store thread, which may wait; the event loop never does. WAL checkpoints
run on that thread too, never inside a request's commit.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

from filter.state.base import OPERATION_TIMEOUT_S, Increment, StoreError, Table, check_key, check_value

log = logging.getLogger("switchyard.state")

FILE_NAME = "state.sqlite3"
# A writer waits this long for another worker's transaction (they take microseconds).
BUSY_TIMEOUT_MS = 1000
# Expired counters are swept every this many increments (a bounded, indexed delete).
SWEEP_EVERY = 256
SWEEP_BATCH = 512
# The write-ahead log is folded back into the database on the store thread every this many writes.
CHECKPOINT_EVERY = 512

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    tbl TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, used REAL NOT NULL,
    PRIMARY KEY (tbl, key)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entries_by_use ON entries (tbl, used);
CREATE TABLE IF NOT EXISTS sizes (tbl TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS entries_added AFTER INSERT ON entries BEGIN
    INSERT INTO sizes (tbl, n) VALUES (NEW.tbl, 1) ON CONFLICT (tbl) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS entries_removed AFTER DELETE ON entries BEGIN
    UPDATE sizes SET n = n - 1 WHERE tbl = OLD.tbl;
END;
CREATE TABLE IF NOT EXISTS counters (
    key TEXT PRIMARY KEY, value REAL NOT NULL, expires REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS counters_by_expiry ON counters (expires);
"""

# A live entry, its use time moved to now: one statement, no read-then-write race.
_TOUCH = "UPDATE entries SET used = ? WHERE tbl = ? AND key = ? AND used > ? RETURNING value"
_PEEK = "SELECT value FROM entries WHERE tbl = ? AND key = ? AND used > ?"
_UPSERT = ("INSERT INTO entries (tbl, key, value, used) VALUES (?, ?, ?, ?) "
           "ON CONFLICT (tbl, key) DO UPDATE SET value = excluded.value, used = excluded.used")
_ADD = """
INSERT INTO counters (key, value, expires) VALUES (?1, ?2, ?3)
ON CONFLICT (key) DO UPDATE SET
    value = CASE WHEN counters.expires <= ?4 THEN excluded.value ELSE counters.value + excluded.value END,
    expires = CASE WHEN counters.expires <= ?4 THEN excluded.expires ELSE counters.expires END
RETURNING value
"""


def _busy(exc: sqlite3.OperationalError) -> bool:
    return exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


class EmbeddedStore:
    kind = "embedded"

    def __init__(self, directory: str | Path, *, clock: Callable[[], float] = time.time,
                 timeout_s: float = OPERATION_TIMEOUT_S):
        self.path = Path(directory) / FILE_NAME
        self._clock = clock
        self._timeout_s = timeout_s  # what a request waits for the store thread at most
        # The store thread: operations that must wait for a lock, checkpoints, opening the file.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="switchyard-store")
        self._thread_db: sqlite3.Connection | None = None  # used on the store thread only
        self._loop_db: sqlite3.Connection | None = None  # used on the event loop only; never waits
        self._adds = 0
        self._writes = 0
        self.deferred = 0  # operations that found the lock taken and went to the store thread

    # ------------------------------------------------------------------ plumbing

    def _open(self, wait_s: float) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=wait_s, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA synchronous=OFF")
            db.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints run on the store thread (`_checkpoint`)
        except sqlite3.Error:
            db.close()
            raise
        return db

    def _open_loop_connection(self) -> None:
        """The event loop's connection, once the file exists. It never waits: while another worker
        is still setting the file up it may be refused ("locked"), and the next operation, on the
        store thread again, tries once more."""
        if self._loop_db is None:
            try:
                self._loop_db = self._open(0.0)
            except sqlite3.OperationalError as exc:
                if not _busy(exc):
                    raise

    def _thread_connection(self) -> sqlite3.Connection:
        if self._thread_db is None:
            db = self._open(max(BUSY_TIMEOUT_MS / 1000, self._timeout_s))
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(_SCHEMA)
            except sqlite3.Error:
                db.close()  # the next operation opens it again
                raise
            self._thread_db = db
        return self._thread_db

    async def _run(self, operation, *args, write: bool = True):
        try:
            if self._loop_db is not None:
                try:
                    result = self._transaction(self._loop_db, operation, args, write)
                except sqlite3.OperationalError as exc:
                    if not _busy(exc):
                        raise
                    self.deferred += 1
                    result = await self._on_thread(operation, args, write)
            else:  # the first operation opens the file (and may wait for another worker creating it)
                result = await self._on_thread(operation, args, write)
                self._open_loop_connection()
        except sqlite3.Error as exc:
            raise StoreError(f"embedded store {self.path}: {exc}") from None
        except RuntimeError as exc:  # the executor is shut down: the worker is stopping
            raise StoreError(f"embedded store closed: {exc}") from None
        if write:
            self._writes += 1
            if self._writes % CHECKPOINT_EVERY == 0:
                self._executor.submit(self._checkpoint)
        return result

    async def _on_thread(self, operation, args, write: bool):
        def run():
            deadline = time.monotonic() + self._timeout_s
            while True:
                try:
                    return self._transaction(self._thread_connection(), operation, args, write)
                except sqlite3.OperationalError as exc:
                    # A connection that meets another one setting the file up (switching it to
                    # WAL, building its index) gets "locked" at once, without SQLite's busy wait
                    # (about 3 % of opens by three workers at once): the store thread waits here.
                    if not _busy(exc) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.005)
        try:
            async with asyncio.timeout(self._timeout_s):  # the thread may go on; the request does not wait
                return await asyncio.get_running_loop().run_in_executor(self._executor, run)
        except TimeoutError:
            raise StoreError(f"embedded store {self.path}: no answer within {self._timeout_s * 1000:.0f} ms") from None

    def _checkpoint(self) -> None:
        try:  # PASSIVE: copies what no reader needs, waits for no one
            self._thread_connection().execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:
            log.debug("embedded store checkpoint: %s", exc)

    def _transaction(self, db: sqlite3.Connection, operation, args, write: bool):
        # IMMEDIATE: a writer takes the lock up front, so two workers never deadlock upgrading a read.
        db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            result = operation(db, self._clock(), *args)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:  # also a COMMIT that failed: nothing half-done stays open
                db.execute("ROLLBACK")
            raise
        return result

    async def start(self) -> None:
        """Create the file and its schema (another worker may be doing it too: this waits for it),
        so that the first request does not pay for it."""
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._thread_connection)
            self._open_loop_connection()
        except sqlite3.Error as exc:
            log.warning("embedded store %s cannot be opened (%s): sessions degrade until it can", self.path, exc)

    # ------------------------------------------------------------------ tables

    async def get(self, table: Table, key: str) -> bytes | None:
        return await self._run(_get, table, check_key(key), write=table.refresh_on_read)

    async def put(self, table: Table, key: str, value: bytes) -> None:
        await self._run(_put, table, check_key(key), check_value(table, value))

    async def put_if_absent(self, table: Table, key: str, value: bytes) -> bytes:
        return await self._run(_put_if_absent, table, check_key(key), check_value(table, value))

    async def delete(self, table: Table, key: str) -> None:
        await self._run(lambda db, now, t, k: db.execute("DELETE FROM entries WHERE tbl = ? AND key = ?", (t.name, k)),
                        table, check_key(key))

    # ------------------------------------------------------------------ counters

    async def add(self, increments: Sequence[Increment]) -> list[float]:
        for inc in increments:
            check_key(inc.key)
        self._adds += len(increments)
        sweep = self._adds >= SWEEP_EVERY
        if sweep:
            self._adds = 0
        return await self._run(_add, list(increments), sweep)

    async def read(self, keys: Sequence[str]) -> list[float]:
        return await self._run(_read, [check_key(k) for k in keys], write=False)

    async def aclose(self) -> None:
        def close():
            if self._thread_db is not None:
                self._thread_db.close()
                self._thread_db = None
        if self._loop_db is not None:
            self._loop_db.close()
            self._loop_db = None
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, close)
        finally:
            self._executor.shutdown(wait=False)


# -------------------------------------------------------------------- one transaction each


def _get(db: sqlite3.Connection, now: float, table: Table, key: str) -> bytes | None:
    if table.refresh_on_read:
        row = db.execute(_TOUCH, (now, table.name, key, now - table.ttl_s)).fetchone()
    else:
        row = db.execute(_PEEK, (table.name, key, now - table.ttl_s)).fetchone()
    return None if row is None else bytes(row[0])


def _put(db: sqlite3.Connection, now: float, table: Table, key: str, value: bytes) -> None:
    db.execute(_UPSERT, (table.name, key, value, now))
    _evict(db, now, table)


def _put_if_absent(db: sqlite3.Connection, now: float, table: Table, key: str, value: bytes) -> bytes:
    row = db.execute(_TOUCH, (now, table.name, key, now - table.ttl_s)).fetchone()
    if row is not None:
        return bytes(row[0])
    _put(db, now, table, key, value)
    return value


def _evict(db: sqlite3.Connection, now: float, table: Table) -> None:
    (size,) = db.execute("SELECT n FROM sizes WHERE tbl = ?", (table.name,)).fetchone()
    if size <= table.max_entries:
        return
    # Expired entries first, then the least recently used: both are index range scans.
    db.execute("DELETE FROM entries WHERE tbl = ? AND used <= ?", (table.name, now - table.ttl_s))
    (size,) = db.execute("SELECT n FROM sizes WHERE tbl = ?", (table.name,)).fetchone()
    if size > table.max_entries:
        db.execute("DELETE FROM entries WHERE tbl = ?1 AND key IN "
                   "(SELECT key FROM entries WHERE tbl = ?1 ORDER BY used LIMIT ?2)",
                   (table.name, size - table.max_entries))


def _add(db: sqlite3.Connection, now: float, increments: list[Increment], sweep: bool) -> list[float]:
    totals = [db.execute(_ADD, (inc.key, float(inc.amount), now + inc.ttl_s, now)).fetchone()[0] for inc in increments]
    if sweep:
        db.execute("DELETE FROM counters WHERE key IN (SELECT key FROM counters WHERE expires <= ? LIMIT ?)",
                   (now, SWEEP_BATCH))
    return totals


def _read(db: sqlite3.Connection, now: float, keys: list[str]) -> list[float]:
    found: dict[str, float] = {}
    for start in range(0, len(keys), 500):  # SQLite's bound-parameter limit
        chunk = keys[start:start + 500]
        marks = ",".join("?" * len(chunk))
        for key, value in db.execute(f"SELECT key, value FROM counters WHERE key IN ({marks}) AND expires > ?",
                                     (*chunk, now)):
            found[key] = value
    return [found.get(k, 0.0) for k in keys]
