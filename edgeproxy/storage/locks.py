"""Cross-process fill locks: one worker in the fleet fetches a missing object, the rest wait.

Request collapsing inside one process is the proxy's job; this extends it across workers and
PoPs sharing a Redis. The lock is advisory and best-effort: any doubt (contention, timeout, Redis
down) answers "not acquired" and the caller waits briefly or simply goes to origin, so a lock
problem can cost an extra origin fetch but never a failed request.

Each acquisition carries a fencing token, increasing per key, so a holder that stalled past its
TTL cannot release (or be confused with) the lock a later holder took.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from redis.exceptions import NoScriptError

from edgeproxy.storage.redisconn import BACKEND_ERRORS, DEFAULT_TIMEOUT
from edgeproxy.storage.resp import Arg, Channel, Command

log = logging.getLogger(__name__)

# KEYS[1] lock, KEYS[2] per-key fence counter (same hash slot); ARGV[1] lock TTL ms,
# ARGV[2] counter TTL ms. Atomic, so a token is only drawn when the lock is actually taken.
_ACQUIRE = """
if redis.call('exists', KEYS[1]) == 1 then return false end
local token = redis.call('incr', KEYS[2])
redis.call('pexpire', KEYS[2], ARGV[2])
redis.call('set', KEYS[1], token, 'PX', ARGV[1])
return token
"""

# Compare-and-delete: only the holder of the current token may release.
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""

FENCE_TTL_MS = 24 * 3600 * 1000
"""How long a key's token counter outlives its last acquisition. Tokens only need to increase
across holders that can overlap, i.e. within a lock TTL; a day is far beyond any of those."""

POLL_INTERVAL = 0.01


@dataclass(slots=True)
class Lease:
    """A fill lock this process holds. A store write carrying it releases it in the same round
    trip, right after the objects (``released`` then says so); otherwise its holder calls
    :meth:`FillLock.release`. On a Redis Cluster the lock and the objects may live on different
    nodes, written in either order: a waiter may then find the lock gone a moment before the
    object lands and fetch for itself, the lock's documented worst case."""

    lock_key: str
    token: int
    released: bool = False

    def release_command(self) -> Command:
        """The release, for a pipeline on the lock's channel. EVAL, not EVALSHA: a NOSCRIPT
        inside a pipeline could not be retried without another round trip."""
        return ("EVAL", _RELEASE, 1, self.lock_key, self.token)


class Script:
    """A Lua script run by its SHA1, sent whole once when Redis does not know it (NOSCRIPT)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def __call__(self, channel: Channel, keys: list[str], args: list[Arg]) -> Any:
        try:
            return await channel.call("EVALSHA", self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await channel.call("EVAL", self.source, len(keys), *keys, *args)


class FillLock:
    def __init__(self, channel: Channel, namespace: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._channel = channel
        self._namespace = namespace
        self._timeout = timeout
        self._acquire = Script(_ACQUIRE)
        self._release = Script(_RELEASE)

    def _keys(self, key: bytes) -> list[str]:
        # The {hash tag} keeps a lock and its counter in one Redis Cluster slot.
        base = f"{self._namespace}:lock:{{{key.hex()}}}"
        return [base, base + ":fence"]

    async def acquire(self, key: bytes, ttl_ms: int) -> int | None:
        """The fencing token if this caller now holds the lock for ``ttl_ms``; None when someone
        else holds it or Redis did not answer within the timeout."""
        if ttl_ms <= 0:
            raise ValueError(f"lock ttl_ms must be positive, got {ttl_ms}")
        try:
            async with asyncio.timeout(self._timeout):
                token = await self._acquire(self._channel, self._keys(key), [ttl_ms, FENCE_TTL_MS])
        except BACKEND_ERRORS as exc:
            log.debug("fill lock acquire failed: %r", exc)
            return None
        return int(token) if token is not None else None

    def lease(self, key: bytes, token: int) -> Lease:
        """The lock on ``key`` held with ``token``, for a store write to release."""
        return Lease(self._keys(key)[0], token)

    async def warm_up(self) -> None:
        """Load both scripts into Redis ahead of the first request (errors ignored: the first
        real call then loads them itself)."""
        try:
            async with asyncio.timeout(1.0):
                for script in (self._acquire, self._release):
                    await self._channel.call("SCRIPT", "LOAD", script.source)
        except BACKEND_ERRORS as exc:
            log.debug("fill lock warm-up failed: %r", exc)

    async def release(self, key: bytes, token: int) -> bool:
        """True when this token still held the lock and it is now released; False when it had
        expired, someone else holds it, or Redis did not answer (the TTL then frees it)."""
        try:
            async with asyncio.timeout(self._timeout):
                released = await self._release(self._channel, self._keys(key)[:1], [token])
        except BACKEND_ERRORS as exc:
            log.debug("fill lock release failed: %r", exc)
            return False
        return released == 1

    async def wait_released(self, key: bytes, timeout: float) -> bool:
        """Poll until the lock on ``key`` is gone (True) or ``timeout`` seconds pass (False).
        A Redis error also answers False: the caller stops waiting and goes to origin."""
        lock_key = self._keys(key)[0]
        deadline = time.monotonic() + timeout
        while True:
            try:
                async with asyncio.timeout(self._timeout):
                    held = await self._channel.call("EXISTS", lock_key)
            except BACKEND_ERRORS:
                return False
            if not held:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            await asyncio.sleep(min(POLL_INTERVAL, remaining))
