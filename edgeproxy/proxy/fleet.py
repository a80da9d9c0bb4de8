"""This process's link to the fleet through Redis: the shared L2 tier, the bus that carries
purges / policy reloads / model rollouts, and the cross-process fill lock.

Redis is optional and never on the failure path: every piece here degrades to "this process
alone" (L1 + origin) while Redis is down and recovers by itself when it returns.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from edgeproxy.storage.breaker import BreakerState
from edgeproxy.storage.bus import FleetBus, Message, OwnMessages
from edgeproxy.storage.locks import FillLock
from edgeproxy.storage.redis import RedisStore
from edgeproxy.storage.redisconn import DEFAULT_TIMEOUT, connect, connect_subscriber

log = logging.getLogger("edgeproxy.fleet")

FILL_LOCK_TIMEOUT = 0.1
BUS_TIMEOUT = 0.5
BUS_LOG_SIZE = 10_000
"""Bus messages kept for processes that start or reconnect later."""


class FleetLink:
    def __init__(
        self, url: str, *, namespace: str = "ep", max_object_lifetime: float = 86_400.0, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        """``timeout`` bounds each data-path call (L2 reads and writes); the bus and the fill
        lock keep their own, longer bounds."""
        self.store = RedisStore(url, namespace=namespace, timeout=timeout)
        # Bans must outlive every object they may apply to, or a process starting later could
        # serve a purged object from L2: the bus log lives as long as objects may.
        # The bus (admin path: publish, log replay) gets its own client with a bus-sized timeout;
        # the data-path client's 25 ms would turn a slow-but-up Redis into failed purges.
        self._bus_client = connect(url, timeout=BUS_TIMEOUT)
        self.bus = FleetBus(
            self._bus_client,
            namespace,
            subscriber=connect_subscriber(url, timeout=0.5),
            log_size=BUS_LOG_SIZE,
            log_ttl=max_object_lifetime,
            timeout=BUS_TIMEOUT,
        )
        # A longer bound than cache reads: a client-side timeout after the server took the lock
        # would leave every process waiting on a lock nobody fills.
        self.fill_lock = FillLock(self.store.channel, namespace, timeout=FILL_LOCK_TIMEOUT)
        self._handlers: dict[str, Callable[[dict[str, Any]], Awaitable[None] | None]] = {}
        self._on_gap: Callable[[], Awaitable[None] | None] | None = None

    def available(self) -> bool:
        """False while the circuit breaker holds Redis for dead."""
        return self.store.breaker.state is not BreakerState.OPEN

    def state(self) -> str:
        return {"closed": "up", "half-open": "recovering", "open": "down"}[self.store.breaker.state.value]

    def on(self, kind: str, handler: Callable[[dict[str, Any]], Awaitable[None] | None]) -> None:
        self._handlers[kind] = handler

    async def start(self, *, on_gap: Callable[[], Awaitable[None] | None]) -> None:
        """Follow the bus, first replaying its log (the purges already issued), so a process
        that starts or reconnects later still applies every ban; nothing published in between
        is lost."""
        self._on_gap = on_gap
        # Open a first connection and load the lock scripts now, so the first burst of misses
        # does not pay connection setup and NOSCRIPT round trips inside its short bounds.
        await self.store.ping()
        await self.fill_lock.warm_up()
        await self.bus.subscribe(self._dispatch, on_gap=self._gap, own=OwnMessages.IGNORE, since_generation=0)

    async def _gap(self) -> None:
        log.warning("missed fleet messages while disconnected: dropping L1 and replaying the bus log")
        if self._on_gap is not None:
            result = self._on_gap()
            if result is not None:
                await result

    async def _dispatch(self, message: Message) -> None:
        handler = self._handlers.get(message.kind)
        if handler is None:
            log.warning("ignoring fleet message of unknown kind %r", message.kind)
            return
        result = handler(message.payload)
        if result is not None:
            await result

    async def publish(self, kind: str, payload: dict[str, Any]) -> int:
        return await self.bus.publish(kind, payload)

    async def close(self) -> None:
        await self.bus.close()
        await self._bus_client.aclose()
