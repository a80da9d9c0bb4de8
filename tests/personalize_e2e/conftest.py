"""Personalization through a real proxy in front of the real demo origin.

Fixtures start the demo origin (``serve_demo_origin``) and hand tests a factory for proxies on
``policies/demo.yaml`` (optionally edited); helpers read what a client and the origin saw.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from multidict import CIMultiDictProxy

from edgeproxy.proxy.runtime import ProxyConfig
from tests.support.origin import ProgrammableOrigin, serve_app, serve_demo_origin

REPO = Path(__file__).resolve().parents[2]
DEMO_POLICIES = REPO / "policies" / "demo.yaml"
BUNDLED_MODELS = REPO / "edgeproxy" / "demo" / "models"
ITEMS = "/api/items?category=books&limit=40"
ADMIN_TOKEN = "t"


def write_policies(
    directory: Path, *, personalize: dict[str, Any] | None = None, drop_personalize: bool = False
) -> Path:
    """``policies/demo.yaml`` copied into ``directory``, its personalize block edited or removed."""
    doc = yaml.safe_load(DEMO_POLICIES.read_text())
    block = doc["policies"]["demo-items"]
    if drop_personalize:
        del block["personalize"]
    elif personalize:
        block["personalize"].update(personalize)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "demo.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return directory


@dataclass(frozen=True, slots=True)
class Seen:
    """One response as the client saw it."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def item_ids(self) -> list[int]:
        return [item["id"] for item in self.json()["items"]]

    @property
    def cache_status(self) -> str:
        return self.headers.get("Cache-Status", "")


async def fetch(session: aiohttp.ClientSession, url: str, method: str = "GET", **kwargs: Any) -> Seen:
    async with session.request(method, url, **kwargs) as resp:
        return Seen(resp.status, resp.headers, await resp.read())


async def origin_requests(session: aiohttp.ClientSession, origin: str, path: str = "/api/items") -> int:
    """GET requests the demo origin received for ``path`` (its ``/_control/stats``)."""
    stats = (await fetch(session, f"{origin}/_control/stats")).json()
    return int(stats["paths"].get(path, {}).get("GET", 0))


async def metrics_text(session: aiohttp.ClientSession, admin_port: int | None) -> str:
    assert admin_port is not None, "the proxy was started without an admin API"
    seen = await fetch(session, f"http://127.0.0.1:{admin_port}/metrics", headers=bearer())
    assert seen.status == 200, seen.body
    return seen.body.decode()


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one Prometheus sample (0.0 when the labelled series was never written)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        sample, _, value = line.rpartition(" ")
        if sample == f"{name}{{{wanted}}}" or (not labels and sample == name):
            return float(value)
    return 0.0


def bearer() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def user(uid: str) -> dict[str, str]:
    return {"Cookie": f"uid={uid}"}


@pytest.fixture
async def origin() -> AsyncIterator[str]:
    async with serve_demo_origin() as url:
        yield url


@pytest.fixture
def list_origin() -> ProgrammableOrigin:
    """A programmable origin for item lists shaped as a test needs (the demo origin's are fixed)."""
    return ProgrammableOrigin()


@pytest.fixture
async def list_origin_url(list_origin: ProgrammableOrigin) -> AsyncIterator[str]:
    async with serve_app(list_origin.app()) as url:
        yield url


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    # No cookie jar: every request carries exactly the Cookie header the test gives it.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as client:
        yield client


GENEROUS_DEADLINE = "1s"
"""The shipped 2ms deadline is a wall-clock budget: on a loaded test machine some deliveries fall
back to the base order, so a user's ETag would flip between requests. Tests that are about the
ranked delivery use a deadline nothing misses; test_fallbacks covers the deadline itself."""


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    """The demo policies with a deadline no ranking misses."""
    return write_policies(tmp_path / "policies", personalize={"deadline": GENEROUS_DEADLINE})


ConfigFactory = Callable[..., ProxyConfig]


@pytest.fixture
def proxy_config(origin: str, policies: Path, tmp_path: Path) -> ConfigFactory:
    """``proxy_config(**overrides)``: a proxy on port 0 with demo profiles and an admin API."""
    base = ProxyConfig(
        origin=origin,
        port=0,
        policies=policies,
        demo_profiles=True,
        events_path=tmp_path / "events.jsonl",
        admin=("127.0.0.1", 0),
        admin_token=ADMIN_TOKEN,
        policy_watch_interval=3600.0,
    )
    return lambda **overrides: replace(base, **overrides)
