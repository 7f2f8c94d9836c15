"""Per-identity rate limits as token buckets: in-process, or in Redis shared by replicas.

A bucket holds up to `burst` tokens and refills at `rate` per second; each request takes one.
The Redis bucket is one atomic Lua script using the server's clock, so every replica sees the
same budget. If Redis cannot be reached the request is let through and the failure is logged
(a limiter outage must not stop predictions).
"""

from __future__ import annotations

import logging
import threading
import time

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


def make_limiter(rate: float, burst: int, url: str = "") -> LocalBuckets | RedisBuckets | None:
    """The configured limiter, or None when `rate` is 0 (no limit)."""
    if rate <= 0:
        return None
    burst = burst or max(1, int(rate * 2))
    return RedisBuckets(url, rate, burst) if url else LocalBuckets(rate, burst)
