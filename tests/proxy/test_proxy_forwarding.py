"""What crosses the proxy in each direction: hop-by-hop fields stay behind (RFC 9110 §7.6.1),
forwarding fields are added (§7.6.3), the target and bodies pass byte-exact."""

from __future__ import annotations

import gzip

import pytest

from tests.proxy.harness import ProxyClient, Seen
from tests.support.origin import ProgrammableOrigin

CACHEABLE = {"Cache-Control": "max-age=60"}
# One cached route (the proxy stores and replays the response) and one passed through.
ROUTES = pytest.mark.parametrize("cache_control", ["max-age=60", "no-store"], ids=["stored", "passed"])


async def test_hop_by_hop_request_fields_are_not_forwarded(client: ProxyClient, origin: ProgrammableOrigin):
    origin.set("/h", headers=CACHEABLE, body="x")
    for method in ("GET", "POST"):
        await client.request(
            method,
            "/h",
            headers=[
                ("Connection", "keep-alive, X-Hop"),
                ("X-Hop", "connection-specific"),
                ("Keep-Alive", "timeout=5"),
                ("TE", "trailers"),
                ("Proxy-Authorization", "Basic cHJveHk6c2VjcmV0"),
                ("X-End-To-End", "kept"),
            ],
        )
        seen = origin.last("/h")
        assert seen.method == method
        for name in ("X-Hop", "Keep-Alive", "TE", "Proxy-Authorization"):
            assert name not in seen.headers, (method, name, dict(seen.headers))
        assert "x-hop" not in seen.headers.get("Connection", "").lower()
        assert seen.headers["X-End-To-End"] == "kept"


