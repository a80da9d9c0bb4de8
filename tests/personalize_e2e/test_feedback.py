"""``POST /_edge/feedback`` on the main port: untrusted click reports, validated and rate-limited."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from edgeproxy.personalize.feedback import MAX_FEEDBACK_BYTES
from edgeproxy.proxy.runtime import running_proxy
from tests.personalize_e2e.conftest import ConfigFactory, fetch, metric, metrics_text, origin_requests

FEEDBACK = "/_edge/feedback"
CLICK = {"user": "u0001", "item": 17}


def _events(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def test_a_valid_click_is_accepted_and_lands_in_the_event_log(
    proxy_config: ConfigFactory, origin: str, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    async with running_proxy(proxy_config(events_path=events)) as proxy:
        seen = await fetch(session, proxy.url + FEEDBACK, "POST", json={**CLICK, "impression": "abc123"})
        for _ in range(30):  # the event buffer is flushed every second
            if _events(events):
                break
            await asyncio.sleep(0.1)
        metrics = await metrics_text(session, proxy.admin_port)
    assert seen.status == 202, seen.body
    assert seen.headers["Cache-Control"] == "no-store"
    clicks = [e for e in _events(events) if e["type"] == "click"]
    assert [(c["user_id"], c["item_id"], c["impression_id"]) for c in clicks] == [("u0001", "17", "abc123")]
    assert metric(metrics, "edgeproxy_feedback_events_total", kind="click") == 1
    assert await origin_requests(session, origin, FEEDBACK) == 0  # answered at the edge


async def test_malformed_feedback_is_refused_with_the_reason(
    proxy_config: ConfigFactory, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    async with running_proxy(proxy_config(events_path=events)) as proxy:
        url = proxy.url + FEEDBACK
        not_json = await fetch(session, url, "POST", data=b"{user: u0001")
        not_object = await fetch(session, url, "POST", json=[CLICK])
        bad_id = await fetch(session, url, "POST", json={"user": "u 1", "item": 17})
        unknown = await fetch(session, url, "POST", json={**CLICK, "price": 3})
        oversize = await fetch(session, url, "POST", data=json.dumps({**CLICK, "impression": "x" * MAX_FEEDBACK_BYTES}))
        get = await fetch(session, url)
    for seen in (not_json, not_object, bad_id, unknown):
        assert seen.status == 400, seen.body
    assert b"not valid JSON" in not_json.body and b"'price'" in unknown.body
    assert oversize.status == 413 and str(MAX_FEEDBACK_BYTES).encode() in oversize.body
    assert get.status == 405 and get.headers["Allow"] == "POST"
    assert not [e for e in _events(events) if e["type"] == "click"]


async def test_an_oversize_chunked_body_is_refused_without_reading_it_all(
    proxy_config: ConfigFactory, session: aiohttp.ClientSession
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(64):
            yield b" " * 1024

    async with running_proxy(proxy_config()) as proxy:
        seen = await fetch(session, proxy.url + FEEDBACK, "POST", data=chunks())
    assert seen.status == 413


async def test_a_client_sending_too_many_events_is_rate_limited(
    proxy_config: ConfigFactory, session: aiohttp.ClientSession
) -> None:
    async with running_proxy(proxy_config()) as proxy:
        statuses = [(await fetch(session, proxy.url + FEEDBACK, "POST", json=CLICK)).status for _ in range(40)]
    # A burst of 20, refilled at 5 per second: a fast client gets roughly 20 through, then 429s.
    assert set(statuses) == {202, 429}
    assert statuses[:20] == [202] * 20
    assert 20 <= statuses.count(202) < 30
    assert statuses[-1] == 429
