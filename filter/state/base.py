"""The shared store's contract: what sessions, rate limits, budgets and stored responses need.

Two kinds of data, both expiring:

- **Tables** (`Table`): bounded families of small values with one time-to-live, read by key —
  session pins (refreshed on every read), stored responses (not refreshed). When a table holds
  more than `max_entries`, the least recently used entries are evicted first.
- **Counters**: float totals that grow by `add` and vanish `ttl_s` after their first increment —
  fixed-window rate limits (requests, tokens) and budgets per period (`filter/state/windows.py`
  names the keys).

Every operation is a coroutine that answers, or raises `StoreError` (unreachable, timed out,
busy), within `OPERATION_TIMEOUT_S`. Callers degrade on it — a session routes cold, a limit fails
open — and never fail a request because of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol, Sequence

# The longest any store operation takes before it gives up: Envoy's ext_proc message timeout
# leaves room for the operations a request makes (filter/render/bootstrap.py).
OPERATION_TIMEOUT_S = 0.25

_TABLE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
MAX_KEY_CHARS = 512


class StoreError(Exception):
    """The store could not answer (connection, timeout, lock, protocol). The message is safe to log."""


class ValueTooLarge(ValueError):
    """A value over its table's `max_value_bytes`: not stored (a caller's limit, not an outage)."""


@dataclass(frozen=True, slots=True)
class Table:
    name: str  # part of every key: lower-case letters, digits, underscores
    ttl_s: float  # an entry not written (or, with refresh_on_read, not read) for this long is gone
    max_entries: int  # beyond this the least recently used entries are evicted
    refresh_on_read: bool = True
    max_value_bytes: int = 64 * 1024

    def __post_init__(self) -> None:
        if not _TABLE_NAME.match(self.name):
            raise ValueError(f"table name {self.name!r} must match {_TABLE_NAME.pattern}")
        if self.ttl_s <= 0 or self.max_entries < 1 or self.max_value_bytes < 1:
            raise ValueError("a table needs a positive ttl_s, max_entries and max_value_bytes")


@dataclass(frozen=True, slots=True)
class Increment:
    key: str
    amount: float
    ttl_s: float  # from the counter's first increment; later ones do not extend it


class Store(Protocol):
    kind: str  # "embedded" | "redis": for logs and metrics labels

    async def start(self) -> None:
        """Get ready before the first request (open the file, reach the server). Never raises:
        a store that is not there yet is only logged, and requests degrade until it is."""
        ...

    async def get(self, table: Table, key: str) -> bytes | None:
        """The live value, or None. With `table.refresh_on_read` the entry's TTL starts again."""
        ...

    async def put(self, table: Table, key: str, value: bytes) -> None:
        """Create or replace an entry (its TTL starts now); evicts beyond `table.max_entries`."""
        ...

    async def put_if_absent(self, table: Table, key: str, value: bytes) -> bytes:
        """Store `value` unless a live entry exists; return what the key holds afterwards (the
        first writer wins, so concurrent writers agree). A live entry found is refreshed."""
        ...

    async def delete(self, table: Table, key: str) -> None:
        ...

    async def add(self, increments: Sequence[Increment]) -> list[float]:
        """Add to counters in one round trip; each counter's new total, in order. A counter whose
        TTL passed starts again from zero."""
        ...

    async def read(self, keys: Sequence[str]) -> list[float]:
        """Current totals of counters, in order; 0.0 for missing or expired ones."""
        ...

    async def aclose(self) -> None:
        ...


def check_key(key: str) -> str:
    if not key or len(key) > MAX_KEY_CHARS:
        raise ValueError(f"store keys are 1 to {MAX_KEY_CHARS} characters")
    return key


def check_value(table: Table, value: bytes) -> bytes:
    if len(value) > table.max_value_bytes:
        raise ValueTooLarge(f"{len(value)} bytes is over table {table.name!r}'s limit of {table.max_value_bytes}")
    return value
