"""`--hosts`: a Host the proxy is not configured for is answered 421 and never reaches the origin
(issue 9: no open proxy; an origin's other virtual hosts stay unreachable through us)."""

from __future__ import annotations

import aiohttp

from edgeproxy.proxy.runtime import ProxyConfig, running_proxy
from tests.support.origin import ProgrammableOrigin, serve_app


async def test_only_configured_hosts_are_served() -> None:
    origin = ProgrammableOrigin()
    origin.set("/page", headers={"Cache-Control": "max-age=60"}, body="shop")
    async with serve_app(origin.app()) as url, running_proxy(
        ProxyConfig(origin=url, port=0, hosts=("Shop.Example",))
    ) as proxy, aiohttp.ClientSession() as client:
        statuses = {}
        for host in ("shop.example", "SHOP.example:8080", "shop.example.", "internal.example", "evil.shop.example"):
            async with client.get(f"{proxy.url}/page", headers={"Host": host}) as resp:
                statuses[host] = (resp.status, resp.headers.get("Cache-Status", ""))
    assert [s for s, _ in statuses.values()] == [200, 200, 200, 421, 421], statuses
    assert 'detail="misdirected"' in statuses["internal.example"][1]
    assert origin.count("/page") == 3  # the refused hosts never reached it (the key keeps Host as sent)
