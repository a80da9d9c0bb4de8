"""FleetBus between independent clients on real Redis: delivery, own messages, the log, and
gap detection when a subscriber misses messages (connection killed, Redis restarted)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import TYPE_CHECKING, Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.connection import Connection

from edgeproxy.storage.bus import CLOSE_TIMEOUT, BusState, BusUnavailable, FleetBus, Message, OwnMessages
from edgeproxy.storage.redisconn import connect
from edgeproxy.tasks import cancel_and_wait

if TYPE_CHECKING:
    from tests.conftest import RedisServer

pytestmark = pytest.mark.redis


async def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.gaps = 0

    async def handle(self, message: Message) -> None:
        self.messages.append(message)

    def gap(self) -> None:
        self.gaps += 1


@pytest.fixture
async def buses(redis_url: str, redis_namespace: str) -> AsyncIterator[tuple[FleetBus, FleetBus]]:
    """Two processes' buses: each with its own client, as two workers would have."""
    clients = [connect(redis_url, timeout=0.5) for _ in range(2)]
    pair = (FleetBus(clients[0], redis_namespace), FleetBus(clients[1], redis_namespace))
    yield pair
    for bus in pair:
        await bus.close()
    leftovers = [k async for k in clients[0].scan_iter(match=f"{{{redis_namespace}:bus}}:*")]
    if leftovers:
        await clients[0].unlink(*leftovers)
    for client in clients:
        await client.aclose()


async def test_a_message_reaches_another_process_with_generation_and_sender(buses: tuple[FleetBus, FleetBus]) -> None:
    a, b = buses
    inbox = Inbox()
    assert await a.subscribe(inbox.handle) is BusState.CONNECTED
    first = await b.publish("purge", {"url": "example.test/items/1"})
    second = await b.publish("policy-reload", {})
    await eventually(lambda: len(inbox.messages) == 2)
    assert second == first + 1
    assert [(m.generation, m.kind, m.sender) for m in inbox.messages] == [
        (first, "purge", b.sender_id), (second, "policy-reload", b.sender_id)]
    assert inbox.messages[0].payload == {"url": "example.test/items/1"}
    assert a.generation == second and inbox.gaps == 0


@pytest.mark.parametrize(("own", "delivered"), [(OwnMessages.DELIVER, 1), (OwnMessages.IGNORE, 0)])
async def test_own_messages_are_handled_or_ignored_as_asked(
    buses: tuple[FleetBus, FleetBus], own: OwnMessages, delivered: int
) -> None:
    a, b = buses
    inbox = Inbox()
    await a.subscribe(inbox.handle, own=own)
    await a.publish("purge", {"mine": True})
    last = await b.publish("purge", {"mine": False})
    await eventually(lambda: a.generation == last)
    assert [m.payload["mine"] for m in inbox.messages] == [True] * delivered + [False]


async def test_a_starting_process_can_catch_up_from_the_log_then_follow_live(
    buses: tuple[FleetBus, FleetBus],
) -> None:
    a, b = buses
    before = [await b.publish("purge", {"n": n}) for n in range(2)]
    inbox = Inbox()
    await a.subscribe(inbox.handle, on_gap=inbox.gap, since_generation=0)
    await b.publish("purge", {"n": 2})
    await eventually(lambda: len(inbox.messages) == 3)
    assert [m.payload["n"] for m in inbox.messages] == [0, 1, 2]
    assert inbox.messages[0].generation == before[0]
    assert inbox.gaps == 0 and a.counts["gaps"] == 0


async def test_late_joiners_read_the_capped_log(redis_url: str, redis_namespace: str) -> None:
    client = connect(redis_url, timeout=0.5)
    bus = FleetBus(client, redis_namespace, log_size=3)
    try:
        generations = [await bus.publish("rollout" if i % 2 else "purge", {"i": i}) for i in range(5)]
        assert [m.payload["i"] for m in await bus.recent()] == [2, 3, 4]
        assert [m.payload["i"] for m in await bus.recent("rollout")] == [3]
        assert [m.generation for m in await bus.recent(since_generation=generations[3])] == [generations[4]]
        assert 0 < await client.pttl(f"{{{redis_namespace}:bus}}:log") <= 3_600_000
    finally:
        await client.unlink(f"{{{redis_namespace}:bus}}:log", f"{{{redis_namespace}:bus}}:generation")
        await client.aclose()


