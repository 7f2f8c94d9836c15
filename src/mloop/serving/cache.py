"""The prediction cache: identical rows for the same model version are answered from memory.

The key is `mloop:pred:<model name>:<version>:<sha256 of the row's canonical JSON>`, so a new
model version never sees another version's answers, and the same row sent as an object or as
an array in signature order is one entry. Entries live `MLOOP_CACHE_TTL_SECONDS`.

`MemoryCache` (the default) is an LRU in the server process. `RedisCache` (`MLOOP_CACHE_URL=
redis://...`) is shared by workers and replicas; when Redis is down it answers "miss" and stops
asking for a few seconds, so an outage costs cache hits, never errors.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import orjson

from mloop.errors import require
from mloop.monitoring.prediction_log import input_digest

log = logging.getLogger("mloop.serving")

Entry = tuple[Any, list[float] | None]  # (label, class probabilities)
MISS = None
RETRY_AFTER_SECONDS = 5.0


def cache_key(name: str, version: str, row: dict[str, Any]) -> str:
    """The cache key of one row (a dict by column name) for one model version."""
    return f"mloop:pred:{name}:{version}:{input_digest(row)}"


class MemoryCache:
    """An in-process LRU with a TTL per entry."""

    kind = "memory"

    def __init__(self, size: int, ttl: float) -> None:
        self.size = size
        self.ttl = ttl
        self._entries: OrderedDict[str, tuple[float, Entry]] = OrderedDict()

    async def get_many(self, keys: Sequence[str]) -> list[Entry | None]:
        now = time.monotonic()
        out: list[Entry | None] = []
        entries = self._entries
        for key in keys:
            found = entries.get(key)
            if found is None or found[0] < now:
                if found is not None:
                    del entries[key]
                out.append(MISS)
                continue
            entries.move_to_end(key)
            out.append(found[1])
        return out

    async def set_many(self, items: Sequence[tuple[str, Entry]]) -> None:
        expires = time.monotonic() + self.ttl
        entries = self._entries
        for key, entry in items:
            entries[key] = (expires, entry)
            entries.move_to_end(key)
        while len(entries) > self.size:
            entries.popitem(last=False)

    @property
    def available(self) -> bool:
        return True

    async def close(self) -> None:
        self._entries.clear()


class RedisCache:
    """Entries in Redis (`SET key value EX ttl`, `MGET`); a Redis outage reads as misses."""

    kind = "redis"

    def __init__(self, url: str, ttl: float, *, timeout: float = 0.25) -> None:
        aioredis = require("redis.asyncio", "redis")
        self.url = url
        self.ttl = max(int(round(ttl)), 1)
        self._client = aioredis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self._down_until = 0.0

    @property
    def available(self) -> bool:
        """False for a few seconds after an error (no request waits on a dead Redis)."""
        return time.monotonic() >= self._down_until

    async def get_many(self, keys: Sequence[str]) -> list[Entry | None]:
        if not self.available:
            raise CacheUnavailable("redis cache is down")
        try:
            values = await self._client.mget(list(keys))
        except Exception as exc:
            self._trip(exc)
            raise CacheUnavailable(str(exc)) from exc
        return [_decode(v) if v is not None else MISS for v in values]

    async def set_many(self, items: Sequence[tuple[str, Entry]]) -> None:
        if not self.available or not items:
            return
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for key, entry in items:
                    pipe.set(key, orjson.dumps(entry), ex=self.ttl)
                await pipe.execute()
        except Exception as exc:
            self._trip(exc)

    def _trip(self, exc: BaseException) -> None:
        if self.available:
            log.warning(
                "prediction cache at %s unavailable (%s); serving without it", _safe(self.url), exc
            )
        self._down_until = time.monotonic() + RETRY_AFTER_SECONDS

    async def close(self) -> None:
        with contextlib.suppress(Exception):  # closing a dead connection
            await self._client.aclose()


class CacheUnavailable(Exception):
    """The shared cache cannot be reached; callers treat every row as a miss."""


def open_cache(url: str, ttl: float, size: int) -> MemoryCache | RedisCache | None:
    """The configured cache, or None when `ttl` is 0 (cache off)."""
    if ttl <= 0:
        return None
    if url:
        return RedisCache(url, ttl)
    return MemoryCache(size, ttl)


def _decode(raw: bytes) -> Entry | None:
    try:
        label, probabilities = orjson.loads(raw)
    except (orjson.JSONDecodeError, ValueError, TypeError):
        return MISS
    return label, probabilities


def _safe(url: str) -> str:
    """The URL without a password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
