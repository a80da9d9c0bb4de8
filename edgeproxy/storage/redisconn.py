"""Redis clients configured the one way this project wants them: short timeouts, no retries.

redis-py (since 6) retries a failed command three times with exponential backoff by default.
For a cache that is the wrong trade: a slow or dead L2 should become a miss at once, not a
request stuck in backoff, and retries multiply load on a Redis that is already struggling. So
every client made here carries ``Retry(NoBackoff(), retries=0)``; the caller bounds each call
with ``asyncio.timeout`` and a circuit breaker decides when to try again.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

RedisClient = Redis | RedisCluster
"""What every Redis user in edgeproxy (store, bus, locks, model registry) is handed."""

BACKEND_ERRORS: tuple[type[Exception], ...] = (RedisError, OSError)
"""Failures of the Redis backend or the network (``TimeoutError`` is an ``OSError``)."""

DEFAULT_TIMEOUT = 0.025
"""25 ms per call. The bound is wall time, so it also counts waiting for our own event loop,
not just Redis. Measured on the 2-core dev box at load average 3.7 (GET of a 2 KB value from one
uvloop process, warm pool): p99.9 0.3 ms alone, 1.7 ms with 20 calls in flight, 8.8 ms with 100;
25 ms leaves about 3x headroom over that, so load does not false-trip the breaker, while a Redis
that is really stalled costs a request less than a typical origin fetch. Past ~300 calls in
flight per process the loop itself is the queue (55 ms at 400) and L2 lookups start timing out:
the worker is saturated at that point and L1 + origin is the right degradation. Remote or TLS
Redis deployments should raise it (``serve --redis-timeout``)."""


_CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
_PLAIN_SCHEMES = {"redis", "rediss", "unix"}


def connect(url: str, *, timeout: float, calls_bounded: bool = False) -> RedisClient:
    """A client for ``url``: ``redis://``, ``rediss://``, ``unix://`` or ``redis+cluster://``
    (``rediss+cluster://`` for TLS) naming one seed node of a Redis Cluster.

    ``calls_bounded``: every call made on this client is wrapped in ``asyncio.timeout`` by its
    caller, so redis-py's own per-read socket timeout is left off. It is an ``asyncio.wait_for``,
    a Task per read: ~20 % of a command's CPU on the data path, bounding nothing ours does not.

    No connection is made here; the first command connects, within the caller's timeout.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"Redis URL {url!r} has no scheme; use redis://host:port/db")
    options: dict[str, Any] = {
        "socket_timeout": None if calls_bounded else timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), retries=0),
    }
    if scheme in _CLUSTER_SCHEMES:
        return RedisCluster.from_url(f"{_CLUSTER_SCHEMES[scheme]}://{rest}", **options)
    if scheme in _PLAIN_SCHEMES:
        return Redis.from_url(url, **options)
    supported = ", ".join(sorted(_PLAIN_SCHEMES | set(_CLUSTER_SCHEMES)))
    raise ValueError(f"unsupported Redis URL scheme {scheme!r} in {url!r}; use one of {supported}")


def connect_subscriber(url: str, *, timeout: float) -> Redis:
    """A plain client for pub/sub. For a cluster URL it talks to the seed node alone: redis-py's
    asyncio cluster client has no pub/sub, and cluster PUBLISH reaches every node anyway."""
    scheme, _, rest = url.partition("://")
    if scheme in _CLUSTER_SCHEMES:
        url = f"{_CLUSTER_SCHEMES[scheme]}://{rest}"
    client = connect(url, timeout=timeout)
    assert isinstance(client, Redis)
    return client