async def test_a_failing_handler_does_not_stop_the_subscription(buses: tuple[FleetBus, FleetBus]) -> None:
    a, b = buses
    seen: list[int] = []

    def handler(message: Message) -> None:
        seen.append(message.payload["n"])
        if message.payload["n"] == 1:
            raise RuntimeError("handler bug")

    await a.subscribe(handler)
    for n in range(3):
        await b.publish("purge", {"n": n})
    await eventually(lambda: len(seen) == 3)
    assert a.counts["handler_errors"] == 1


async def test_messages_missed_while_disconnected_trigger_on_gap_and_are_replayed(
    own_redis: RedisServer, redis_namespace: str
) -> None:
    a = FleetBus(connect(own_redis.url, timeout=0.5), redis_namespace)
    b = FleetBus(connect(own_redis.url, timeout=0.5), redis_namespace)
    admin = Redis.from_url(own_redis.url)
    inbox = Inbox()
    try:
        await a.subscribe(inbox.handle, on_gap=inbox.gap)
        await b.publish("purge", {"n": 0})
        await eventually(lambda: len(inbox.messages) == 1)
        await admin.client_kill_filter(_type="pubsub")
        await b.publish("purge", {"n": 1})  # published while a is reconnecting (>= 25 ms backoff)
        await b.publish("purge", {"n": 2})
        await eventually(lambda: len(inbox.messages) == 3)
        assert inbox.gaps == 1
        assert [m.payload["n"] for m in inbox.messages] == [0, 1, 2]
        assert a.counts["reconnects"] >= 1 and a.counts["replayed"] == 2
        await b.publish("purge", {"n": 3})  # and live delivery resumes
        await eventually(lambda: len(inbox.messages) == 4)
        assert inbox.gaps == 1
    finally:
        await a.close()
        await admin.aclose()


async def publish_when_back(bus: FleetBus, kind: str, payload: dict[str, object]) -> int:
    """The first publish after a restart may land on a dead pooled connection (no retries)."""
    for _ in range(50):
        try:
            return await bus.publish(kind, payload)
        except BusUnavailable:
            await asyncio.sleep(0.05)
    raise AssertionError("Redis did not come back")


async def test_a_restarted_redis_that_lost_its_counter_is_a_gap_not_silence(
    own_redis: RedisServer, redis_namespace: str
) -> None:
    a = FleetBus(connect(own_redis.url, timeout=0.5), redis_namespace)
    b = FleetBus(connect(own_redis.url, timeout=0.5), redis_namespace)
    inbox = Inbox()
    try:
        await a.subscribe(inbox.handle, on_gap=inbox.gap)
        for n in range(3):
            await b.publish("purge", {"n": n})
        await eventually(lambda: a.generation == 3)
        own_redis.stop()
        own_redis.start()  # empty: generation counter back to nothing
        assert await publish_when_back(b, "purge", {"n": "after-restart"}) == 1
        await eventually(lambda: inbox.messages[-1].payload["n"] == "after-restart")
        assert inbox.gaps == 1 and a.generation == 1
    finally:
        await a.close()


async def test_redis_down_never_raises_into_subscribers_and_publish_says_unavailable(
    own_redis: RedisServer, redis_namespace: str
) -> None:
    own_redis.stop()
    a = FleetBus(connect(own_redis.url, timeout=0.05), redis_namespace, timeout=0.05)
    b = FleetBus(connect(own_redis.url, timeout=0.05), redis_namespace, timeout=0.05)
    inbox = Inbox()
    try:
        assert await a.subscribe(inbox.handle, wait=0.2) is BusState.CONNECTING
        with pytest.raises(BusUnavailable, match="purge"):
            await b.publish("purge", {})
        with pytest.raises(BusUnavailable):
            await b.recent()
        own_redis.start()
        await eventually(lambda: a.state is BusState.CONNECTED)
        await publish_when_back(b, "purge", {"n": 1})
        await eventually(lambda: len(inbox.messages) == 1)
    finally:
        await a.close()


