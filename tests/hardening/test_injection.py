"""Header injection: request data we copy into upstream fields (X-Forwarded-For, Via, the
target) can never add a header line, field bytes are relayed as they came, and a malformed
origin field is unfolded or refused, never relayed raw."""

from __future__ import annotations

import pytest

from tests.hardening.conftest import StartProxy
from tests.hardening.origins import RecordingOrigin
from tests.support.rawhttp import exchange


def _request(target: bytes, *fields: bytes) -> bytes:
    return b"\r\n".join([b"GET " + target + b" HTTP/1.1", b"Host: shop.example", *fields, b"Connection: close", b"", b""])


@pytest.mark.parametrize(
    "field",
    [
        b"X-Forwarded-For: 1.2.3.4\rX-Injected: cr",
        b"X-Forwarded-For: 1.2.3.4\nX-Injected: lf",
        b"X-Forwarded-For: 1.2.3.4\x00X-Injected: nul",
        b"X-Forwarded-For: 1.2.3.4\r\n X-Injected: obs-fold",
        b"Via: 1.0 a\rX-Injected: cr",
        b"Via: 1.0 a\r\n\tX-Injected: obs-fold",
    ],
    ids=["xff-cr", "xff-lf", "xff-nul", "xff-fold", "via-cr", "via-fold"],
)
async def test_raw_control_characters_in_echoed_fields_are_refused_before_the_origin(start_proxy: StartProxy, field: bytes):
    recorder = RecordingOrigin()
    async with recorder.serving() as url, start_proxy(url) as proxy:
        answer = await exchange(proxy.config.host, proxy.port, _request(b"/x", field))
    assert answer.first.status == 400, answer.raw[:200]
    assert recorder.seen == [], "a request with a control character in a field reached the origin"


async def test_encoded_crlf_in_echoed_fields_and_target_stays_inside_one_line(start_proxy: StartProxy):
    recorder = RecordingOrigin()
    fields = (b"X-Forwarded-For: 1.2.3.4%0d%0aX-Injected: xff", b"Via: 1.0 a%0D%0AX-Injected: via")
    async with recorder.serving() as url, start_proxy(url) as proxy:
        answer = await exchange(proxy.config.host, proxy.port, _request(b"/x%0d%0aX-Injected:%20target", *fields))
    assert answer.first.status == 200, answer.raw[:200]
    [seen] = recorder.seen
    assert seen.target == "/x%0d%0aX-Injected:%20target"
    lines = seen.header_lines()
    assert not any(line.lower().startswith(b"x-injected") for line in lines), seen.head
    assert b"x-forwarded-for: 1.2.3.4%0d%0aX-Injected: xff, 127.0.0.1" in lines, seen.head
    assert b"via: 1.0 a%0D%0AX-Injected: via, 1.1 edgeproxy" in lines, seen.head
    assert not any(k.startswith("x-injected") for k, _ in answer.first.headers)


async def test_the_client_cannot_add_a_second_forwarding_field(start_proxy: StartProxy):
    # Two X-Forwarded-For / Via fields from the client become one list we extend, so an origin
    # reading "the first field" or "the last field" still sees our hop last.
    recorder = RecordingOrigin()
    fields = (b"X-Forwarded-For: 6.6.6.6", b"X-Forwarded-For: 7.7.7.7", b"Via: 1.0 spoof", b"Via: 1.0 spoof2")
    async with recorder.serving() as url, start_proxy(url) as proxy:
        await exchange(proxy.config.host, proxy.port, _request(b"/x", *fields))
    lines = [line.lower() for line in recorder.seen[0].header_lines()]
    assert [line for line in lines if line.startswith(b"x-forwarded-for:")] == [b"x-forwarded-for: 6.6.6.6, 7.7.7.7, 127.0.0.1"]
    assert [line for line in lines if line.startswith(b"via:")] == [b"via: 1.0 spoof, 1.0 spoof2, 1.1 edgeproxy"]


async def test_non_ascii_field_bytes_reach_the_origin_unchanged(start_proxy: StartProxy):
    # RFC 9110 §5.5: obs-text is opaque data; a proxy relays it, it does not re-encode it
    # (a UTF-8 cookie or display name must not arrive double-encoded).
    recorder = RecordingOrigin()
    fields = (b"X-Display-Name: caf\xc3\xa9", b"Cookie: name=J\xc3\xbcrgen")
    async with recorder.serving() as url, start_proxy(url) as proxy:
        await exchange(proxy.config.host, proxy.port, _request(b"/x", *fields))
    lines = recorder.seen[0].header_lines()
    assert b"x-display-name: caf\xc3\xa9" in [line.lower() for line in lines], recorder.seen[0].head
    assert any(line.endswith(b"name=J\xc3\xbcrgen") for line in lines), recorder.seen[0].head


async def test_non_ascii_response_field_bytes_reach_the_client_unchanged(start_proxy: StartProxy):
    disposition = 'attachment; filename="caf\xc3\xa9.txt"'  # latin-1 text of the UTF-8 bytes
    recorder = RecordingOrigin(headers=(("Cache-Control", "max-age=60"), ("Content-Disposition", disposition)))
    async with recorder.serving() as url, start_proxy(url) as proxy:
        for _ in range(2):  # the miss (origin fields) and the hit (stored fields)
            answer = await exchange(proxy.config.host, proxy.port, _request(b"/file"))
            assert b'content-disposition: attachment; filename="caf\xc3\xa9.txt"\r\n' in answer.raw.lower(), answer.raw[:400]


@pytest.mark.parametrize(
    "name, value, relayed",
    [
        ("X-A", "one\r\n two", b"x-a: one two\r\n"),
        ("X-A", "one\rX-Injected: cr", None),
        ("X-A", "one\x00two", None),
        ("X-A ", "one", None),
    ],
    ids=["obs-fold", "bare-cr", "nul", "space-before-colon"],
)
async def test_malformed_origin_fields_are_unfolded_or_refused_never_relayed_raw(
    start_proxy: StartProxy, name: str, value: str, relayed: bytes | None
):
    # Origins are not trusted for framing (docs/SECURITY.md): RFC 9112 §5.2 has a proxy replace
    # obs-fold with spaces; a CR or NUL inside a value or whitespace before the colon (§5.1)
    # make the response invalid, so it is a 502 and nothing is stored.
    recorder = RecordingOrigin(headers=(("Cache-Control", "max-age=60"), (name, value)))
    async with recorder.serving() as url, start_proxy(url) as proxy:
        first = await exchange(proxy.config.host, proxy.port, _request(b"/x"))
        fetched = len(recorder.seen)
        second = await exchange(proxy.config.host, proxy.port, _request(b"/x"))
    raw = second.raw.lower()
    assert b"x-injected" not in raw and b"\x00" not in raw, raw[:400]
    if relayed is None:
        assert (first.first.status, second.first.status) == (502, 502), raw[:400]
        assert len(recorder.seen) > fetched, "an invalid origin response was stored"
    else:
        assert relayed in raw and len(recorder.seen) == fetched == 1, raw[:400]
