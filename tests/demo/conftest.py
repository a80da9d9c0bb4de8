"""Fixtures: the demo origin and a programmable origin, each on 127.0.0.1 port 0."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.support.origin import ProgrammableOrigin, serve_app, serve_demo_origin


@pytest.fixture
async def demo_url() -> AsyncIterator[str]:
    async with serve_demo_origin() as url:
        yield url


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


@pytest.fixture
def programmable() -> ProgrammableOrigin:
    return ProgrammableOrigin()


@pytest.fixture
async def programmable_url(programmable: ProgrammableOrigin) -> AsyncIterator[str]:
    async with serve_app(programmable.app()) as url:
        yield url
