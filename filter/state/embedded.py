"""The embedded store: one SQLite file in the gateway's private runtime directory, in WAL mode,
shared by every filter worker of the machine. No service to run.

Why SQLite (measured with `python -m bench.store`, figures in docs/design-notes.md): every worker
sees every other's writes at once (Envoy spreads the steps of one agent loop across workers), a
write costs tens of microseconds, WAL lets readers and the one writer proceed together, and it
ships with Python. The state is disposable (pins, counters, stored answers live minutes), so
`synchronous=OFF`: nothing waits on the disk. Each operation is one short transaction run on a
single thread of the worker, so a lock held by another worker never stalls the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

from filter.state.base import Increment, StoreError, Table, check_key, check_value

log = logging.getLogger("switchyard.state")

FILE_NAME = "state.sqlite3"
# A writer waits this long for another worker's transaction (they take microseconds).
BUSY_TIMEOUT_MS = 1000
# Expired counters are swept every this many increments (a bounded, indexed delete).
SWEEP_EVERY = 256
SWEEP_BATCH = 512

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


class EmbeddedStore:
    kind = "embedded"

    def __init__(self, directory: str | Path, *, clock: Callable[[], float] = time.time):
        self.path = Path(directory) / FILE_NAME
        self._clock = clock
        # One thread per worker: SQLite calls block, the event loop must not.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="switchyard-store")
        self._db: sqlite3.Connection | None = None
        self._adds = 0

    # ------------------------------------------------------------------ plumbing

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                 check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=OFF")
            db.executescript(_SCHEMA)
            self._db = db
        return self._db

    async def _run(self, operation, *args, write: bool = True):
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, self._transaction, operation, args, write)
        except sqlite3.Error as exc:
            raise StoreError(f"embedded store {self.path}: {exc}") from None
        except RuntimeError as exc:  # the executor is shut down: the worker is stopping
            raise StoreError(f"embedded store closed: {exc}") from None

    def _transaction(self, operation, args, write: bool):
        db = self._connect()
        # IMMEDIATE: a writer takes the lock up front, so two workers never deadlock upgrading a read.
        db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            result = operation(db, self._clock(), *args)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return result

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
            if self._db is not None:
                self._db.close()
                self._db = None
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
