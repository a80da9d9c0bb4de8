"""Real faults under the proxy: origin refused / slow / blackholed / reset or cut mid-body, Redis
out of memory or absent, a corrupt or too-slow model, an invalid policy reload, memory pressure
and a hot key expiring under 200 concurrent clients.

Complements tests/proxy/test_proxy_origin_failures.py (byte-level broken origins) and
tests/fleet/test_fleet_redis_outage.py (Redis killed, paused, blackholed under load).
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from redis.asyncio import Redis

from edgeproxy.proxy.runtime import ProxyRuntime
from tests.conftest import RedisServer, free_port
from tests.hardening.conftest import REPO_POLICIES, StartProxy
from tests.proxy.harness import proxy_client
from tests.support.faultproxy import Fault, FaultProxy
from tests.support.origin import ProgrammableOrigin, serve_app, serve_demo_origin

BODY = b"0123456789" * 1000
READ_TIMEOUT = 0.3
BUNDLED_MODELS = Path(__file__).resolve().parents[2] / "edgeproxy" / "demo" / "models"


def _age_by(proxy: ProxyRuntime, seconds: float) -> None:
    """Move the proxy's clock forward so stored objects are older, without sleeping."""
    proxy.edge.clock = lambda: time.time() + seconds


@pytest.fixture
async def faulty(origin_url: str) -> AsyncIterator[FaultProxy]:
    """A fault proxy between the edge and the programmable origin."""
    host, port = origin_url.removeprefix("http://").split(":")
    async with FaultProxy(host, int(port)) as fault_proxy:
        yield fault_proxy


# (fault, after_bytes, delay) → status a client gets when nothing stale may be served.
ORIGIN_FAULTS = {
    "refused": ((Fault.REFUSE, 0, 0.0), 502),
    "reset-mid-body": ((Fault.RESET, 5000, 0.0), 502),
    "truncated-mid-body": ((Fault.TRUNCATE, 5000, 0.0), 502),
    "slow": ((Fault.DELAY, 0, 4 * READ_TIMEOUT), 504),
    "blackholed": ((Fault.BLACKHOLE, 0, 0.0), 504),
}


@pytest.mark.parametrize("name", ORIGIN_FAULTS)
async def test_an_origin_fault_is_an_error_and_nothing_is_stored(
    start_proxy: StartProxy, faulty: FaultProxy, origin: ProgrammableOrigin, name: str
):
    (fault, after_bytes, delay), status = ORIGIN_FAULTS[name]
    origin.set("/r", headers={"Cache-Control": "max-age=60"}, body=BODY)
    async with start_proxy(faulty.url, origin_read_timeout=READ_TIMEOUT) as proxy, proxy_client(proxy.url) as client:
        await faulty.set(fault, after_bytes=after_bytes, delay=delay)
        failed = await client.get("/r")
        await faulty.set(Fault.PASS)
        recovered = await client.get("/r")
    assert failed.status == status and not failed.cache_status.stored, failed
    assert failed.headers["Cache-Control"] == "no-store"
    assert failed.cache_status.detail in {"connect", "reset", "truncated", "timeout"}, failed
    assert recovered.status == 200 and recovered.body == BODY, recovered
    assert not recovered.cache_status.hit and recovered.cache_status.stored, "the failed fetch left something stored"


@pytest.mark.parametrize("name", ORIGIN_FAULTS)
async def test_an_origin_fault_does_not_tell_clients_where_the_origin_is(
    start_proxy: StartProxy, faulty: FaultProxy, origin: ProgrammableOrigin, name: str
):
    # Origin addresses are internal topology (often a private network that should never be
    # probed directly); the error page says what failed, the log says where.
    (fault, after_bytes, delay), _ = ORIGIN_FAULTS[name]
    origin.set("/r", headers={"Cache-Control": "max-age=60"}, body=BODY)
    async with start_proxy(faulty.url, origin_read_timeout=READ_TIMEOUT) as proxy, proxy_client(proxy.url) as client:
        await faulty.set(fault, after_bytes=after_bytes, delay=delay)
        failed = await client.get("/r")
    assert str(faulty.port).encode() not in failed.body and b"127.0.0.1" not in failed.body, failed.body