@ROUTES
async def test_hop_by_hop_response_fields_are_not_delivered(
    client: ProxyClient, origin: ProgrammableOrigin, cache_control: str
):
    origin.set(
        "/h",
        headers=[
            ("Cache-Control", cache_control),
            ("Connection", "X-Origin-Hop"),
            ("X-Origin-Hop", "connection-specific"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Authenticate", "Basic"),
            ("X-End-To-End", "kept"),
        ],
        body="x",
    )
    for _ in range(2):  # the miss, then the hit (or a second pass)
        seen = await client.get("/h")
        assert seen.body == b"x"
        for name in ("X-Origin-Hop", "Keep-Alive", "Proxy-Authenticate"):
            assert name not in seen.headers, (name, seen)
        assert "x-origin-hop" not in seen.headers.get("Connection", "").lower()
        assert seen.headers["X-End-To-End"] == "kept"


async def test_forwarding_fields_are_added_upstream(client: ProxyClient, origin: ProgrammableOrigin):
    origin.set("/f", headers={"Cache-Control": "no-store"}, body="x")
    await client.get("/f")
    seen = origin.last("/f")
    assert seen.headers["X-Forwarded-For"] == "127.0.0.1"
    assert seen.headers["X-Forwarded-Proto"] == "http"
    assert seen.headers["Via"] == "1.1 edgeproxy"


async def test_forwarding_fields_extend_what_the_client_sent(client: ProxyClient, origin: ProgrammableOrigin):
    origin.set("/f", headers={"Cache-Control": "no-store"}, body="x")
    await client.get(
        "/f", headers={"X-Forwarded-For": "203.0.113.7", "Via": "1.0 corp-proxy", "X-Forwarded-Proto": "https"}
    )
    seen = origin.last("/f")
    assert seen.headers["X-Forwarded-For"] == "203.0.113.7, 127.0.0.1"
    # The scheme is what this proxy saw, never what a client claims.
    assert seen.headers.getall("X-Forwarded-Proto") == ["http"]
    # RFC 9110 §7.6.3: each intermediary appends its own entry; the earlier ones are kept.
    assert ", ".join(seen.headers.getall("Via")) == "1.0 corp-proxy, 1.1 edgeproxy"


@ROUTES
async def test_repeated_origin_fields_are_all_delivered_in_order(
    client: ProxyClient, origin: ProgrammableOrigin, cache_control: str
):
    origin.set(
        "/m",
        headers=[
            ("Cache-Control", cache_control),
            ("Link", "</a.css>; rel=preload"),
            ("X-Multi", "a"),
            ("Link", "</b.js>; rel=preload"),
            ("X-Multi", "b, c"),
        ],
        body="x",
    )
    for _ in range(2):
        seen = await client.get("/m")
        assert ", ".join(seen.headers.getall("X-Multi")) == "a, b, c", seen
        assert ", ".join(seen.headers.getall("Link")) == "</a.css>; rel=preload, </b.js>; rel=preload"


async def test_repeated_set_cookie_fields_stay_separate(client: ProxyClient, origin: ProgrammableOrigin):
    # Set-Cookie cannot be joined with commas (RFC 9110 §5.3): each must arrive as its own field.
    origin.set(
        "/login", headers=[("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2; Expires=Wed, 21 Oct 2037 07:28:00 GMT")]
    )
    seen = await client.get("/login")
    assert seen.headers.getall("Set-Cookie") == ["a=1; Path=/", "b=2; Expires=Wed, 21 Oct 2037 07:28:00 GMT"]


@ROUTES
async def test_surrogate_fields_are_kept_from_clients(
    client: ProxyClient, origin: ProgrammableOrigin, cache_control: str
):
    origin.set(
        "/s",
        headers={"Cache-Control": cache_control, "Surrogate-Key": "items item:7", "Cache-Tag": "items", "X-Kept": "1"},
        body="x",
    )
    for _ in range(2):
        seen = await client.get("/s")
        assert "Surrogate-Key" not in seen.headers and "Cache-Tag" not in seen.headers, seen
        assert seen.headers["X-Kept"] == "1"


@pytest.mark.parametrize(
    "target, path",
    [
        ("/a%2Fb?x=1&x=2&y=%20", "/a/b"),
        ("/caf%C3%A9/%7Euser;v=1?q=a+b&empty=&=v&x=%2F", "/café/~user;v=1"),
        ("/order?b=2&a=1", "/order"),
    ],
)
async def test_method_path_and_query_are_forwarded_byte_exact(
    client: ProxyClient, origin: ProgrammableOrigin, target: str, path: str
):
    origin.set(path, headers=CACHEABLE, body="x")
    for method in ("GET", "POST", "DELETE"):
        seen = await client.request(method, target)
        assert seen.status == 200, (method, seen)
        forwarded = origin.seen[-1]
        assert (forwarded.method, forwarded.path_qs) == (method, target)


def _gzip_route(origin: ProgrammableOrigin, cache_control: str) -> bytes:
    compressed = gzip.compress(b"hello, compressed world\n" * 100, mtime=0)
    origin.set(
        "/z",
        headers={
            "Cache-Control": cache_control,
            "Content-Encoding": "gzip",
            "Content-Type": "text/plain",
            "Vary": "Accept-Encoding",
        },
        body=compressed,
    )
    return compressed


@ROUTES
async def test_compressed_bodies_pass_unchanged(client: ProxyClient, origin: ProgrammableOrigin, cache_control: str):
    compressed = _gzip_route(origin, cache_control)
    for _ in range(2):
        seen: Seen = await client.get("/z", headers={"Accept-Encoding": "gzip"})
        assert seen.body == compressed, seen
        assert seen.headers["Content-Encoding"] == "gzip"
    assert origin.last("/z").headers.get("Accept-Encoding") == "gzip"


async def test_request_body_is_forwarded_byte_exact(client: ProxyClient, origin: ProgrammableOrigin):
    origin.set("/upload", status=204)
    payload = bytes(range(256)) * 400 + b"\r\n\r\n0\r\n\r\n"
    seen = await client.request("PUT", "/upload", data=payload, headers={"Content-Type": "application/octet-stream"})
    assert seen.status == 204
    assert origin.last("/upload").body == payload


async def test_request_with_content_length_reaches_the_origin_with_content_length(
    client: ProxyClient, origin: ProgrammableOrigin
):
    # Re-framing a sized upload as chunked is allowed by RFC 9112, but origins that answer
    # chunked uploads with 411 Length Required exist; a sized body should stay sized.
    origin.set("/upload", status=204)
    payload = b"x" * 10_000
    await client.request("PUT", "/upload", data=payload, headers={"Content-Type": "application/octet-stream"})
    forwarded = origin.last("/upload")
    assert forwarded.headers.get("Content-Length") == str(len(payload)), dict(forwarded.headers)
    assert "Transfer-Encoding" not in forwarded.headers
