"""Fuzzing the request → key path: the server layer's target check (``origin_form``) and
``request_key``, the code every untrusted request goes through before the cache is consulted.

For any target, header list and key policy: keying never raises, the key text decodes back to
exactly the parts it was built from (so two different part lists can never share a text), and
the origin is asked for exactly the keyed target, whose path is the request's path byte-exact;
a target the server layer rewrites (absolute-form) meets the same checks as one sent as is.
Cache-Control, HTTP-date and Vary parsing are fuzzed in tests/cache (same ``fuzz`` marker).
"""

from __future__ import annotations

from collections import Counter
from itertools import chain

import pytest
from hypothesis import given, reject
from hypothesis import strategies as st
from yarl import URL

from edgeproxy.cache.key import key_hash
from edgeproxy.cache.message import RequestHead
from edgeproxy.policies.keying import request_key
from edgeproxy.policies.model import KeySettings, Policy
from edgeproxy.proxy.protocol import Rejection, origin_form

pytestmark = pytest.mark.fuzz

NAMES = ["a", "b", "x-a", "x-forwarded-host", "accept-language", "cookie", "user-agent", "currency"]
globs = st.sampled_from(["a", "b*", "utm_*", "*", "?", "[ab]", "[", "x-*", "fbclid", "%61"])
settings = st.builds(
    KeySettings,
    query=st.sampled_from(["all", "include", "exclude", "ignore"]),
    query_params=st.tuples(*[globs] * 2) | st.just(()),
    sort_query=st.booleans(),
    strip_params=st.tuples(globs) | st.just(()),
    headers=st.lists(st.sampled_from(NAMES), unique=True, max_size=3).map(tuple),
    cookies=st.lists(st.sampled_from(["a", "b", "currency", "uid"]), unique=True, max_size=2).map(tuple),
    device_class=st.booleans(),
    lowercase_host=st.booleans(),
)
# Targets as a hostile client writes them: any text after the leading slash, with the
# characters that matter to query and cookie parsing over-represented.
wild = st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from("?&=;%+/.#: \t"), max_size=40)
targets = wild.map(lambda rest: "/" + rest)
values = st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(";=, :\t"), max_size=20)
header_lists = st.lists(st.tuples(st.sampled_from(NAMES), values), max_size=6).map(tuple)
requests = st.builds(
    RequestHead,
    method=st.sampled_from(["GET", "HEAD", "POST", "PURGE", "get"]),
    host=st.text(max_size=12),
    target=targets,
    headers=header_lists,
)


def split_key_text(text: str) -> list[str]:
    """Decode ``<len>:<part>`` repeated; raises AssertionError on anything else."""
    parts, i = [], 0
    while i < len(text):
        colon = text.index(":", i)
        length = int(text[i:colon])
        assert text[i:colon] == str(length), f"malformed length at {i} in {text!r}"
        parts.append(text[colon + 1 : colon + 1 + length])
        i = colon + 1 + length
        assert i <= len(text), f"part overruns the text in {text!r}"
    return parts


def _params(query: str) -> Counter[str]:
    return Counter(pair for pair in query.split("&") if pair)


@given(key=settings, req=requests)
def test_keying_any_request_round_trips_and_forwards_what_it_keyed(key: KeySettings, req: RequestHead) -> None:
    rk = request_key(Policy("fuzz", key=key), req)
    flat = list(chain.from_iterable(rk.parts))
    assert split_key_text(rk.text) == flat
    assert rk.hash == key_hash(rk.text) and len(rk.hash) == 16
    parts = dict(rk.parts)
    assert rk.upstream_target == parts["target"]
    assert rk.url == parts["host"] + rk.upstream_target
    path, _, query = rk.upstream_target.partition("?")
    assert path == req.path, "the path must be forwarded byte-exact"
    # Normalization only ever drops or reorders parameters, never invents or rewrites one.
    assert not _params(query) - _params(req.query)
    if key.query == "ignore":
        assert "?" not in rk.upstream_target


@given(key=settings, a=requests, b=requests)
def test_different_keyed_parts_never_share_a_key_text(key: KeySettings, a: RequestHead, b: RequestHead) -> None:
    policy = Policy("fuzz", key=key)
    ka, kb = request_key(policy, a), request_key(policy, b)
    assert (ka.text == kb.text) == (ka.parts == kb.parts)


@given(key=settings, req=requests, extra=header_lists)
def test_unkeyed_headers_never_change_the_key(key: KeySettings, req: RequestHead, extra: tuple[tuple[str, str], ...]) -> None:
    keyed = set(key.headers) | ({"cookie"} if key.cookies else set()) | ({"user-agent"} if key.device_class else set())
    noise = tuple((name, value) for name, value in extra if name not in keyed)
    policy = Policy("fuzz", key=key)
    with_noise = RequestHead(req.method, req.host, req.target, req.headers + noise)
    assert request_key(policy, with_noise).text == request_key(policy, req).text


# Request-targets as they arrive on the wire: visible ASCII (RFC 9112 §3.2 plus the characters
# lenient clients send unencoded, with the delimiters over-represented), never spaces or control
# characters (the parser refuses those), in origin-form or in absolute-form naming the Host.
visible = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=4)
wire_rest = st.lists(st.sampled_from("/?#%.&=") | visible, max_size=12).map("".join)
origin_form_targets = wire_rest.map(lambda rest: "/" + rest)
wire_targets = (
    origin_form_targets
    | origin_form_targets.map(lambda path: "http://shop.example" + path)
    | wire_rest.map(lambda rest: "http://shop.example" + rest)
)


@given(key=settings, target=wire_targets)
def test_the_url_the_upstream_client_sends_is_the_keyed_target(key: KeySettings, target: str) -> None:
    # Only what the server layer accepts (``origin_form``) is ever keyed. Upstream.send builds
    # ``URL(origin + target, encoded=True)``; whatever that URL puts on the wire must be the keyed
    # target, or the key names something the origin never answered (how H8, "/#", was found).
    try:
        accepted = origin_form("GET", target, "shop.example")
    except Rejection:
        reject()
    rk = request_key(Policy("fuzz", key=key), RequestHead("GET", "shop.example", accepted, ()))
    sent = URL("http://origin.internal" + rk.upstream_target, encoded=True)
    assert sent.raw_path_qs == rk.upstream_target


@given(method=st.sampled_from(["GET", "OPTIONS"]), target=wire_targets | st.sampled_from(["*", "HTTP://shop.example"]))
def test_a_target_the_server_layer_rewrites_passes_its_own_checks_unchanged(method: str, target: str) -> None:
    # ``origin_form`` turns absolute-form into origin-form; what it hands on must be a target the
    # origin-form rules accept as it is, or one spelling dodges a rule the other meets (how H9,
    # "http://host//", was found).
    try:
        accepted = origin_form(method, target, "shop.example")
    except Rejection:
        reject()
    try:
        again = origin_form(method, accepted, "shop.example")
    except Rejection as refused:
        pytest.fail(f"{target!r} is accepted as {accepted!r}, which origin-form refuses: {refused.message}")
    assert again == accepted
