"""Per-client token buckets: the pure limiter with time passed in, then 429s over real HTTP."""

from __future__ import annotations

import pytest
from admin_harness import Admin

from edgeproxy.admin.ratelimit import RateLimit, RateLimiter, retry_after_header


def test_a_quiet_client_gets_its_burst_then_waits_for_refill() -> None:
    limiter = RateLimiter(RateLimit(per_second=2, burst=3))
    assert [limiter.acquire("a", now=100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("a", now=100.0) == pytest.approx(0.5)
    assert limiter.acquire("a", now=100.5) == 0.0
    assert limiter.acquire("b", now=100.5) == 0.0, "buckets are per client"


def test_refill_never_exceeds_the_burst() -> None:
    limiter = RateLimiter(RateLimit(per_second=10, burst=2))
    limiter.acquire("a", now=0.0)
    assert [limiter.acquire("a", now=3600.0) for _ in range(3)][-1] > 0


def test_memory_is_bounded_by_forgetting_the_least_recent_client() -> None:
    limiter = RateLimiter(RateLimit(per_second=1, burst=1), max_clients=2)
    limiter.acquire("a", now=0.0)
    limiter.acquire("b", now=0.0)
    limiter.acquire("c", now=0.0)
    assert limiter.acquire("b", now=0.0) > 0, "b is still tracked"
    assert limiter.acquire("a", now=0.0) == 0.0, "a was forgotten and starts afresh"


@pytest.mark.parametrize(("wait", "header"), [(0.01, "1"), (1.0, "1"), (1.2, "2")])
def test_retry_after_rounds_up_to_whole_seconds(wait: float, header: str) -> None:
    assert retry_after_header(wait) == header


@pytest.fixture
def rate() -> RateLimit:
    return RateLimit(per_second=0.5, burst=3)


async def test_over_the_limit_is_429_with_retry_after_and_healthz_is_exempt(admin: Admin) -> None:
    statuses = []
    for _ in range(4):
        async with admin.http.get(admin.base + "/stats", headers=admin.auth()) as resp:
            statuses.append(resp.status)
            retry_after = resp.headers.get("Retry-After")
    assert statuses == [200, 200, 200, 429]
    assert retry_after == "2"
    async with admin.http.get(admin.base + "/stats", headers=admin.auth("guess")) as resp:
        assert resp.status == 429, "token guessing is throttled too"
    async with admin.http.get(admin.base + "/healthz") as resp:
        assert resp.status == 200