async def test_close_ends_a_subscription_whose_cancellation_redis_py_lost(
    redis_url: str, redis_namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """redis-py sends every command through ``asyncio.wait_for``, which on Python 3.11 returns
    normally, dropping the cancellation, when it is cancelled just as the send completes (CPython
    gh-86296). A proxy stopping while its bus was (re)subscribing thus left the subscription
    running and ``close`` (so ``ProxyRuntime.stop``) waiting for it forever. Here ``close`` is
    called at exactly that moment: right after SUBSCRIBE is written, before ``wait_for`` returns."""
    client = connect(redis_url, timeout=0.5)
    bus = FleetBus(client, redis_namespace)
    closing: list[asyncio.Task[None]] = []
    listening: list[asyncio.Task[None]] = []
    send = Connection._send_packed_command

    async def send_then_close(self: Connection, command: Iterable[bytes]) -> None:
        await send(self, command)  # this runs as wait_for's inner task
        if not closing and any(b"SUBSCRIBE" in bytes(chunk) for chunk in command):
            assert bus._task is not None
            listening.append(bus._task)
            closing.append(asyncio.create_task(bus.close()))  # cancels the subscription next

    monkeypatch.setattr(Connection, "_send_packed_command", send_then_close)
    try:
        await bus.subscribe(Inbox().handle, wait=0.5)
        assert closing, "the bus never sent SUBSCRIBE"
        # asyncio.wait, not a timeout around an await: cancelling an await of close() would
        # cancel the subscription a second time and hide the lost first cancellation.
        await asyncio.wait(closing, timeout=CLOSE_TIMEOUT + 3)
        assert closing[0].done(), "close() did not return"
        assert listening[0].done()
    finally:
        monkeypatch.undo()
        await cancel_and_wait([*closing, *listening], 5.0)
        await client.aclose()


async def test_close_is_bounded_even_if_the_subscription_never_sees_a_cancellation(
    redis_url: str, redis_namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """However a cancellation gets lost, the subscription stops by itself once closing."""
    client = connect(redis_url, timeout=0.5)
    make_pubsub = client.pubsub
    deaf = True

    def deaf_pubsub() -> PubSub:
        pubsub = make_pubsub()
        get_message = pubsub.get_message

        async def get_message_losing_cancellations(**kwargs: Any) -> Any:
            try:
                return await get_message(**kwargs)
            except asyncio.CancelledError:
                if deaf:
                    return None
                raise

        pubsub.get_message = get_message_losing_cancellations  # type: ignore[method-assign]
        return pubsub

    monkeypatch.setattr(client, "pubsub", deaf_pubsub)
    bus = FleetBus(client, redis_namespace)
    assert await bus.subscribe(Inbox().handle) is BusState.CONNECTED
    listening = bus._task
    assert listening is not None
    closing = asyncio.create_task(bus.close())
    try:
        await asyncio.wait({closing}, timeout=CLOSE_TIMEOUT + 3)
        assert closing.done(), "close() did not return"
        assert listening.done()  # it ended: close did not just give up waiting
        assert bus.state is BusState.CONNECTING
        with pytest.raises(RuntimeError, match="one bus per handler"):
            await bus.subscribe(Inbox().handle)
    finally:
        deaf = False
        await cancel_and_wait([closing, listening], 5.0)
        await client.aclose()


async def test_a_cluster_client_must_be_given_a_node_to_subscribe_on() -> None:
    bus = FleetBus(connect("redis+cluster://127.0.0.1:7000", timeout=0.05), "ns")
    with pytest.raises(ValueError, match="subscriber="):
        await bus.subscribe(lambda m: None)
