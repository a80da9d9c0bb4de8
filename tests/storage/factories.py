"""Small factories for stored objects, shared by the storage tests."""

from __future__ import annotations

from edgeproxy.cache.entry import CacheEntry, Headers, VaryIndex, pack_fields
from tests.support.keys import key_for


def make_entry(
    *,
    key: str = key_for("example.test/items/1"),
    body: bytes = b'{"id": 1}',
    response_time: float = 1000.0,
    fresh_for: float = 60.0,
    stale_while_revalidate: float = 0.0,
    stale_if_error: float = 0.0,
    stale_if_disconnected: float = 0.0,
    initial_age: float = 0.0,
    headers: Headers = (("content-type", "application/json"), ("etag", '"v1"')),
) -> CacheEntry:
    return CacheEntry(
        key=key,
        status=200,
        fields=pack_fields(headers),
        body=body,
        request_time=response_time - 0.01,
        response_time=response_time,
        fresh_for=fresh_for,
        initial_age=initial_age,
        stale_while_revalidate=stale_while_revalidate,
        stale_if_error=stale_if_error,
        stale_if_disconnected=stale_if_disconnected,
        tags=frozenset({"item:1"}),
        stored_at=response_time,
    )


def make_vary_index(*, stored_at: float = 1000.0, fresh_for: float = 60.0) -> VaryIndex:
    return VaryIndex(key="GET|example.test/greeting", header_names=("accept-language",),
                     stored_at=stored_at, fresh_for=fresh_for)
