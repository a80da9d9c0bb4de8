"""RFC 9211 Cache-Status: one list member saying what this cache did."""

from __future__ import annotations

import pytest

from edgeproxy.cache.phases import CachePhase
from edgeproxy.cache.status import CacheStatus


@pytest.mark.parametrize(
    ("status", "rendered"),
    [
        (CacheStatus(CachePhase.HIT, ttl=42.9), "edgeproxy; hit; ttl=42"),
        (CacheStatus(CachePhase.HIT, ttl=10, detail="l1"), 'edgeproxy; hit; ttl=10; detail="l1"'),
        (CacheStatus(CachePhase.STALE_UPDATING, ttl=-5), 'edgeproxy; hit; ttl=-5; detail="stale-updating"'),
        (CacheStatus(CachePhase.STALE, fwd_status=503, ttl=-30, detail="origin-503"),
         'edgeproxy; fwd=stale; fwd-status=503; ttl=-30; detail="origin-503"'),
        (CacheStatus(CachePhase.MISS, fwd_status=200, ttl=60, stored=True),
         "edgeproxy; fwd=uri-miss; fwd-status=200; ttl=60; stored"),
        (CacheStatus(CachePhase.VARY_MISS, fwd_status=200), 'edgeproxy; fwd=vary-miss; fwd-status=200; detail="vary-miss"'),
        (CacheStatus(CachePhase.REVALIDATED, fwd_status=304, ttl=60, stored=True),
         'edgeproxy; fwd=stale; fwd-status=304; ttl=60; stored; detail="revalidated"'),
        (CacheStatus(CachePhase.EXPIRED, fwd_status=200), 'edgeproxy; fwd=stale; fwd-status=200; detail="expired"'),
        (CacheStatus(CachePhase.BYPASS, fwd_status=200, forward_reason="method", detail="req_method"),
         'edgeproxy; fwd=method; fwd-status=200; detail="req_method"'),
        (CacheStatus(CachePhase.HIT_FOR_MISS, fwd_status=200), 'edgeproxy; fwd=bypass; fwd-status=200; detail="hit-for-miss"'),
        (CacheStatus(CachePhase.MISS, fwd_status=200, collapsed=True), "edgeproxy; fwd=uri-miss; fwd-status=200; collapsed"),
        (CacheStatus(CachePhase.ONLY_IF_CACHED), 'edgeproxy; detail="only-if-cached"'),
        (CacheStatus(CachePhase.ERROR, detail="timeout"), 'edgeproxy; fwd=uri-miss; detail="timeout"'),
    ],
    ids=["hit", "hit-detail", "swr-is-hit-with-negative-ttl", "stale-if-error", "miss-stored", "vary-miss",
         "revalidated", "expired", "bypass-method", "hit-for-miss", "collapsed", "only-if-cached", "error"],
)
def test_render(status: CacheStatus, rendered: str) -> None:
    """§2.1 hit, §2.2 fwd, §2.3 fwd-status, §2.4 ttl, §2.5 stored, §2.6 collapsed, §2.8 detail."""
    assert status.render() == rendered


def test_detail_is_a_safe_sf_string() -> None:
    """RFC 8941 §3.3.3: printable ASCII only; quotes and backslashes would break the field."""
    rendered = CacheStatus(CachePhase.ERROR, detail='a"b\\c\r\né').render()
    assert rendered.endswith('detail="abc"')


def test_custom_cache_name() -> None:
    assert CacheStatus(CachePhase.HIT).render("pop-ams") == "pop-ams; hit"
