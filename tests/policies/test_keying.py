"""Cache keys: equivalent URLs share a key, different keyed parts never do, and the origin is
always asked for exactly what was keyed."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeproxy.cache.message import RequestHead
from edgeproxy.policies.builtin import DEFAULT_POLICY
from edgeproxy.policies.device import DeviceClass, device_class
from edgeproxy.policies.keying import request_key
from edgeproxy.policies.model import KeySettings, Policy

SORTED = Policy("sorted", key=KeySettings(sort_query=True, strip_params=("utm_*", "fbclid")))
INCLUDE = Policy("include", key=KeySettings(query="include", query_params=("category", "limit"), sort_query=True))
EXCLUDE = Policy("exclude", key=KeySettings(query="exclude", query_params=("sid", "ref_*")))
IGNORE = Policy("ignore", key=KeySettings(query="ignore"))
VARIED = Policy("varied", key=KeySettings(headers=("accept-language",), cookies=("currency",), device_class=True))

names = st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=6).filter(
    lambda n: not n.startswith("utm_") and n != "fbclid"
)
values = st.text(alphabet=string.ascii_letters + string.digits + "-._~%+", max_size=6)
pairs = st.lists(st.tuples(names, values), max_size=6, unique_by=lambda p: p[0])
paths = st.text(alphabet=string.ascii_letters + string.digits + "/-._~%!$&'()*+,;=:@", max_size=20).map(lambda p: "/" + p)
trackers = st.lists(st.tuples(st.sampled_from(["utm_source", "utm_medium", "utm_campaign", "fbclid"]), values), max_size=3)


def get(target: str, *headers: tuple[str, str], method: str = "GET", host: str = "shop.example") -> RequestHead:
    return RequestHead(method, host, target, headers)


def query(items: list[tuple[str, str]]) -> str:
    return "&".join(f"{k}={v}" for k, v in items)


@given(paths, pairs, st.randoms())
def test_parameter_order_does_not_matter_when_sorted(path: str, params: list[tuple[str, str]], random) -> None:
    shuffled = list(params)
    random.shuffle(shuffled)
    a = request_key(SORTED, get(f"{path}?{query(params)}"))
    b = request_key(SORTED, get(f"{path}?{query(shuffled)}"))
    assert (a.text, a.hash, a.upstream_target) == (b.text, b.hash, b.upstream_target)


@given(paths, pairs, trackers, st.integers(min_value=0, max_value=6))
def test_tracking_parameters_leave_key_and_upstream_alone(path: str, params, tracking, at: int) -> None:
    clean = request_key(SORTED, get(f"{path}?{query(params)}"))
    tracked = params[:at] + tracking + params[at:]
    dirty = request_key(SORTED, get(f"{path}?{query(tracked)}"))
    assert dirty.hash == clean.hash
    assert dirty.upstream_target == clean.upstream_target
    assert "utm_" not in dirty.upstream_target and "fbclid" not in dirty.upstream_target


@given(st.sampled_from([DEFAULT_POLICY, SORTED, INCLUDE, EXCLUDE, IGNORE, VARIED]), paths, pairs)
def test_upstream_target_is_the_keyed_target(policy: Policy, path: str, params) -> None:
    req = get(f"{path}?{query(params)}" if params else path)
    key = request_key(policy, req)
    assert dict(key.parts)["target"] == key.upstream_target
    assert key.url == "shop.example" + key.upstream_target
    assert key.upstream_target.split("?")[0] == path


@given(st.text(alphabet=string.printable.replace("\n", "").replace("\r", ""), max_size=30))
def test_default_policy_forwards_the_target_byte_exact(rest: str) -> None:
    target = "/" + rest
    path, _, query = target.partition("?")
    # Byte-exact, except that an empty query ("/a?") is no query: the origin never sees it.
    assert request_key(DEFAULT_POLICY, get(target)).upstream_target == (target if query else path)


@given(paths, values, values)
def test_different_included_values_give_different_keys(path: str, a: str, b: str) -> None:
    key_a = request_key(INCLUDE, get(f"{path}?category={a}"))
    key_b = request_key(INCLUDE, get(f"{path}?category={b}"))
    assert (key_a.hash == key_b.hash) == (a == b)


@given(values, values)
def test_different_key_header_values_give_different_keys(a: str, b: str) -> None:
    key_a = request_key(VARIED, get("/", ("accept-language", a)))
    key_b = request_key(VARIED, get("/", ("accept-language", b)))
    assert (key_a.hash == key_b.hash) == (a.strip() == b.strip())


def test_parts_cannot_run_into_each_other() -> None:
    a = request_key(VARIED, get("/", ("accept-language", "en"), ("cookie", "currency=EUR")))
    b = request_key(VARIED, get("/", ("accept-language", "encurrency"), ("cookie", "currency=")))
    assert a.hash != b.hash


def test_head_shares_the_get_key_and_other_methods_do_not() -> None:
    target = "/a?b=1"
    assert request_key(DEFAULT_POLICY, get(target, method="HEAD")).hash == request_key(DEFAULT_POLICY, get(target)).hash
    assert request_key(DEFAULT_POLICY, get(target, method="POST")).hash != request_key(DEFAULT_POLICY, get(target)).hash


def test_path_is_keyed_byte_exact() -> None:
    keys = {request_key(DEFAULT_POLICY, get(target)).hash for target in ["/a/b", "/a%2Fb", "/a/./b", "/A/b"]}
    assert len(keys) == 4


def test_an_empty_query_keys_as_no_query_because_the_origin_never_sees_it() -> None:
    bare, empty = request_key(DEFAULT_POLICY, get("/a/b")), request_key(DEFAULT_POLICY, get("/a/b?"))
    assert bare.hash == empty.hash and empty.upstream_target == "/a/b"


def test_host_is_lowercased_unless_the_policy_says_not() -> None:
    exact_host = Policy("exact-host", key=KeySettings(lowercase_host=False))
    assert request_key(DEFAULT_POLICY, get("/", host="Shop.Example")).hash == request_key(DEFAULT_POLICY, get("/")).hash
    assert request_key(exact_host, get("/", host="Shop.Example")).hash != request_key(exact_host, get("/")).hash


def test_query_modes() -> None:
    target = "/items?limit=5&ref_a=x&sid=9&category=books&page=2"
    assert request_key(INCLUDE, get(target)).upstream_target == "/items?category=books&limit=5"
    assert request_key(EXCLUDE, get(target)).upstream_target == "/items?limit=5&category=books&page=2"
    assert request_key(IGNORE, get(target)).upstream_target == "/items"
    assert request_key(INCLUDE, get("/items?page=2")).upstream_target == "/items"


def test_encoded_tracking_parameter_names_are_stripped_too() -> None:
    assert request_key(SORTED, get("/a?utm%5Fsource=x&b=1")).upstream_target == "/a?b=1"


def test_key_headers_and_cookies_are_normalized() -> None:
    a = request_key(VARIED, get("/", ("accept-language", "  de "), ("cookie", "x=1; currency=EUR")))
    b = request_key(VARIED, get("/", ("accept-language", "de"), ("cookie", "currency=EUR"), ("user-agent", "curl/8")))
    assert a.hash == b.hash
    assert a.parts[3:] == (("header:accept-language", "de"), ("cookie:currency", "EUR"), ("device", "desktop"))


@pytest.mark.parametrize(
    ("user_agent", "expected"),
    [
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148 Safari/604.1", DeviceClass.MOBILE),
        ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/120.0 Mobile Safari/537.36", DeviceClass.MOBILE),
        ("Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148", DeviceClass.TABLET),
        ("Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 Chrome/120.0 Safari/537.36", DeviceClass.TABLET),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36", DeviceClass.DESKTOP),
        ("curl/8.5.0", DeviceClass.DESKTOP),
        (None, DeviceClass.DESKTOP),
    ],
)
def test_device_class(user_agent: str | None, expected: DeviceClass) -> None:
    assert device_class(user_agent) is expected


def test_device_class_enters_the_key() -> None:
    phone = get("/", ("user-agent", "Mozilla/5.0 (iPhone) Mobile"))
    desktop = get("/", ("user-agent", "Mozilla/5.0 (X11; Linux x86_64)"))
    assert request_key(VARIED, phone).hash != request_key(VARIED, desktop).hash
    assert request_key(DEFAULT_POLICY, phone).hash == request_key(DEFAULT_POLICY, desktop).hash
