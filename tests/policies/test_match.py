"""Choosing a policy: host wildcards, path globs and regexes, methods, priority, fallback."""

from __future__ import annotations

import pytest

from edgeproxy.policies.builtin import DEFAULT_POLICY
from edgeproxy.policies.match import PolicySet, host_for_match
from edgeproxy.policies.model import Policy
from edgeproxy.policies.patterns import compile_host, compile_path, hosts_overlap, path_for_match, paths_may_overlap

POLICIES = PolicySet(
    "test",
    (
        Policy("site", priority=0),
        Policy("shop-any", hosts=("*.shop.example",), priority=5),
        Policy("shop-apex", hosts=("shop.example",), priority=6),
        Policy("static", paths=("/static/*",), priority=50),
        Policy("images", paths=("/static/*.png", "/img/?/[a-c]*"), priority=60),
        Policy("api-versioned", paths=("re:^/api/v[0-9]+/",), priority=40),
        Policy("api-writes", paths=("/api/*",), methods=("POST", "PUT"), priority=45),
        Policy("exact", paths=("/robots.txt",), priority=70),
        Policy("feeds", paths=("/feed/*",), methods=("GET",), priority=80),
    ),
)


@pytest.mark.parametrize(
    ("host", "method", "path", "expected"),
    [
        ("www.example", "GET", "/", "site"),
        ("a.shop.example", "GET", "/", "shop-any"),
        ("a.b.shop.example", "GET", "/", "shop-any"),
        ("shop.example", "GET", "/", "shop-apex"),
        ("SHOP.example:8443", "GET", "/", "shop-apex"),
        ("notshop.example", "GET", "/", "site"),
        ("x", "GET", "/static/app.css", "static"),
        ("x", "GET", "/static/deep/dir/logo.png", "images"),
        ("x", "GET", "/img/1/apple.jpg", "images"),
        ("x", "GET", "/img/12/apple.jpg", "site"),
        ("x", "GET", "/img/1/zebra.jpg", "site"),
        ("x", "GET", "/api/v2/items", "api-versioned"),
        ("x", "GET", "/api/vx/items", "site"),
        ("x", "POST", "/api/v2/items", "api-writes"),
        ("x", "GET", "/api/other", "site"),
        ("x", "GET", "/robots.txt", "exact"),
        ("x", "GET", "/robots.txt.bak", "site"),
        ("x", "HEAD", "/feed/rss", "feeds"),
        ("x", "POST", "/feed/rss", "site"),
    ],
)
def test_highest_priority_matching_policy_wins(host: str, method: str, path: str, expected: str) -> None:
    assert POLICIES.match(host, method, path).name == expected


def test_policies_are_kept_highest_priority_first() -> None:
    assert [p.priority for p in POLICIES.policies] == sorted((p.priority for p in POLICIES.policies), reverse=True)


def test_no_match_falls_back_to_the_builtin_default() -> None:
    only_api = PolicySet("v", (Policy("api", paths=("/api/*",)),))
    assert only_api.match("x", "GET", "/other") is DEFAULT_POLICY
    assert only_api.explain("x", "GET", "/other").host_pattern is None


def test_explain_names_the_patterns_that_matched() -> None:
    reason = POLICIES.explain("a.shop.example", "GET", "/static/a.png")
    assert (reason.policy.name, reason.host_pattern, reason.path_pattern) == ("images", "*", "/static/*.png")
    assert not reason.method_listed
    assert POLICIES.explain("x", "PUT", "/api/a").method_listed


@pytest.mark.parametrize(
    "spelling",
    ["/static/a.css", "/%73tatic/a.css", "/x/../static/a.css", "/./static/a.css", "/static/./a.css"],
)
def test_patterns_cannot_be_dodged_by_spelling_the_path_differently(spelling: str) -> None:
    assert POLICIES.match("x", "GET", spelling).name == "static"


@pytest.mark.parametrize(
    ("path", "seen"),
    [
        ("/a/b", "/a/b"),
        ("/a/%62", "/a/b"),
        ("/a/%2F", "/a/%2F"),
        ("/a/b/..", "/a/"),
        ("/a/./b/../c", "/a/c"),
        ("/..", "/"),
        ("/%7Euser", "/~user"),
        ("*", "*"),
    ],
)
def test_path_for_match(path: str, seen: str) -> None:
    assert path_for_match(path) == seen


@pytest.mark.parametrize(
    ("host", "seen"),
    [("Shop.Example", "shop.example"), ("shop.example:80", "shop.example"), ("shop.example.", "shop.example"), ("[::1]:8080", "[::1]")],
)
def test_host_for_match(host: str, seen: str) -> None:
    assert host_for_match(host) == seen


@pytest.mark.parametrize(
    ("pattern", "kind"),
    [("/a", "exact"), ("/a/*", "prefix"), ("/*", "prefix"), ("*", "any"), ("/a/*.css", "glob"), ("re:^/a", "regex")],
)
def test_common_patterns_avoid_regexes(pattern: str, kind: str) -> None:
    assert compile_path(pattern).kind.value == kind


@pytest.mark.parametrize(
    ("a", "b", "overlap"),
    [
        ("*", "shop.example", True),
        ("shop.example", "shop.example", True),
        ("shop.example", "blog.example", False),
        ("*.shop.example", "a.shop.example", True),
        ("*.shop.example", "shop.example", False),
        ("*.shop.example", "*.eu.shop.example", True),
        ("*.shop.example", "*.blog.example", False),
    ],
)
def test_host_overlap(a: str, b: str, overlap: bool) -> None:
    assert hosts_overlap(compile_host(a), compile_host(b)) is overlap
    assert hosts_overlap(compile_host(b), compile_host(a)) is overlap


@pytest.mark.parametrize(
    ("a", "b", "overlap"),
    [
        ("/a", "/a", True),
        ("/a", "/b", False),
        ("/a/*", "/a/b", True),
        ("/a/*", "/b/*", False),
        ("/a/*.css", "/a/x/*", True),
        ("/a/*.css", "/b/*", False),
        ("re:^/api/v[0-9]+/", "/api/*", True),
        ("re:^/api/v[0-9]+/", "/static/*", False),
        ("re:^/api/v[0-9]+/", "/api/v1/", True),
        ("re:^/api/v[0-9]+/", "/api/items", False),
        ("re:^/a|^/b", "/b/*", True),
        ("re:\\.css$", "/static/*", True),
    ],
)
def test_path_overlap_is_exact_or_conservative(a: str, b: str, overlap: bool) -> None:
    assert paths_may_overlap(compile_path(a), compile_path(b)) is overlap
    assert paths_may_overlap(compile_path(b), compile_path(a)) is overlap
