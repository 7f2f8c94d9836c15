"""Per-identity rate limits as token buckets: in-process, shared by workers, or in Redis.

A bucket holds up to `burst` tokens and refills at `rate` per second; each request takes one.
The workers of one `mloop serve --workers N` share a table of buckets in a memory-mapped file
in their common folder (`PROMETHEUS_MULTIPROC_DIR`, which `mloop serve` creates per run),
updated under an exclusive file lock, so the limit holds per identity across the workers.
The Redis bucket is one atomic Lua script using the server's clock, so every replica sees the
same budget. If Redis cannot be reached the request is let through and the failure is logged
(a limiter outage must not stop predictions).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import mmap
import os
import struct
import threading
import time
from pathlib import Path

from mloop.errors import require

log = logging.getLogger("mloop.security")

_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local data = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(data[1])
local ts = tonumber(data[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local wait = 0
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, tostring(wait)}
"""


class LocalBuckets:
    """Token buckets in this process (one server process, or tests)."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}

    async def take(self, key: str) -> float:
        """0 when allowed, else the seconds until a token is available."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate


class SharedBuckets:
    """Token buckets in a memory-mapped file shared by the processes of one machine.

    Slots of (key hash, tokens, time); a key is found by linear probing from its hash, and
    when every probed slot is taken the least recently used one is reused (a bucket unused
    for `burst / rate` seconds is full again, so forgetting it changes nothing). Times are
    CLOCK_MONOTONIC, which every process of the machine shares.
    """

    SLOTS = 4096
    PROBES = 32
    _SLOT = struct.Struct("<Qdd")
    FILE = "mloop-ratelimit.bin"

    def __init__(self, folder: str | Path, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self.path = Path(folder) / self.FILE
        size = self.SLOTS * self._SLOT.size
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            if os.fstat(self._fd).st_size < size:
                os.ftruncate(self._fd, size)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._map = mmap.mmap(self._fd, size)
        self._lock = threading.Lock()  # flock is per open file: threads of this process too

    async def take(self, key: str) -> float:
        """0 when allowed, else the seconds until a token is available."""
        wanted = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little") or 1
        with self._lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                return self._take(wanted, time.monotonic())
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _take(self, wanted: int, now: float) -> float:
        start = wanted % self.SLOTS
        chosen, oldest = None, None
        tokens, last = float(self.burst), now
        for step in range(self.PROBES):
            slot = (start + step) % self.SLOTS
            held, held_tokens, held_at = self._SLOT.unpack_from(self._map, slot * self._SLOT.size)
            if held == wanted:
                chosen = slot
                if held_at <= now:  # else the clock restarted (reboot): a fresh bucket
                    tokens, last = held_tokens, held_at
                break
            if held == 0:
                chosen = slot
                break
            if oldest is None or held_at < oldest[1]:
                oldest = (slot, held_at)
        if chosen is None:
            chosen = oldest[0] if oldest is not None else start
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self.rate
        self._SLOT.pack_into(self._map, chosen * self._SLOT.size, wanted, tokens, now)
        return wait

    async def close(self) -> None:
        self._map.close()
        os.close(self._fd)


class RedisBuckets:
    """Token buckets in Redis (`MLOOP_RATE_LIMIT_URL`), shared by every replica."""

    def __init__(self, url: str, rate: float, burst: int, prefix: str = "mloop:ratelimit:") -> None:
        redis_asyncio = require("redis.asyncio", "redis")
        self.url = url
        self.rate = rate
        self.burst = burst
        self.prefix = prefix
        self._client = redis_asyncio.Redis.from_url(url)
        self._script = self._client.register_script(_SCRIPT)
        self.failures = 0

    async def take(self, key: str) -> float:
        try:
            allowed, wait = await self._script(
                keys=[self.prefix + key], args=[self.rate, self.burst]
            )
        except Exception as exc:  # connection refused, timeout...: fail open, loudly
            self.failures += 1
            log.error("rate limiter at %s failed (request allowed): %s", self.url, exc)
            return 0.0
        return 0.0 if int(allowed) == 1 else float(wait)

    async def close(self) -> None:
        await self._client.aclose()


def make_limiter(
    rate: float, burst: int, url: str = "", shared_dir: str | Path | None = None
) -> LocalBuckets | SharedBuckets | RedisBuckets | None:
    """The configured limiter, or None when `rate` is 0 (no limit).

    Redis with `url`; else buckets in `shared_dir` shared by every process using that folder
    (the workers of one server); else buckets of this process only.
    """
    if rate <= 0:
        return None
    burst = burst or max(1, int(rate * 2))
    if url:
        return RedisBuckets(url, rate, burst)
    if shared_dir:
        return SharedBuckets(shared_dir, rate, burst)
    return LocalBuckets(rate, burst)
