"""Purges as bans: URL, prefix, tag, everything and soft; only objects stored before the ban."""

from __future__ import annotations

from dataclasses import replace

import pytest

from edgeproxy.cache.bans import Ban, BanList, BanVerdict, normalize_purge_target
from edgeproxy.cache.entry import CacheEntry
from tests.support.keys import key_for

from .factories import T0, make_entry, stored_at

ENTRY = stored_at(make_entry(max_age=60, surrogate_key="items items:books"), 0)


def with_url(url: str) -> CacheEntry:
    return replace(ENTRY, key=key_for(url))


@pytest.mark.parametrize(
    ("target", "normalized"),
    [
        ("http://Example.COM/a?b=1", "example.com/a?b=1"),
        ("https://example.com", "example.com/"),
        ("example.com/a", "example.com/a"),
        ("/a?b", "/a?b"),
    ],
    ids=["absolute-url", "no-path", "scheme-less", "any-host-path"],
)
def test_normalize_purge_target(target: str, normalized: str) -> None:
    assert normalize_purge_target(target) == normalized


@pytest.mark.parametrize(
    ("ban", "url", "matches"),
    [
        (Ban.create(T0 + 1, urls=["http://example.com/r"]), "example.com/r", True),
        (Ban.create(T0 + 1, urls=["http://example.com/r"]), "example.com/r?x=1", False),
        (Ban.create(T0 + 1, urls=["/r"]), "other.example/r", True),
        (Ban.create(T0 + 1, urls=["http://other.example/r"]), "example.com/r", False),
        (Ban.create(T0 + 1, prefixes=["example.com/api/"]), "example.com/api/items?x", True),
        (Ban.create(T0 + 1, prefixes=["example.com/api/"]), "example.com/apix", False),
        (Ban.create(T0 + 1, prefixes=["/api"]), "any.example/api/x", True),
        (Ban.create(T0 + 1, tags=["items:books"]), "example.com/r", True),
        (Ban.create(T0 + 1, tags=["items:music"]), "example.com/r", False),
        (Ban.create(T0 + 1, everything=True), "example.com/r", True),
        (Ban.create(T0 + 1), "example.com/r", False),
    ],
    ids=["url", "url-exact-with-query", "path-any-host", "other-host", "prefix", "prefix-is-literal",
         "path-prefix-any-host", "tag", "other-tag", "everything", "empty-ban-matches-nothing"],
)
def test_ban_matches(ban: Ban, url: str, matches: bool) -> None:
    assert ban.matches(with_url(url)) is matches


@pytest.mark.parametrize(("stored", "banned"), [(-10, True), (1, True), (2, False)],
                         ids=["stored-before", "stored-same-instant", "stored-after"])
def test_only_objects_stored_before_the_ban(stored: float, banned: bool) -> None:
    """A ban applies to what existed when it was issued, never to later fills."""
    ban = Ban.create(T0 + 1, everything=True)
    assert ban.matches(stored_at(ENTRY, stored)) is banned


def test_verdicts() -> None:
    bans = BanList(max_object_lifetime=3600)
    assert bans.verdict(ENTRY) is BanVerdict.NONE
    bans.add(Ban.create(T0 + 5, tags=["items"], soft=True))
    assert bans.verdict(ENTRY) is BanVerdict.SOFT
    bans.add(Ban.create(T0 + 3, urls=["example.com/r"]))
    assert bans.verdict(ENTRY) is BanVerdict.HARD, "a hard ban wins over a soft one"
    assert bans.verdict(stored_at(ENTRY, 10)) is BanVerdict.NONE


def test_expire_forgets_bans_older_than_any_object() -> None:
    bans = BanList(max_object_lifetime=100)
    bans.add(Ban.create(T0, everything=True))
    bans.add(Ban.create(T0 + 50, everything=True))
    bans.expire(T0 + 120)
    assert len(bans) == 1
    bans.expire(T0 + 151)
    assert len(bans) == 0


def test_json_round_trip() -> None:
    ban = Ban.create(T0, urls=["http://a.example/x"], prefixes=["/p"], tags=["t1", "t2"], soft=True)
    assert Ban.from_json(ban.to_json()) == ban
    assert Ban.from_json(Ban.create(T0, everything=True).to_json()).everything


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"urls": ["/a"]}, "issued_at"),
        ({"issued_at": "yesterday"}, "issued_at"),
        ({"issued_at": True}, "issued_at"),
        ({"issued_at": 1.0, "urls": "/a"}, "urls"),
        ({"issued_at": 1.0, "tags": [1, 2]}, "tags"),
    ],
    ids=["missing-time", "time-not-number", "time-bool", "urls-not-list", "tags-not-strings"],
)
def test_malformed_ban_from_a_peer_is_rejected(payload: dict[str, object], field: str) -> None:
    """A ban from the bus that cannot be read must not silently become one that matches wrongly."""
    with pytest.raises(TypeError, match=field):
        Ban.from_json(payload)
