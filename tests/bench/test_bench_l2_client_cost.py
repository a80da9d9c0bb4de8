"""bench.l2_client_cost runs against real Redis, reports each client's CPU per command, and leaves
no key behind."""

from __future__ import annotations

import re

import pytest
from redis.asyncio import Redis

from bench.l2_client_cost import measure

pytestmark = pytest.mark.redis


async def test_it_reports_cpu_per_command_for_each_client_and_cleans_up(
    redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await measure(redis_url, commands=640, in_flight=64)
    rows = re.findall(r"^  (.+?)\s+([\d.]+) µs CPU per command$", capsys.readouterr().out, re.MULTILINE)
    assert [label for label, _ in rows] == ["lean channel (resp.py)", "redis-py client.get", "redis-py channel"]
    assert all(float(cost) > 0 for _, cost in rows)
    admin = Redis.from_url(redis_url)
    try:
        assert [k async for k in admin.scan_iter(match="bench-l2-cost:*")] == []
    finally:
        await admin.aclose()
