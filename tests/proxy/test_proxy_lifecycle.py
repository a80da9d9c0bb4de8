"""Starting and stopping a proxy: what a deploy or a test run relies on."""

from __future__ import annotations

import asyncio

from tests.proxy.conftest import StartProxy
from tests.proxy.harness import proxy_client
from tests.support.origin import ProgrammableOrigin

LONG_DRAIN = 5.0


async def test_stop_does_not_wait_for_idle_keep_alive_connections(
    start_proxy: StartProxy, origin: ProgrammableOrigin, origin_url: str
):
    origin.set("/k", headers={"Cache-Control": "max-age=60"}, body="x")
    async with start_proxy(origin_url) as proxy, proxy_client(proxy.url) as client:
        seen = await client.get("/k")
        assert seen.status == 200
        # The client keeps its connection open, idle. Draining is for requests in flight; an
        # idle connection has none, so stopping must not sit out the drain timeout on it.
        await asyncio.wait_for(proxy.stop(drain_timeout=LONG_DRAIN), timeout=LONG_DRAIN / 2)
