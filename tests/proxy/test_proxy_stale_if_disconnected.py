"""RFC 9111 §4.2.4: a disconnected cache may serve stale. When the origin cannot be reached at
all (refused, stopped, reset or closed before a response head, timed out), a stored stale
response answers within the policy's ``stale.if_disconnected`` window (10 s by default); an
origin that answers, even with a 503, is not disconnected."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import pytest

from tests.proxy.conftest import StartProxy
from tests.proxy.harness import ProxyClient, Seen, proxy_client
from tests.support.faultproxy import Fault, FaultProxy
from tests.support.origin import ProgrammableOrigin, serve_app

STALE_ON_ARRIVAL = {"Cache-Control": "max-age=5", "Age": "5"}
"""Fresh for 5 s but already 5 s old (RFC 9111 §4.2.3): stale from the first use, so the
window is exercised without sleeping through freshness."""

ONE_SECOND = """
policies:
  brief:
    match: {hosts: ["*"], paths: ["/*"]}
    stale: {if_disconnected: 1s}
"""
OFF = """
policies:
  off:
    match: {hosts: ["*"], paths: ["/*"]}
    stale: {if_disconnected: 0}
"""


def origin_port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def assert_served_stale(seen: Seen) -> None:
    assert seen.status == 200 and seen.body == b"kept", seen
    status = seen.cache_status
    # RFC 9211 §2.2: forwarded because stale; no origin status came back.
    assert not status.hit and status.fwd == "stale" and status.fwd_status is None, seen
    assert status.detail == "disconnected" and not status.stored, seen
    assert seen.age >= 5


@pytest.mark.parametrize(
    ("fault", "read_timeout"),
    [(Fault.REFUSE, 15.0), (Fault.RESET, 15.0), (Fault.TRUNCATE, 15.0), (Fault.BLACKHOLE, 0.3)],
    ids=["refused", "reset-before-head", "closed-before-head", "timeout"],
)
async def test_an_unreachable_origin_is_answered_with_the_stale_copy(
    start_proxy: StartProxy, origin: ProgrammableOrigin, origin_url: str, fault: Fault, read_timeout: float
):
    origin.set("/d", headers=STALE_ON_ARRIVAL, body="kept")
    async with (
        FaultProxy("127.0.0.1", origin_port(origin_url)) as faulty,
        start_proxy(faulty.url, origin_read_timeout=read_timeout) as proxy,
        proxy_client(proxy.url) as client,
    ):
        first = await client.get("/d")
        assert first.status == 200 and first.cache_status.stored, first
        await faulty.set(fault)  # RESET / TRUNCATE after 0 response bytes: before the head
        assert_served_stale(await client.get("/d"))


async def test_a_stopped_origin_is_answered_with_the_stale_copy(
    start_proxy: StartProxy, origin: ProgrammableOrigin
):
    origin.set("/d", headers=STALE_ON_ARRIVAL, body="kept")
    async with AsyncExitStack() as serving:
        url = await serving.enter_async_context(serve_app(origin.app()))
        async with start_proxy(url) as proxy, proxy_client(proxy.url) as client:
            await client.get("/d")
            await serving.aclose()  # the origin stops: its connections close, its port refuses
            assert_served_stale(await client.get("/d"))
            assert origin.count("/d") == 1


async def test_after_the_window_the_client_gets_the_502(
    start_proxy: StartProxy, origin: ProgrammableOrigin, origin_url: str
):
    # The ETag keeps the entry stored past the window (for revalidation), so the 502 below is
    # the window's doing, not an eviction's.
    origin.set("/w", headers={**STALE_ON_ARRIVAL, "ETag": '"w"'}, body="kept")
    async with (
        FaultProxy("127.0.0.1", origin_port(origin_url)) as faulty,
        start_proxy(faulty.url, policy=ONE_SECOND) as proxy,
        proxy_client(proxy.url) as client,
    ):
        await client.get("/w")
        await faulty.set(Fault.REFUSE)
        assert_served_stale(await client.get("/w"))
        await asyncio.sleep(1.1)
        refused = await client.get("/w")
        assert refused.status == 502 and refused.body != b"kept", refused
        assert refused.cache_status.detail == "connect"


@pytest.mark.parametrize(
    ("headers", "policy", "status"),
    [
        ({**STALE_ON_ARRIVAL, "Cache-Control": "max-age=5, must-revalidate"}, None, 504),
        ({**STALE_ON_ARRIVAL, "Cache-Control": "max-age=5, proxy-revalidate"}, None, 504),
        ({**STALE_ON_ARRIVAL, "Cache-Control": "s-maxage=5"}, None, 504),
        (STALE_ON_ARRIVAL, OFF, 502),
    ],
    ids=["must-revalidate", "proxy-revalidate", "s-maxage", "policy-off"],
)
async def test_no_stale_where_the_response_or_the_policy_forbids_it(
    start_proxy: StartProxy, origin: ProgrammableOrigin, origin_url: str, headers: dict[str, str], policy: str | None,
    status: int,
):
    # With an ETag the stale entry stays stored (to be revalidated) and reaches the decision.
    origin.set("/s", headers={**headers, "ETag": '"s"'}, body="kept")
    async with (
        FaultProxy("127.0.0.1", origin_port(origin_url)) as faulty,
        start_proxy(faulty.url, policy=policy) as proxy,
        proxy_client(proxy.url) as client,
    ):
        assert (await client.get("/s")).cache_status.stored
        await faulty.set(Fault.REFUSE)
        # RFC 9111 §4.2.4: never a stale response where a directive prohibits it; §5.2.2.2: the
        # error for must-revalidate (and the directives that imply it) SHOULD be a 504.
        refused = await client.get("/s")
        assert refused.status == status and refused.body != b"kept", refused
        assert refused.cache_status.detail == "connect"


@pytest.mark.parametrize(
    ("cache_control", "stale_served"),
    [("max-age=5", False), ("max-age=5, stale-if-error=60", True)],
    ids=["no-stale-if-error", "stale-if-error"],
)
async def test_an_origin_503_is_an_answer_not_a_disconnection(
    client: ProxyClient, origin: ProgrammableOrigin, cache_control: str, stale_served: bool
):
    origin.set("/e", headers={"Cache-Control": cache_control, "Age": "5"}, body="kept")
    await client.get("/e")
    origin.set("/e", status=503, headers={"Cache-Control": "no-store"}, body="down")
    seen = await client.get("/e")
    status = seen.cache_status
    assert not status.hit and status.fwd_status == 503, seen
    if stale_served:
        assert seen.status == 200 and seen.body == b"kept" and status.detail == "origin-503", seen
    else:
        assert seen.status == 503 and seen.body == b"down", seen


async def test_a_body_cut_short_is_an_answer_not_a_disconnection(
    start_proxy: StartProxy, origin: ProgrammableOrigin, origin_url: str
):
    # The origin sent a whole response head, then broke the body: the answer is incomplete
    # (never stored, RFC 9111 §3.3), but the origin was reached.
    origin.set("/b", headers=STALE_ON_ARRIVAL, body=b"k" * 200_000)
    async with (
        FaultProxy("127.0.0.1", origin_port(origin_url)) as faulty,
        start_proxy(faulty.url) as proxy,
        proxy_client(proxy.url) as client,
    ):
        await client.get("/b")
        await faulty.set(Fault.TRUNCATE, after_bytes=4096)
        cut = await client.get("/b")
        assert cut.status == 502 and cut.cache_status.detail == "truncated", cut
