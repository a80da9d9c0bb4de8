"""A replayed hit (request bytes seen a moment ago answered with the bytes written then) lasts
only while everything its reply depends on holds: after a purge the very same bytes are
answered anew, from the origin."""

from __future__ import annotations

import asyncio
import time

from edgeproxy.admin.control import PurgeRequest
from edgeproxy.proxy.runtime import ProxyRuntime
from tests.support.origin import ProgrammableOrigin
from tests.support.rawhttp import keep_alive

REQUEST = b"GET /hot HTTP/1.1\r\nHost: shop.example\r\n\r\n"
CACHEABLE = {"Cache-Control": "public, max-age=60"}


async def test_the_same_request_bytes_after_a_purge_are_answered_from_the_origin(
    proxy: ProxyRuntime, origin: ProgrammableOrigin
) -> None:
    async with keep_alive(proxy.port, REQUEST) as conn:
        for attempt in range(3):
            # A reply is replayed within the wall-clock second it was written in: start on one.
            await asyncio.sleep(1.02 - time.time() % 1)
            second = int(time.time())
            origin.set("/hot", headers=CACHEABLE, body=f"v{attempt}")
            assert await conn.ask() == f"v{attempt}".encode()  # stored
            await conn.ask()  # a hit: these bytes are now known
            await conn.ask()  # a hit on known bytes: remembered for replay
            remembered = len(proxy.replay)
            await proxy.control.purge(PurgeRequest(urls=("http://shop.example/hot",)))
            origin.set("/hot", headers=CACHEABLE, body=f"after purge {attempt}")
            answered = await conn.ask()
            if int(time.time()) == second:
                break  # all within the second: the replay would still have been current
        else:
            raise AssertionError("no attempt fitted in one second; the machine is too busy to test this")
        assert remembered == 1, "the hit was not remembered for replay, so this tests nothing"
        assert answered == f"after purge {attempt}".encode()
