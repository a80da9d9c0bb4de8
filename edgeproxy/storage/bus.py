"""Fleet-wide messages (purges, policy reloads, model rollouts) over Redis pub/sub.

Pub/sub is at-most-once: a subscriber that is disconnected, or too slow, silently misses
messages. So every message carries a generation drawn from one Redis counter, and is also
appended to a capped, expiring Redis list in the same atomic script that publishes it. A
subscriber tracks the last generation it handled; when it sees the counter ahead of that (after
a reconnect, or a jump in the live stream) it calls ``on_gap`` (the proxy drops its L1, which may
hold objects a missed purge removed) and replays the log from where it left off.

Redis being down never raises into the data path: the subscriber reconnects with backoff in the
background; ``publish`` and ``recent`` raise :class:`BusUnavailable`, which the admin API maps to 503.
Nor does it hang a stop: ``close`` ends the subscription within ``CLOSE_TIMEOUT`` even when the
cancellation is lost inside redis-py (see :mod:`edgeproxy.tasks`).
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import json
import logging
import random
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from edgeproxy.storage.redisconn import BACKEND_ERRORS, RedisClient
from edgeproxy.tasks import cancel_and_wait

log = logging.getLogger(__name__)

# KEYS[1] generation counter, KEYS[2] log list, KEYS[3] epoch (one hash slot); ARGV[1]
# message JSON, ARGV[2] channel, ARGV[3] log length cap, ARGV[4] log TTL ms, ARGV[5] a fresh
# epoch id. Atomic: generations reach the channel and the log in the order they were drawn.
# The epoch names the history: a Redis that lost its data starts a new one, so a generation
# number seen before the loss is never mistaken for one of the new history.
_PUBLISH = """
redis.call('set', KEYS[3], ARGV[5], 'NX')
local epoch = redis.call('get', KEYS[3])
local generation = redis.call('incr', KEYS[1])
local wire = generation .. ' ' .. epoch .. ' ' .. ARGV[1]
redis.call('rpush', KEYS[2], wire)
redis.call('ltrim', KEYS[2], -tonumber(ARGV[3]), -1)
redis.call('pexpire', KEYS[2], ARGV[4])
redis.call('publish', ARGV[2], wire)
return generation
"""


class BusUnavailable(RuntimeError):
    """Redis did not accept or answer a bus operation; report 503 and let the operator retry."""


class OwnMessages(enum.Enum):
    """Whether a subscriber also handles the messages its own process published."""

    DELIVER = "deliver"
    """One code path for everyone: the publisher applies its own purge when it comes back."""
    IGNORE = "ignore"
    """The publisher already applied it locally before publishing."""


class BusState(enum.Enum):
    CONNECTED = "connected"
    CONNECTING = "connecting"


@dataclass(frozen=True, slots=True)
class Message:
    generation: int
    kind: str
    """What to do: e.g. "purge", "policy-reload", "model-rollout"."""
    sender: str
    """The publishing bus's ``sender_id``."""
    payload: dict[str, Any]
    sent_at: float
    epoch: str = ""
    """The history this generation belongs to (new after Redis lost its data)."""


Handler = Callable[[Message], Awaitable[None] | None]
GapHandler = Callable[[], Awaitable[None] | None]

RECONNECT_MIN = 0.05
RECONNECT_MAX = 2.0
LISTEN_POLL = 1.0
"""How long one wait for a message blocks; bounds how quickly ``close`` takes effect."""
CLOSE_TIMEOUT = 2.0
"""How long ``close`` waits for the subscription to end. The subscription also stops by itself
at its next poll once closing (within ``LISTEN_POLL``, or the bus timeout while connecting), so
this is only reached by a handler that ignores cancellation."""


def _decode(wire: bytes) -> Message:
    generation, epoch, body = wire.split(b" ", 2)
    data = json.loads(body)
    return Message(
        int(generation), data["kind"], data["sender"], data["payload"], data["sent_at"], epoch.decode("ascii")
    )


async def _call(callback: Callable[..., Awaitable[None] | None], *args: Any) -> None:
    result = callback(*args)
    if inspect.isawaitable(result):
        await result