@pytest.mark.parametrize("name", ORIGIN_FAULTS)
async def test_an_origin_fault_serves_stale_where_stale_if_error_allows(
    start_proxy: StartProxy, faulty: FaultProxy, origin: ProgrammableOrigin, name: str
):
    (fault, after_bytes, delay), _ = ORIGIN_FAULTS[name]
    origin.set("/s", headers={"Cache-Control": "max-age=1, stale-if-error=600"}, body=BODY)
    async with start_proxy(faulty.url, origin_read_timeout=READ_TIMEOUT) as proxy, proxy_client(proxy.url) as client:
        await client.get("/s")
        _age_by(proxy, 5)
        await faulty.set(fault, after_bytes=after_bytes, delay=delay)
        stale = await client.get("/s")
    assert stale.status == 200 and stale.body == BODY, stale
    assert stale.cache_status.fwd == "stale" or stale.cache_status.detail.startswith("origin-"), stale
    assert stale.age >= 5


async def test_redis_out_of_memory_fails_writes_not_requests(
    start_proxy: StartProxy, origin_url: str, origin: ProgrammableOrigin, own_redis: RedisServer
):
    redis = Redis.from_url(own_redis.url)
    try:
        # Room for about 20 of the 40 objects on top of what an empty server uses.
        baseline = int((await redis.info("memory"))["used_memory"])
        await redis.config_set("maxmemory", str(baseline + 1024 * 1024))
        await redis.config_set("maxmemory-policy", "noeviction")
        for n in range(40):
            origin.set(f"/big{n}", headers={"Cache-Control": "max-age=60"}, body=bytes([n]) * 50_000)
        async with start_proxy(origin_url, redis=own_redis.url) as proxy, proxy_client(proxy.url) as client:
            first = [await client.get(f"/big{n}") for n in range(40)]
            second = [await client.get(f"/big{n}") for n in range(40)]
            assert proxy.fleet is not None
            stats = proxy.fleet.store.stats()
        used = int((await redis.info("memory"))["used_memory"])
        limit = int((await redis.config_get("maxmemory"))["maxmemory"])
    finally:
        await redis.aclose()
    assert all(r.status == 200 and r.body == bytes([n]) * 50_000 for n, r in enumerate(first)), "a request failed"
    assert all(r.cache_status.hit for r in second), "L1 should still serve what Redis refused to store"
    assert stats["dropped_writes"] > 0 and stats["writes"] > 0, stats
    assert used <= limit * 1.05, (used, limit)


async def test_redis_absent_at_startup_degrades_to_l1(start_proxy: StartProxy, origin_url: str, origin: ProgrammableOrigin):
    origin.set("/x", headers={"Cache-Control": "max-age=60"}, body="x")
    async with start_proxy(origin_url, redis=f"redis://127.0.0.1:{free_port()}/0") as proxy, proxy_client(proxy.url) as client:
        miss = await client.get("/x")
        hit = await client.get("/x")
    assert (miss.status, hit.status) == (200, 200) and hit.cache_status.hit, (miss, hit)
    assert origin.count("/x") == 1


# ------------------------------------------------------------------ models


async def _personalized_vs_base(proxy: ProxyRuntime, demo_url: str) -> tuple[list[aiohttp.ClientResponse], bytes]:
    target = "/api/items?category=books&limit=20"
    async with aiohttp.ClientSession() as session:
        async with session.get(demo_url + target) as direct:
            base = await direct.read()
        replies = []
        for _ in range(3):
            async with session.get(proxy.url + target, headers={"Cookie": "uid=u0001"}) as response:
                await response.read()
                replies.append(response)
    return replies, base


def _fallbacks(proxy: ProxyRuntime, reason: str) -> float:
    value = proxy.metrics.registry.get_sample_value("edgeproxy_personalize_fallbacks_total", {"reason": reason})
    return value or 0.0


