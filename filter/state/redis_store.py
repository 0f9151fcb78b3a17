"""The store across replicas: Redis (`gateway.store.url`: `redis://`, `rediss://` for TLS, `unix://`).

Every key starts with `gateway.store.key_prefix`, so several gateways (tenants) share one Redis
without seeing each other's state. Each operation is one round trip: a small Lua script keeps a
table's entry, its time-to-live and its least-recently-used index consistent, with Redis's own
clock, so replicas with slightly different clocks agree.

An outage must never stall or fail a request: no client-side retries, a short deadline per
operation, and after a failure the store answers `StoreError` at once for a short, growing pause
before it tries Redis again (so a dead Redis costs nothing per request). Redis Cluster is not
supported (a script touches a table's entry and its index together).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable, Sequence
from urllib.parse import urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from filter.state.base import OPERATION_TIMEOUT_S, Increment, StoreError, Table, check_key, check_value

log = logging.getLogger("switchyard.state")

MAX_CONNECTIONS = 64
# After a failure Redis is not asked again for this long, doubling up to the maximum.
FIRST_PAUSE_S = 0.5
MAX_PAUSE_S = 5.0

# Lua turns numbers into strings with 14 digits: microseconds need all 16, written out by hand.
_NOW_US = """
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local function int(x) return string.format('%.0f', x) end
"""

# Index scores are Redis's clock in microseconds: the least recently used entry has the lowest.
# KEYS: entry, index. ARGV: ttl_ms. A live entry's TTL and recency start again.
_GET_REFRESH = _NOW_US + """
local v = redis.call('GET', KEYS[1])
if v then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  redis.call('ZADD', KEYS[2], int(now), KEYS[1])
  redis.call('PEXPIRE', KEYS[2], ARGV[1])
end
return v
"""

# KEYS: entry, index. ARGV: value, ttl_ms, max_entries, only_if_absent ("1"/"0").
_PUT = _NOW_US + """
local ttl = tonumber(ARGV[2])
if ARGV[4] == '1' then
  local current = redis.call('GET', KEYS[1])
  if current then
    redis.call('PEXPIRE', KEYS[1], ttl)
    redis.call('ZADD', KEYS[2], int(now), KEYS[1])
    return current
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
redis.call('ZADD', KEYS[2], int(now), KEYS[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', int(now - ttl * 1000))
local excess = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[3])
if excess > 0 then
  local oldest = redis.call('ZPOPMIN', KEYS[2], excess)
  for i = 1, #oldest, 2 do redis.call('DEL', oldest[i]) end
end
redis.call('PEXPIRE', KEYS[2], ttl)
return ARGV[1]
"""

# KEYS: counters. ARGV: amount, ttl_ms for each. The TTL is set by the first increment only.
_ADD = """
local totals = {}
for i, key in ipairs(KEYS) do
  totals[i] = redis.call('INCRBYFLOAT', key, ARGV[2 * i - 1])
  if redis.call('PTTL', key) < 0 then redis.call('PEXPIRE', key, ARGV[2 * i]) end
end
return totals
"""


def safe_url(url: str) -> str:
    """The URL without credentials or query (which may carry a password): for logs."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix://{parts.path}"
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class _Pause:
    """After a failure, refuse at once for a while instead of waiting on a dead server."""

    def __init__(self, clock: Callable[[], float]):
        self._clock = clock
        self._until = 0.0
        self._length = 0.0

    def check(self, where: str) -> None:
        if self._length and self._clock() < self._until:
            raise StoreError(f"{where} is unreachable; trying again in {self._until - self._clock():.1f} s")

    def failed(self, where: str, reason: str) -> None:
        first = self._length == 0.0
        self._length = min(MAX_PAUSE_S, max(FIRST_PAUSE_S, self._length * 2))
        self._until = self._clock() + self._length
        if first:
            log.warning("shared store %s failed (%s): state-dependent features degrade until it answers", where, reason)

    def succeeded(self, where: str) -> None:
        if self._length:
            log.warning("shared store %s answers again", where)
            self._length = 0.0


class RedisStore:
    kind = "redis"

    def __init__(self, url: str, *, key_prefix: str = "switchyard:", password: str | None = None,
                 timeout_s: float = OPERATION_TIMEOUT_S, clock: Callable[[], float] = time.monotonic):
        self.where = safe_url(url)
        self._prefix = key_prefix
        self._timeout_s = timeout_s
        self._pause = _Pause(clock)
        pool = BlockingConnectionPool.from_url(
            url, password=password, max_connections=MAX_CONNECTIONS, timeout=timeout_s,
            socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0), decode_responses=False)
        self._redis = Redis(connection_pool=pool)
        self._get_refresh = self._redis.register_script(_GET_REFRESH)
        self._put = self._redis.register_script(_PUT)
        self._add = self._redis.register_script(_ADD)

    def _keys(self, table: Table, key: str) -> list[str]:
        return [f"{self._prefix}{table.name}:e:{key}", f"{self._prefix}{table.name}:lru"]

    async def _call(self, operation, *args, **kwargs):
        self._pause.check(self.where)
        try:
            async with asyncio.timeout(self._timeout_s):
                result = await operation(*args, **kwargs)
        except (RedisError, OSError, TimeoutError) as exc:
            self._pause.failed(self.where, type(exc).__name__ if isinstance(exc, TimeoutError) else str(exc))
            raise StoreError(f"{self.where}: {type(exc).__name__}: {exc}") from None
        self._pause.succeeded(self.where)
        return result

    async def start(self) -> None:
        try:
            await self._call(self._redis.ping)  # connects, authenticates, and loads nothing
        except StoreError:
            pass  # logged by the pause; requests degrade until Redis answers

    # ------------------------------------------------------------------ tables

    async def get(self, table: Table, key: str) -> bytes | None:
        keys = self._keys(table, check_key(key))
        if table.refresh_on_read:
            return await self._call(self._get_refresh, keys=keys, args=[_ms(table.ttl_s)])
        return await self._call(self._redis.get, keys[0])

    async def put(self, table: Table, key: str, value: bytes) -> None:
        keys = self._keys(table, check_key(key))
        await self._call(self._put, keys=keys, args=[check_value(table, value), _ms(table.ttl_s), table.max_entries, "0"])

    async def put_if_absent(self, table: Table, key: str, value: bytes) -> bytes:
        keys = self._keys(table, check_key(key))
        return await self._call(
            self._put, keys=keys, args=[check_value(table, value), _ms(table.ttl_s), table.max_entries, "1"])

    async def delete(self, table: Table, key: str) -> None:
        entry, index = self._keys(table, check_key(key))
        pipe = self._redis.pipeline(transaction=True).delete(entry).zrem(index, entry)
        await self._call(pipe.execute)

    # ------------------------------------------------------------------ counters

    async def add(self, increments: Sequence[Increment]) -> list[float]:
        if not increments:
            return []
        keys = [f"{self._prefix}counter:{check_key(inc.key)}" for inc in increments]
        args = [a for inc in increments for a in (repr(float(inc.amount)), _ms(inc.ttl_s))]
        totals = await self._call(self._add, keys=keys, args=args)
        return [float(t) for t in totals]

    async def read(self, keys: Sequence[str]) -> list[float]:
        if not keys:
            return []
        values = await self._call(self._redis.mget, [f"{self._prefix}counter:{check_key(k)}" for k in keys])
        return [float(v) if v is not None else 0.0 for v in values]

    async def aclose(self) -> None:
        await self._redis.aclose()


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
