"""The admin API and the public feedback route through a real running proxy: token checks that
fail closed for every malformed guess, rate limits, and an audit record for every purge."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from edgeproxy.personalize.feedback import MAX_FEEDBACK_BYTES
from edgeproxy.proxy.runtime import FEEDBACK_PATH, ProxyRuntime
from tests.hardening.conftest import REPO_POLICIES, StartProxy
from tests.support.rawhttp import exchange

TOKEN = "k7Qw-3vZr9Lp2xN8sTg4YbHc"  # 24 characters


@pytest.fixture
async def admin_proxy(start_proxy: StartProxy, origin_url: str) -> AsyncIterator[ProxyRuntime]:
    async with start_proxy(origin_url, admin=("127.0.0.1", 0), admin_token=TOKEN) as runtime:
        yield runtime


async def _admin_get(proxy: ProxyRuntime, authorization: bytes | None) -> int:
    """GET /stats with raw Authorization bytes (aiohttp's client cannot send arbitrary bytes)."""
    lines = [b"GET /stats HTTP/1.1", b"Host: admin"]
    if authorization is not None:
        lines.append(b"Authorization: " + authorization)
    request = b"\r\n".join([*lines, b"Connection: close", b"", b""])
    return (await exchange("127.0.0.1", proxy.admin_port or 0, request)).first.status


async def _admin_get_from(proxy: ProxyRuntime, source: str, token: str) -> int:
    """GET /stats with a bearer ``token`` from the loopback address ``source`` (its own rate bucket)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(source, 0))) as session:
        url = f"http://127.0.0.1:{proxy.admin_port}/stats"
        async with session.get(url, headers={"Authorization": f"Bearer {token}"}) as response:
            return response.status


async def test_wrong_tokens_of_every_length_are_401(admin_proxy: ProxyRuntime):
    # Each guess comes from its own loopback address, so the rate limit (tested below) does not
    # hide a 200. Prefixes, extensions and one-character changes of the real token included.
    guesses = ["x" * n for n in range(1, 2 * len(TOKEN) + 1)]
    guesses += [TOKEN[:n] for n in range(1, len(TOKEN))]
    guesses += [TOKEN + "x", TOKEN[:-1] + "X", TOKEN.upper()]
    statuses = {}
    for n, guess in enumerate(guesses):
        statuses[guess] = await _admin_get_from(admin_proxy, f"127.0.{1 + n // 250}.{2 + n % 250}", guess)
    assert set(statuses.values()) == {401}, {g: s for g, s in statuses.items() if s != 401}
    assert await _admin_get_from(admin_proxy, "127.0.9.9", TOKEN) == 200


@pytest.mark.parametrize(
    "authorization",
    [b"Bearer \xff\xfe", b"Bearer caf\xc3\xa9", b"Basic " + TOKEN.encode(), b"Bearer", b"", TOKEN.encode()],
    ids=["non-utf8", "utf8", "basic", "no-credentials", "empty", "no-scheme"],
)
async def test_malformed_authorization_is_401_never_an_error(admin_proxy: ProxyRuntime, authorization: bytes):
    assert await _admin_get(admin_proxy, authorization) == 401


async def test_guessing_is_rate_limited_even_for_the_right_token(admin_proxy: ProxyRuntime):
    statuses = [await _admin_get(admin_proxy, b"Bearer wrong") for _ in range(25)]
    assert statuses[:20] == [401] * 20 and statuses[20:] == [429] * 5, statuses
    assert await _admin_get(admin_proxy, b"Bearer " + TOKEN.encode()) == 429
    health = await exchange("127.0.0.1", admin_proxy.admin_port or 0, b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert health.first.status == 200, "health probes must stay exempt from the admin rate limit"


async def test_purges_are_audit_logged_with_client_and_selectors(admin_proxy: ProxyRuntime, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO, logger="edgeproxy.admin.audit")
    purge = {"urls": ["http://shop.example/a"], "prefixes": ["http://shop.example/static/"], "tags": ["items"]}
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"http://127.0.0.1:{admin_proxy.admin_port}/purge", json=purge, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as response:
            assert response.status == 200, await response.text()
    records = [json.loads(r.getMessage()) for r in caplog.records if r.name == "edgeproxy.admin.audit"]
    [record] = [r for r in records if r["event"] == "purge"]
    assert record["client"] == "127.0.0.1"
    assert (record["urls"], record["prefixes"], record["tags"]) == (purge["urls"], purge["prefixes"], purge["tags"])
    assert TOKEN not in json.dumps(records), "the audit log must never contain the token"


# ------------------------------------------------------------------ /_edge/feedback on the main port


@pytest.fixture
async def feedback_proxy(start_proxy: StartProxy, origin_url: str, tmp_path: Path) -> AsyncIterator[ProxyRuntime]:
    async with start_proxy(origin_url, policies=REPO_POLICIES, events_path=tmp_path / "events.jsonl") as runtime:
        yield runtime


async def _feedback(proxy: ProxyRuntime, body: bytes, *, method: str = "POST") -> int:
    request = (
        f"{method} {FEEDBACK_PATH} HTTP/1.1\r\nHost: shop.example\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    return (await exchange(proxy.config.host, proxy.port, request)).first.status


@pytest.mark.parametrize(
    "body, status",
    [
        (b'{"user": "u0001", "item": "42"}', 202),
        (b'{"user": "u0001", "item": 42}', 202),
        (b"not json", 400),
        (b"[1, 2]", 400),
        (b'{"user": "u0001"}', 400),
        (b'{"user": "u0001\\r\\nX-Injected: 1", "item": "42"}', 400),
        (b'{"user": "' + b"u" * 65 + b'", "item": "42"}', 400),
        (b'{"user": "u0001", "item": "42", "admin": true}', 400),
        (b'{"user": "u0001", "item": "42", "event": "purchase"}', 400),
        (b'{"user": "u0001", "item": true}', 400),
        (b"\xff\xfe{}", 400),
        (b'{"user": "u0001", "item": "42", "impression": "' + b"i" * MAX_FEEDBACK_BYTES + b'"}', 413),
    ],
    ids=["ok", "int-item", "not-json", "not-object", "missing-item", "crlf-id", "long-id", "unknown-field",
         "not-click", "bool-id", "not-utf8", "too-large"],
)
async def test_feedback_is_validated(feedback_proxy: ProxyRuntime, body: bytes, status: int):
    assert await _feedback(feedback_proxy, body) == status


async def test_feedback_with_a_huge_declared_length_is_413_without_reading_it(feedback_proxy: ProxyRuntime):
    request = (
        f"POST {FEEDBACK_PATH} HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 1000000000\r\nConnection: close\r\n\r\n"
    ).encode() + b"{" * 4096
    answer = await exchange(feedback_proxy.config.host, feedback_proxy.port, request)
    assert answer.first.status == 413


async def test_feedback_is_rate_limited_per_client(feedback_proxy: ProxyRuntime):
    ok = b'{"user": "u0001", "item": "42"}'
    statuses = [await _feedback(feedback_proxy, ok) for _ in range(25)]
    assert statuses[:20] == [202] * 20 and set(statuses[20:]) == {429}, statuses


async def test_feedback_only_takes_post(feedback_proxy: ProxyRuntime):
    assert await _feedback(feedback_proxy, b"", method="GET") == 405
