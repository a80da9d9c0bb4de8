"""One raw GET through the proxy: the target and header bytes go out exactly as written."""

from __future__ import annotations

from edgeproxy.proxy.runtime import ProxyRuntime
from tests.proxy.harness import CacheStatusView
from tests.support.rawhttp import RawResponse, exchange


async def raw_get(proxy: ProxyRuntime, target: str, *headers: str, host: str = "shop.example") -> RawResponse:
    """Send ``GET target`` with ``headers`` (``"Name: value"`` lines, latin-1) on a fresh connection."""
    lines = [f"GET {target} HTTP/1.1", f"Host: {host}", *headers, "Connection: close", "", ""]
    answer = await exchange(proxy.config.host, proxy.port, "\r\n".join(lines).encode("latin-1"))
    return answer.first


def cache_status(response: RawResponse) -> CacheStatusView:
    return CacheStatusView.parse(response.header("cache-status"))
