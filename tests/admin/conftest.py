"""A real admin server on 127.0.0.1:0 in front of a recording AdminControl."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from admin_harness import TOKEN, Admin, RecordingControl
from aiohttp.test_utils import TestServer

from edgeproxy.admin import make_admin_app
from edgeproxy.admin.ratelimit import RateLimit


@pytest.fixture
def control() -> RecordingControl:
    return RecordingControl()


@pytest.fixture
def rate() -> RateLimit:
    """Generous by default; rate-limit tests override this fixture."""
    return RateLimit(per_second=1000, burst=1000)


@pytest.fixture
async def admin(control: RecordingControl, rate: RateLimit) -> AsyncIterator[Admin]:
    server = TestServer(make_admin_app(control, token=TOKEN, rate=rate), host="127.0.0.1", port=None)
    await server.start_server()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            yield Admin(str(server.make_url("")).rstrip("/"), control, http)
    finally:
        await server.close()