async def test_a_truncated_model_file_serves_the_base_order_and_counts_the_fallback(
    start_proxy: StartProxy, tmp_path: Path
):
    models = tmp_path / "models"
    shutil.copytree(BUNDLED_MODELS, models)
    model_file = models / "demo-ranker-v1.txt"
    model_file.write_bytes(model_file.read_bytes()[: model_file.stat().st_size // 3])
    async with serve_demo_origin() as demo_url, start_proxy(
        demo_url, policies=REPO_POLICIES, models=models, events_path=tmp_path / "events.jsonl"
    ) as proxy:
        replies, base = await _personalized_vs_base(proxy, demo_url)
        fallbacks = _fallbacks(proxy, "no-model")
    assert [r.status for r in replies] == [200, 200, 200]
    assert all("no-model" in r.headers["Cache-Status"] for r in replies), [r.headers["Cache-Status"] for r in replies]
    assert fallbacks == 3


async def test_a_model_slower_than_its_deadline_serves_the_base_order(
    start_proxy: StartProxy, tmp_path: Path
):
    demo = (REPO_POLICIES / "demo.yaml").read_text(encoding="utf-8")
    policies = tmp_path / "policies"
    policies.mkdir()
    # One microsecond: no real model scores a list that fast, so every ranking overruns.
    (policies / "demo.yaml").write_text(demo.replace("deadline: 2ms", "deadline: 0.000001"), encoding="utf-8")
    async with serve_demo_origin() as demo_url, start_proxy(
        demo_url, policies=policies, events_path=tmp_path / "events.jsonl"
    ) as proxy:
        replies, base = await _personalized_vs_base(proxy, demo_url)
        fallbacks = _fallbacks(proxy, "deadline")
    assert [r.status for r in replies] == [200, 200, 200]
    assert fallbacks == 3, [r.headers["Cache-Status"] for r in replies]


# ------------------------------------------------------------------ policies


GOOD_POLICY = """
policies:
  site:
    match: {hosts: ["*"], paths: ["/*"]}
    ttl: {default: 60s}
"""


@pytest.mark.parametrize(
    "broken",
    ["policies: {site: [unclosed", "policies:\n  site:\n    ttl: {default: forever}\n", "policies:\n  site:\n    colour: red\n"],
    ids=["yaml-syntax", "bad-duration", "unknown-key"],
)
async def test_an_invalid_policy_on_reload_keeps_the_old_one_serving(
    start_proxy: StartProxy, origin_url: str, origin: ProgrammableOrigin, broken: str
):
    origin.set("/plain", body="no freshness information")  # stored only because of ttl.default
    async with start_proxy(origin_url, policy=GOOD_POLICY, admin=("127.0.0.1", 0), policy_watch_interval=60) as proxy:
        version = proxy.policies.current.version
        assert proxy.config.policies is not None
        (proxy.config.policies / "p.yaml").write_text(broken, encoding="utf-8")
        async with aiohttp.ClientSession() as session:
            async with session.post(f"http://127.0.0.1:{proxy.admin_port}/reload") as response:
                reload_status, outcome = response.status, await response.json()
        async with proxy_client(proxy.url) as client:
            miss = await client.get("/plain")
            hit = await client.get("/plain")
        current = proxy.policies.current.version
    assert reload_status >= 400 and outcome["outcome"] != "applied", outcome
    assert current == version
    assert miss.cache_status.stored and hit.cache_status.hit, (miss, hit)


# ------------------------------------------------------------------ memory


async def test_l1_stays_within_its_byte_bound_under_many_objects(
    start_proxy: StartProxy, origin_url: str, origin: ProgrammableOrigin
):
    capacity = 256 * 1024
    for n in range(300):
        origin.set(f"/o{n}", headers={"Cache-Control": "max-age=60"}, body=bytes([n % 256]) * 2048)
    origin.set("/huge", headers={"Cache-Control": "max-age=60"}, body=b"h" * (2 * capacity))
    async with start_proxy(origin_url, cache_size=capacity) as proxy, proxy_client(proxy.url) as client:
        peak = 0
        for n in range(300):
            assert (await client.get(f"/o{n}")).status == 200
            peak = max(peak, proxy.l1.stats()["bytes"])
        huge = await client.get("/huge")
        peak = max(peak, proxy.l1.stats()["bytes"])
        objects = proxy.l1.stats()["objects"]
    assert huge.status == 200 and huge.body == b"h" * (2 * capacity)
    assert peak <= capacity * 1.05, f"L1 peaked at {peak} bytes for a {capacity}-byte bound"
    assert objects > 50, "the bound should still leave room for many small objects"


SMALL_OBJECTS = """
policies:
  small:
    match: {hosts: ["*"], paths: ["/*"]}
    store: {max_object_size: 16KB}
"""


async def test_an_object_over_the_per_object_cap_streams_through_unstored(
    start_proxy: StartProxy, origin_url: str, origin: ProgrammableOrigin
):
    big = bytes(range(256)) * 400  # 100 KiB
    origin.set("/big", headers={"Cache-Control": "max-age=60"}, body=big)
    async with start_proxy(origin_url, policy=SMALL_OBJECTS) as proxy, proxy_client(proxy.url) as client:
        first = await client.get("/big")
        second = await client.get("/big")
        stored_bytes = proxy.l1.stats()["bytes"]
    assert first.body == second.body == big
    assert not first.cache_status.stored and not second.cache_status.hit, (first, second)
    assert stored_bytes < 16 * 1024
    assert origin.count("/big") == 2


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_an_oversize_body_reaches_the_client_while_the_origin_is_still_sending(
    start_proxy: StartProxy, declared: bool
):
    # Streamed, not buffered: otherwise every client of a large object costs its full size in
    # memory. The origin holds back the second half until the client has the first half, so a
    # proxy that waited for the whole body would deadlock here (and fail the wait below).
    first, rest = b"a" * 65536, b"b" * 65536
    client_has_first = asyncio.Event()

    async def large(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Cache-Control": "max-age=60"})
        if declared:
            response.content_length = len(first) + len(rest)
        await response.prepare(request)
        await response.write(first)
        await asyncio.wait_for(client_has_first.wait(), 5)
        await response.write(rest)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/large", large)
    async with serve_app(app) as url, start_proxy(url, policy=SMALL_OBJECTS) as proxy, proxy_client(proxy.url) as client:
        async with client.session.get(proxy.url + "/large") as response:
            try:
                head = await asyncio.wait_for(response.content.readexactly(len(first)), 3)
            except TimeoutError:
                pytest.fail("the proxy held the first half back until the origin finished")
            client_has_first.set()
            tail = await response.read()
        stored_bytes = proxy.l1.stats()["bytes"]
    assert head + tail == first + rest
    assert stored_bytes < 16 * 1024


# ------------------------------------------------------------------ stampede


@pytest.mark.parametrize("validator", [None, '"v1"'], ids=["refetch", "revalidate"])
async def test_a_hot_key_expiring_under_200_clients_makes_one_origin_request(
    start_proxy: StartProxy, origin: ProgrammableOrigin, validator: str | None
):
    headers = {"Cache-Control": "max-age=1"} | ({"ETag": validator} if validator else {})
    origin.set("/hot", headers=headers, body=BODY, delay=0.3)
    async with serve_app(origin.app()) as url, start_proxy(url) as proxy, proxy_client(proxy.url) as client:
        await client.get("/hot")
        _age_by(proxy, 5)
        replies = await asyncio.gather(*(client.get("/hot") for _ in range(200)))
    assert all(r.status == 200 and r.body == BODY for r in replies), {r.status for r in replies}
    assert origin.count("/hot") == 2, f"{origin.count('/hot') - 1} origin requests for one expiry"


async def test_a_range_request_at_expiry_does_not_switch_off_collapsing(start_proxy: StartProxy):
    # A client's Range makes the origin answer 206, which is not stored; if that marked the key
    # uncacheable (hit-for-miss), one cheap request timed at a hot key's expiry would send every
    # following client to the origin uncollapsed.
    served = Counter[str]()

    async def ranged(request: web.Request) -> web.Response:
        served[request.headers.get("Range", "full")] += 1
        await asyncio.sleep(0.3)
        headers = {"Cache-Control": "max-age=1", "Accept-Ranges": "bytes"}
        if "Range" in request.headers:  # RFC 9110 §14.2: this origin honours bytes=0-9 only
            return web.Response(status=206, body=BODY[:10], headers={**headers, "Content-Range": f"bytes 0-9/{len(BODY)}"})
        return web.Response(body=BODY, headers=headers)

    app = web.Application()
    app.router.add_get("/hot", ranged)
    async with serve_app(app) as url, start_proxy(url) as proxy, proxy_client(proxy.url) as client:
        await client.get("/hot")
        _age_by(proxy, 5)
        await client.get("/hot", headers={"Range": "bytes=0-9"})
        replies = await asyncio.gather(*(client.get("/hot") for _ in range(200)))
    assert all(r.status == 200 and r.body == BODY for r in replies), {r.status for r in replies}
    # The Range request is filled as a full GET (RFC 9110 §14.2: a cache may ignore Range) and
    # the 200 clients collapse onto it; with max-age=1 and a 0.3 s origin, one more collapsed
    # refresh may fall inside the burst on a slow machine — never one per client.
    assert served["bytes=0-9"] == 0, served
    assert served["full"] <= 3, f"{served['full'] - 1} full origin requests from 200 clients after one Range request"


# What the origin answers one client: errors a client can provoke, and a page private to that
# client (a signed-in user reloading a public page: the reload's max-age=0 reaches the origin).
ONE_CLIENT_ANSWERS = {
    "400": (400, {}, b"refused"),
    "429": (429, {"Retry-After": "60"}, b"slow down"),
    "431": (431, {}, b"cookie too large"),
    "private": (200, {"Cache-Control": "private, max-age=60"}, b"your own page"),
}


@pytest.mark.parametrize("answer", ONE_CLIENT_ANSWERS)
@pytest.mark.parametrize("when", ["fresh-no-cache", "at-expiry"])
async def test_an_answer_meant_for_one_client_does_not_switch_off_the_cache(
    start_proxy: StartProxy, answer: str, when: str
):
    # An origin refusing *one request* (an oversized cookie → 400/431 at nginx, a per-client rate
    # limit → 429) or answering it privately says nothing about the shared resource. If that
    # marked the key uncacheable (hit-for-miss) and hit-for-miss outranked the stored entry, one
    # cheap request — at expiry, or any time with `Cache-Control: no-cache`, which sends it to the
    # origin — would send every client of a hot key there uncollapsed.
    status, headers, body = ONE_CLIENT_ANSWERS[answer]
    served = Counter[str]()

    async def answering(request: web.Request) -> web.Response:
        if "X-One-Client" in request.headers:
            served["one-client"] += 1
            return web.Response(status=status, headers=headers, body=body)
        served["full"] += 1
        await asyncio.sleep(0.3)
        return web.Response(body=BODY, headers={"Cache-Control": "max-age=60"})

    app = web.Application()
    app.router.add_get("/hot", answering)
    one_client = {"X-One-Client": "1"} | ({"Cache-Control": "no-cache"} if when == "fresh-no-cache" else {})
    async with serve_app(app) as url, start_proxy(url) as proxy, proxy_client(proxy.url) as client:
        await client.get("/hot")
        if when == "at-expiry":
            _age_by(proxy, 120)
        theirs = await client.get("/hot", headers=one_client)
        replies = await asyncio.gather(*(client.get("/hot") for _ in range(200)))
    assert (theirs.status, theirs.body, served["one-client"]) == (status, body, 1), (theirs, served)
    assert all(r.status == 200 and r.body == BODY for r in replies), {r.status for r in replies}
    # Fresh: every client is a hit. At expiry: one collapsed refresh (a second may fall inside
    # the burst on a slow machine, as in the Range test above) — never one per client.
    allowed = 1 if when == "fresh-no-cache" else 3
    assert served["full"] <= allowed, f"{served['full'] - 1} origin requests from 200 clients after one {answer} answer"
