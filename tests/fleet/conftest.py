"""Fixtures: a programmable origin, and proxies sharing a private Redis (``own_redis``).

A private redis-server per test, not the machine's shared one: the fleet link's namespace is
fixed ("ep"), and each proxy replays the whole bus log at start, so a shared Redis would hand
one test the purges of every other test running on the machine.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.origin import ProgrammableOrigin, serve_app


@pytest.fixture
def origin() -> ProgrammableOrigin:
    return ProgrammableOrigin()


@pytest.fixture
async def origin_url(origin: ProgrammableOrigin) -> AsyncIterator[str]:
    async with serve_app(origin.app()) as url:
        yield url
