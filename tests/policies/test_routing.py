"""RouteCache: a remembered route is always the route the request would get computed afresh.

The memo keys a route by method, host, target and only the fields the policies' rules read;
these tests send many request shapes through one cache and hold every answer to ``route``.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from edgeproxy.cache.message import RequestHead
from edgeproxy.policies.match import PolicySet
from edgeproxy.policies.model import BypassSettings, KeySettings, Policy
from edgeproxy.policies.routing import RouteCache, fields_read, route

API = Policy(
    "api",
    priority=10,
    paths=("/api/*",),
    bypass=BypassSettings(headers=("x-preview",), cookies=("session",)),
    key=KeySettings(headers=("accept-language",), cookies=("currency",), device_class=True),
)
STATIC = Policy("static", priority=5, paths=("/static/*",), key=KeySettings(query="ignore"))
POLICIES = PolicySet("test", (API, STATIC))

FIELDS = [
    ("cookie", "session=1"), ("cookie", "currency=eur"), ("cookie", "currency=usd; session=2"),
    ("user-agent", "Mozilla/5.0 (iPhone)"), ("user-agent", "curl/8"), ("accept-language", "en"),
    ("accept-language", "de"), ("authorization", "Bearer x"), ("x-preview", "1"), ("accept", "*/*"),
    ("x-trace", "1"), ("if-none-match", '"a"'),
]
field_lists = st.lists(st.sampled_from(FIELDS), max_size=4).map(tuple)
methods = st.sampled_from(["GET", "HEAD", "POST"])
hosts = st.sampled_from(["shop.example", "Shop.Example", "cdn.example:8080"])
targets = st.sampled_from(["/api/items", "/api/items?b=2&a=1", "/static/app.js?v=3", "/about", "/static/app.js"])
requests = st.builds(RequestHead, method=methods, host=hosts, target=targets, headers=field_lists)


@given(st.lists(requests, min_size=1, max_size=40))
def test_every_remembered_route_equals_the_route_computed_afresh(shapes: list[RequestHead]) -> None:
    cache = RouteCache()
    for req in [*shapes, *reversed(shapes)]:
        assert cache.route(POLICIES, req) == route(POLICIES, req)


@given(methods, hosts, targets, st.lists(field_lists, min_size=2, max_size=6))
def test_one_url_with_different_fields_never_gets_another_requests_route(
    method: str, host: str, target: str, fields: list[tuple[tuple[str, str], ...]]
) -> None:
    cache = RouteCache()
    for headers in fields:
        req = RequestHead(method, host, target, headers)
        assert cache.route(POLICIES, req) == route(POLICIES, req)


def test_the_fields_read_are_those_the_rules_and_key_settings_name() -> None:
    assert fields_read(POLICIES) == {"authorization", "x-preview", "cookie", "accept-language", "user-agent"}
    assert fields_read(PolicySet("plain", (STATIC,))) == {"authorization"}


def test_fields_no_rule_reads_do_not_make_new_shapes() -> None:
    cache = RouteCache()
    for trace in range(50):
        cache.route(POLICIES, RequestHead("GET", "shop.example", "/api/items", (("x-trace", str(trace)),)))
    assert len(cache) == 1


def test_a_new_policy_set_is_routed_by_its_own_policies() -> None:
    cache = RouteCache()
    req = RequestHead("GET", "shop.example", "/static/app.js?v=3")
    assert cache.route(POLICIES, req).key.upstream_target == "/static/app.js"
    reloaded = PolicySet("reloaded", (API,))
    assert cache.route(reloaded, req).policy.name == "builtin-default"
    assert cache.route(reloaded, req).key.upstream_target == "/static/app.js?v=3"


def test_a_full_memo_starts_over_instead_of_growing() -> None:
    cache = RouteCache(capacity=8)
    for n in range(20):
        cache.route(POLICIES, RequestHead("GET", "shop.example", f"/page/{n}"))
        assert len(cache) <= 8
