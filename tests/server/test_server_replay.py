"""Replay: request bytes seen a moment ago get the reply written then, while the handler's
``Reuse`` holds, without the fast path being asked again; anything else is answered in full."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from edgeproxy.cache.phases import CachePhase
from edgeproxy.proxy.protocol import EdgeProtocol
from edgeproxy.proxy.replay import ReplayCache
from edgeproxy.proxy.reply import Incoming, Reply, Reuse
from edgeproxy.proxy.server import ServerContext
from tests.support.rawhttp import keep_alive

REQUEST = b"GET /hot HTTP/1.1\r\nHost: a.example\r\nAccept: */*\r\n\r\n"


class Site:
    """A fast path whose replies may be reused for ``window`` seconds while ``valid`` is set."""

    def __init__(self, window: float = 30.0) -> None:
        self.window = window
        self.valid = True
        self.asked = 0
        self.observed: list[tuple[str, str, CachePhase]] = []

    def fast_path(self, inc: Incoming) -> Reply:
        self.asked += 1
        reply = Reply(200, [("content-type", "text/plain")], body=f"answer {self.asked}".encode(), phase=CachePhase.HIT)
        reply.reuse = Reuse(time.time() + self.window, lambda: self.valid)
        return reply

    async def handler(self, inc: Incoming) -> Reply:
        return Reply(200, [], body=b"async")

    def on_reply(self, inc: Incoming, reply: Reply, seconds: float) -> None:
        self.observed.append((inc.head.target, inc.client, reply.phase))


@dataclass(frozen=True)
class Served:
    context: ServerContext
    port: int


@asynccontextmanager
async def serving(site: Site) -> AsyncIterator[Served]:
    context = ServerContext(handler=site.handler, fast_path=site.fast_path, on_reply=site.on_reply)
    server = await asyncio.get_running_loop().create_server(lambda: EdgeProtocol(context), "127.0.0.1", 0)
    try:
        yield Served(context, server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await context.connections.drain(1.0)


def without_timing(head: bytes) -> list[bytes]:
    return [line for line in head.split(b"\r\n") if not line.startswith(b"server-timing:")]


async def test_bytes_seen_twice_are_replayed_on_any_connection_and_observed_each_time():
    site = Site()
    async with serving(site) as served, keep_alive(served.port, REQUEST) as first, keep_alive(served.port, REQUEST) as second:
        assert await first.ask() == b"answer 1"  # seen once: answered in full, not remembered
        await second.send(REQUEST)
        head2, body2 = await second.response()  # seen twice: remembered
        await first.send(REQUEST)
        head3, body3 = await first.response()
        assert await second.ask() == b"answer 2"
    assert site.asked == 2
    assert body2 == body3 == b"answer 2"
    assert without_timing(head2) == without_timing(head3)
    assert [b"server-timing" in line for line in head3.split(b"\r\n")].count(True) == 1
    assert [phase for _, _, phase in site.observed] == [CachePhase.HIT] * 4


async def test_a_reply_is_not_replayed_once_its_reuse_no_longer_holds():
    site = Site()
    async with serving(site) as served, keep_alive(served.port, REQUEST) as conn:
        assert [await conn.ask() for _ in range(3)] == [b"answer 1", b"answer 2", b"answer 2"]
        site.valid = False
        assert await conn.ask() == b"answer 3"
        site.valid = True
        assert await conn.ask() == b"answer 3"
    assert site.asked == 3


async def test_a_reply_is_not_replayed_after_its_window_nor_past_the_current_date_second():
    site = Site(window=0.2)
    async with serving(site) as served, keep_alive(served.port, REQUEST) as conn:
        assert [await conn.ask() for _ in range(3)] == [b"answer 1", b"answer 2", b"answer 2"]
        await asyncio.sleep(0.25)
        assert await conn.ask() == b"answer 3"
        site.window = 30
        await asyncio.sleep(0.25)
        await conn.ask()  # remembered for 30 s by the handler, but only within this Date second
        await asyncio.sleep(max(0.0, int(time.time()) + 1.05 - time.time()))
        asked = site.asked
        await conn.ask()
    assert site.asked == asked + 1, "a new Date second must render a new reply"


async def test_different_bytes_split_chunks_and_pipelined_requests_are_answered_in_full():
    site = Site()
    other = REQUEST.replace(b"*/*", b"text/plain")
    async with serving(site) as served, keep_alive(served.port, REQUEST) as conn:
        assert await conn.ask() == b"answer 1"
        assert await conn.ask(other) == b"answer 2"
        await conn.send(REQUEST[:20], REQUEST[20:], pause=0.05)
        assert (await conn.response())[1] == b"answer 3"
        for _ in range(2):  # two requests in one chunk are never one remembered request
            await conn.send(REQUEST + REQUEST)
            assert len([await asyncio.wait_for(conn.response(), 2) for _ in range(2)]) == 2
        # The tail of a split request is not a request: it must not be answered from memory.
        await conn.send(REQUEST[20:])
        head, _ = await asyncio.wait_for(conn.response(), 2)
    assert head.startswith(b"HTTP/1.1 400"), head
    assert site.asked == 7


async def test_nothing_is_replayed_while_draining():
    site = Site()
    async with serving(site) as served, keep_alive(served.port, REQUEST) as conn:
        assert [await conn.ask() for _ in range(2)] == [b"answer 1", b"answer 2"]
        served.context.connections.draining = True
        await conn.send(REQUEST)
        head, body = await conn.response()
    assert body == b"answer 3" and b"connection: close" in head


def test_only_bytes_seen_before_are_worth_remembering_and_the_record_of_them_is_bounded():
    memo = ReplayCache(capacity=2)
    assert not memo.wants(b"a") and memo.wants(b"a")
    assert not memo.wants(b"x" * 5000) and not memo.wants(b"x" * 5000)
    for n in range(8):
        memo.wants(b"%d" % n)
    assert not memo.wants(b"a")  # the record was full and started over


def test_the_memo_is_bounded_and_sweeps_expired_replies_first():
    from edgeproxy.cache.message import RequestHead
    from edgeproxy.proxy.replay import Replay

    memo = ReplayCache(capacity=4)
    now = 1000.0
    reply = Reply(200, [])

    def replay(until: float) -> Replay:
        return Replay(b"", b"", b"", RequestHead("GET", "a", "/"), reply, until, lambda: True)

    for n in range(3):
        memo.put(b"old%d" % n, replay(now + 0.5), now)
    memo.put(b"live", replay(now + 5), now)
    memo.put(b"new", replay(now + 5), now + 1)
    assert len(memo) == 2 and memo.get(b"live", now + 1) is not None and memo.get(b"old0", now + 1) is None
    memo.put(b"big", Replay(b"", b"", b"x" * (1 << 20), RequestHead("GET", "a", "/"), reply, now + 5, lambda: True), now)
    assert memo.get(b"big", now) is None