class FleetBus:
    """One process's end of the bus: publish, read the log, and one background subscription.

    ``client`` may be a Redis Cluster client for publishing; subscribing needs a plain ``Redis``
    (redis-py's asyncio cluster client has no pub/sub), so pass
    ``subscriber=connect_subscriber(url, timeout=...)``, a client for one node (cluster PUBLISH
    reaches every node).
    """

    def __init__(
        self,
        client: RedisClient,
        namespace: str = "ep",
        *,
        subscriber: Redis | None = None,
        sender_id: str | None = None,
        timeout: float = 0.5,
        log_size: int = 1000,
        log_ttl: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._subscriber = subscriber if subscriber is not None else client if isinstance(client, Redis) else None
        self.sender_id = sender_id or uuid.uuid4().hex
        self._timeout = timeout
        self._log_size = log_size
        self._log_ttl_ms = int(log_ttl * 1000)
        self._clock = clock
        tag = f"{{{namespace}:bus}}"  # one Redis Cluster hash slot for counter and log
        self._generation_key = f"{tag}:generation"
        self._epoch_key = f"{tag}:epoch"
        self._log_key = f"{tag}:log"
        self.channel = f"{namespace}:bus"
        self._publish = client.register_script(_PUBLISH)  # type: ignore[misc]  # RedisCluster has it too
        self.generation = 0
        """Last generation this subscriber handled (or skipped as its own)."""
        self.epoch = ""
        """The history ``generation`` counts in."""
        self.counts: Counter[str] = Counter()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        """Set by ``close``: the subscription stops at its next poll even if it never sees the
        cancellation (redis-py on Python 3.11 can swallow one, see :mod:`edgeproxy.tasks`)."""
        self._connected = asyncio.Event()

    async def publish(self, kind: str, payload: dict[str, Any]) -> int:
        """Send to every process in the fleet; the message's generation."""
        body = json.dumps({"kind": kind, "sender": self.sender_id, "payload": payload, "sent_at": self._clock()})
        try:
            async with asyncio.timeout(self._timeout):
                generation = await self._publish(
                    keys=[self._generation_key, self._log_key, self._epoch_key],
                    args=[body, self.channel, self._log_size, self._log_ttl_ms, uuid.uuid4().hex],
                )
        except BACKEND_ERRORS as exc:
            raise BusUnavailable(f"could not publish {kind!r} on the fleet bus: {exc!r}") from exc
        return int(generation)

    async def recent(self, kind: str | None = None, since_generation: int = 0) -> list[Message]:
        """Logged messages newer than ``since_generation`` (of ``kind``, or all), oldest first."""
        try:
            messages = await self._read_log()
        except BACKEND_ERRORS as exc:
            raise BusUnavailable(f"could not read the fleet bus log: {exc!r}") from exc
        return [m for m in messages if m.generation > since_generation and (kind is None or m.kind == kind)]

    async def _read_log(self) -> list[Message]:
        async with asyncio.timeout(self._timeout):
            # redis-py types commands as sync-or-async
            wires = await self._client.lrange(self._log_key, 0, -1)  # type: ignore[misc]
        return [m for m in map(self._parse, wires) if m is not None]

    def _parse(self, wire: bytes) -> Message | None:
        """A message, or None (counted) for anything on our keys that is not one of ours."""
        try:
            return _decode(wire)
        except (ValueError, KeyError, TypeError):
            self.counts["malformed"] += 1
            log.warning("ignoring a malformed fleet bus message: %.80r", wire)
            return None

    async def subscribe(
        self,
        handler: Handler,
        *,
        on_gap: GapHandler | None = None,
        own: OwnMessages = OwnMessages.DELIVER,
        since_generation: int | None = None,
        wait: float = 1.0,
    ) -> BusState:
        """Start handling messages in a background task that reconnects by itself.

        With ``since_generation`` (0 for the whole log), logged messages newer than it are
        handled first and live ones follow with nothing lost in between: what a starting process
        uses to catch up with purges issued before it existed. Without it, handling starts at the
        generation current when the first subscription succeeds. Waits up to ``wait`` seconds for
        that first subscription, so startup neither blocks on a dead Redis nor races a publish.
        """
        if self._subscriber is None:
            raise ValueError(
                "a Redis Cluster client cannot subscribe: pass subscriber=connect_subscriber(url, timeout=...)")
        if self._task is not None or self._closing:
            raise RuntimeError("this FleetBus already has (or had) a subscription; create one bus per handler")
        self._task = asyncio.create_task(
            self._listen(self._subscriber, handler, on_gap, own, since_generation), name="fleet-bus")
        try:
            async with asyncio.timeout(wait):
                await self._connected.wait()
        except TimeoutError:
            return BusState.CONNECTING
        return BusState.CONNECTED

    @property
    def state(self) -> BusState:
        return BusState.CONNECTED if self._connected.is_set() else BusState.CONNECTING

    async def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """End the subscription, waiting at most ``timeout`` seconds for it."""
        self._closing = True
        if self._task is not None:
            await cancel_and_wait([self._task], timeout, what="fleet bus subscription")
            self._task = None
        self._connected.clear()

    async def _listen(
        self, subscriber: Redis, handler: Handler, on_gap: GapHandler | None, own: OwnMessages, since: int | None
    ) -> None:
        backoff = RECONNECT_MIN
        first = True
        while not self._closing:
            pubsub = subscriber.pubsub()
            try:
                async with asyncio.timeout(self._timeout):
                    await pubsub.subscribe(self.channel)
                    current, epoch = await self._position()
                if first:
                    first = False
                    self.generation = current if since is None else since
                    self.epoch = epoch
                    await self._catch_up(current, epoch, handler, on_gap, own, gap=False)
                else:
                    await self._catch_up(current, epoch, handler, on_gap, own, gap=True)
                self._connected.set()
                backoff = RECONNECT_MIN
                await self._receive(pubsub, handler, on_gap, own)
            except BACKEND_ERRORS as exc:
                self._connected.clear()
                self.counts["reconnects"] += 1
                log.warning("fleet bus disconnected (%r); reconnecting in %.2fs", exc, backoff)
                await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
                backoff = min(backoff * 2, RECONNECT_MAX)
            finally:
                try:
                    await pubsub.aclose()
                except BACKEND_ERRORS:
                    pass

    async def _receive(self, pubsub: PubSub, handler: Handler, on_gap: GapHandler | None, own: OwnMessages) -> None:
        while not self._closing:
            raw = await pubsub.get_message(ignore_subscribe_messages=True, timeout=LISTEN_POLL)
            if raw is None or raw["type"] != "message":
                continue
            message = self._parse(raw["data"])
            if message is None:
                continue
            if message.generation > self.generation + 1 or (self.epoch and message.epoch != self.epoch):
                # A jump in the live stream (pub/sub dropped something; the log has it), or a
                # new history: catch up from the log.
                current, epoch = await self._position()
                await self._catch_up(max(current, message.generation), epoch or message.epoch, handler, on_gap, own, gap=True)
            elif message.generation == self.generation + 1:
                await self._deliver(message, handler, own)

    async def _position(self) -> tuple[int, str]:
        """The current generation and epoch in Redis (0 and "" before any publish)."""
        async with asyncio.timeout(self._timeout):
            generation, epoch = await self._client.mget(self._generation_key, self._epoch_key)  # type: ignore[misc]
        return int(generation or 0), (epoch or b"").decode("ascii")

    async def _catch_up(
        self, current: int, epoch: str, handler: Handler, on_gap: GapHandler | None, own: OwnMessages, *, gap: bool
    ) -> None:
        """Handle what was published while we were not listening; for a ``gap`` (not the start
        of the subscription) tell ``on_gap`` first."""
        lost = current < self.generation or bool(self.epoch and epoch and epoch != self.epoch)
        if lost or epoch:
            # After a loss the old epoch is void even before the new history has one.
            self.epoch = epoch
        if lost:
            # A new history (epoch changed, or the counter went backwards): Redis lost its
            # data (restart without persistence); start over from the new history's log.
            self.generation = 0
        elif current == self.generation:
            return
        if gap:
            self.counts["gaps"] += 1
            if on_gap is not None:
                await self._guarded(on_gap)
        for message in await self._read_log():
            if message.generation <= self.generation:
                continue
            self.counts["replayed"] += 1
            await self._deliver(message, handler, own)
        self.generation = max(self.generation, current)

    async def _deliver(self, message: Message, handler: Handler, own: OwnMessages) -> None:
        self.generation = message.generation
        self.epoch = message.epoch or self.epoch
        if own is OwnMessages.IGNORE and message.sender == self.sender_id:
            return
        self.counts["received"] += 1
        await self._guarded(handler, message)

    async def _guarded(self, callback: Callable[..., Awaitable[None] | None], *args: Any) -> None:
        """A failing handler must not stop the fleet's messages: log it, count it, go on."""
        try:
            await _call(callback, *args)
        except Exception:
            self.counts["handler_errors"] += 1
            log.exception("fleet bus handler failed")
