"""Redis clients configured the one way this project wants them: short timeouts, no retries.

redis-py (since 6) retries a failed command three times with exponential backoff by default.
For a cache that is the wrong trade: a slow or dead L2 should become a miss at once, not a
request stuck in backoff, and retries multiply load on a Redis that is already struggling. So
every client made here carries ``Retry(NoBackoff(), retries=0)``; the caller bounds each call
with ``asyncio.timeout`` and a circuit breaker decides when to try again.
"""

from __future__ import annotations

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
"""25 ms per call. A loopback GET answers in ~0.1-0.3 ms, but the measured time also includes
waiting for our own event loop, which on a busy 2-core box running several workers can stall
for 10+ ms under load; 25 ms stays clear of that (no false trips) while still being well under
a typical origin fetch, so a slow Redis degrades to "go to origin" rather than adding latency.
Remote or TLS Redis deployments should raise it (the ``timeout`` argument)."""

_CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
_PLAIN_SCHEMES = {"redis", "rediss", "unix"}


def connect(url: str, *, timeout: float) -> RedisClient:
    """A client for ``url``: ``redis://``, ``rediss://``, ``unix://`` or ``redis+cluster://``
    (``rediss+cluster://`` for TLS) naming one seed node of a Redis Cluster.

    No connection is made here; the first command connects, within the caller's timeout.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"Redis URL {url!r} has no scheme; use redis://host:port/db")
    options = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), retries=0),
    }
    if scheme in _CLUSTER_SCHEMES:
        return RedisCluster.from_url(f"{_CLUSTER_SCHEMES[scheme]}://{rest}", **options)
    if scheme in _PLAIN_SCHEMES:
        return Redis.from_url(url, **options)
    supported = ", ".join(sorted(_PLAIN_SCHEMES | set(_CLUSTER_SCHEMES)))
    raise ValueError(f"unsupported Redis URL scheme {scheme!r} in {url!r}; use one of {supported}")
