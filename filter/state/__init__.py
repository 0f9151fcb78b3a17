"""The shared store: sessions, rate-limit counters, budgets and stored responses.

`open_store` picks the implementation from `gateway.store`: no URL → the embedded store, one
SQLite file in the gateway's runtime directory shared by its workers (`embedded.py`); a URL →
Redis, shared by every replica that names it (`redis_store.py`). The contract is in `base.py`.
"""

from __future__ import annotations

from pathlib import Path

from filter.state.base import Increment, Store, StoreError, Table, ValueTooLarge

__all__ = ["Increment", "Store", "StoreError", "Table", "ValueTooLarge", "open_store"]


def open_store(url: str | None, *, key_prefix: str, password: str | None, directory: str | Path) -> Store:
    """The configured store. Opening connects to nothing: the first operation does."""
    if url is None:
        from filter.state.embedded import EmbeddedStore

        return EmbeddedStore(directory)
    from filter.state.redis_store import RedisStore

    return RedisStore(url, key_prefix=key_prefix, password=password)
