"""L2: cache objects in Redis (or Redis Cluster), shared by every worker of a PoP.

Redis is an optimisation, never a dependency: each call is bounded by ``timeout`` and a failure
is a miss (get) or a dropped write (put), counted in :meth:`RedisStore.stats`. After
``failure_threshold`` consecutive failures a circuit breaker stops calling Redis altogether (so
a dead Redis costs nothing per request) and lets one probe through per cool-down to find it back.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from edgeproxy.cache.entry import StoredObject
from edgeproxy.storage.base import StoreUnavailable
from edgeproxy.storage.breaker import Admission, CircuitBreaker
from edgeproxy.storage.codec import CodecError, decode, encode
from edgeproxy.storage.locks import Lease
from edgeproxy.storage.redisconn import BACKEND_ERRORS, DEFAULT_TIMEOUT, RedisClient, connect
from edgeproxy.storage.resp import Channel, Command, data_channel

log = logging.getLogger(__name__)
T = TypeVar("T")

CLEAR_TIMEOUT = 30.0
"""Purge-all scans the whole namespace; an admin operation, so it gets a longer bound."""


class CallOutcome(enum.Enum):
    OK = "ok"
    REJECTED = "rejected"
    """The circuit breaker is open: Redis was not called."""
    TIMEOUT = "timeout"
    ERROR = "error"


CallHook = Callable[[str, CallOutcome, float], None]
"""(operation, outcome, seconds) after each Redis call."""


def _ttl_ms(ttl: float) -> int:
    return math.ceil(ttl * 1000)


class RedisStore:
    """Implements ``Store`` on Redis with keys ``{namespace}:o:{hex key}``.

    Reads and writes go over ``channel`` (``resp.data_channel``: a few multiplexed connections
    for plain Redis), which the fill locks share; ``client`` (redis-py) serves the admin paths
    (clear, ping). Neither has a socket timeout of its own: every call is bounded here with
    ``asyncio.timeout``.
    """

    def __init__(
        self,
        url: str,
        *,
        namespace: str = "ep",
        timeout: float = DEFAULT_TIMEOUT,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"Redis timeout must be positive seconds, got {timeout}")
        self.client: RedisClient = connect(url, timeout=timeout, calls_bounded=True)
        self.channel: Channel = data_channel(url, self.client)
        self.namespace = namespace
        self.timeout = timeout
        self.breaker = breaker if breaker is not None else CircuitBreaker()
        self._prefix = f"{namespace}:o:"
        self._counts: Counter[str] = Counter()
        self.on_call: CallHook | None = None
        """Told every call's operation, outcome and duration (the proxy's L2 metrics)."""

    def redis_key(self, key: bytes) -> str:
        return self._prefix + key.hex()

    async def get(self, key: bytes) -> StoredObject | None:
        outcome, data = await self._call("get", self.channel.call, "GET", self.redis_key(key))
        if outcome is not CallOutcome.OK:
            return None
        if data is None:
            self._counts["misses"] += 1
            return None
        try:
            obj = decode(data)
        except CodecError as exc:
            self._counts["corrupt"] += 1
            log.warning("unreadable L2 object %s treated as a miss: %s", self.redis_key(key), exc)
            return None
        self._counts["hits"] += 1
        return obj

    async def put(self, key: bytes, obj: StoredObject, ttl: float) -> None:
        """SET with PX = ``ttl`` rounded up to whole milliseconds (Redis's expiry resolution)."""
        ttl_ms = _ttl_ms(ttl)
        if ttl_ms <= 0:
            await self.delete(key)
            return
        outcome, _ = await self._call("set", self.channel.call, "SET", self.redis_key(key), encode(obj), "PX", ttl_ms)
        self._counts["writes" if outcome is CallOutcome.OK else "dropped_writes"] += 1

    async def put_many(self, items: Sequence[tuple[bytes, StoredObject, float]], *, lease: Lease | None = None) -> None:
        """One pipeline (not a transaction: on a cluster the keys may live on different nodes),
        ending with the release of ``lease``, a fill lock on this client, after the objects."""
        if lease is None and len(items) == 1:
            await self.put(*items[0])  # one SET: ~5 µs of CPU less than a pipeline of one here
            return
        commands: list[Command] = []
        for key, obj, ttl in items:
            ttl_ms = _ttl_ms(ttl)
            if ttl_ms > 0:
                commands.append(("SET", self.redis_key(key), encode(obj), "PX", ttl_ms))
            else:
                commands.append(("UNLINK", self.redis_key(key)))
        if lease is not None:
            commands.append(lease.release_command())
        outcome, _ = await self._call("put_many", self.channel.pipeline, commands)
        self._counts["writes" if outcome is CallOutcome.OK else "dropped_writes"] += len(items)
        if lease is not None and outcome is CallOutcome.OK:
            lease.released = True

    async def delete(self, key: bytes) -> None:
        await self._call("unlink", self.channel.call, "UNLINK", self.redis_key(key))

    async def clear(self) -> None:
        """UNLINK every object of this namespace, in SCAN batches (never KEYS or FLUSHDB: other
        namespaces may share the database)."""
        try:
            async with asyncio.timeout(CLEAR_TIMEOUT):
                batch: list[Any] = []
                async for name in self.client.scan_iter(match=self._prefix + "*", count=1000):
                    batch.append(name)
                    if len(batch) >= 1000:
                        await self.client.unlink(*batch)
                        batch.clear()
                if batch:
                    await self.client.unlink(*batch)
        except BACKEND_ERRORS as exc:
            self._counts["errors"] += 1
            raise StoreUnavailable(f"could not clear Redis namespace {self.namespace!r}: {exc!r}") from exc

    async def ping(self) -> float | None:
        """Round-trip seconds of a PING (bypassing the breaker), or None when unreachable."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                await self.client.ping()  # type: ignore[misc]  # redis-py: sync-or-async return type
        except BACKEND_ERRORS:
            return None
        return time.perf_counter() - started

    async def close(self) -> None:
        await self.channel.close()
        await self.client.aclose()

    def stats(self) -> dict[str, Any]:
        return {
            **{name: self._counts[name] for name in (
                "hits", "misses", "corrupt", "writes", "dropped_writes", "timeouts", "errors", "rejected",
            )},
            "breaker": self.breaker.state.value,
            "breaker_opened": self.breaker.opened,
        }

    async def _call(
        self, operation: str, command: Callable[..., Awaitable[T]], *args: Any
    ) -> tuple[CallOutcome, T | None]:
        """Run one Redis call through the breaker, bounded by ``timeout``, never raising a
        backend error; ``operation`` names it for metrics."""
        started = time.perf_counter()
        outcome, result = await self._attempt(command, *args)
        if self.on_call is not None:
            self.on_call(operation, outcome, time.perf_counter() - started)
        return outcome, result

    async def _attempt(self, command: Callable[..., Awaitable[T]], *args: Any) -> tuple[CallOutcome, T | None]:
        if self.breaker.admit(time.monotonic()) is Admission.REJECT:
            self._counts["rejected"] += 1
            return CallOutcome.REJECTED, None
        try:
            async with asyncio.timeout(self.timeout):
                result = await command(*args)
        except ResponseError as exc:
            # The server answered: Redis is alive, so this must not trip the breaker.
            self.breaker.record_success()
            self._counts["errors"] += 1
            log.warning("Redis refused a command: %s", exc)
            return CallOutcome.ERROR, None
        except (TimeoutError, RedisTimeoutError):
            self.breaker.record_failure(time.monotonic())
            self._counts["timeouts"] += 1
            return CallOutcome.TIMEOUT, None
        except BACKEND_ERRORS as exc:
            self.breaker.record_failure(time.monotonic())
            self._counts["errors"] += 1
            log.debug("Redis call failed: %r", exc)
            return CallOutcome.ERROR, None
        self.breaker.record_success()
        return CallOutcome.OK, result
