"""The status page in headless Chromium shows what /stats says, and never without the token."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
from admin_harness import TOKEN, Admin, RecordingControl

from edgeproxy.admin.stats import LiveStats, OriginOutcome

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium)")

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "admin"
T0 = 1_800_000_000.0


class TextById(HTMLParser):
    """Text content of every element that has an id (nested text included)."""

    def __init__(self) -> None:
        super().__init__()
        self.text: dict[str, str] = {}
        self.attrs_by_id: dict[str, dict[str, str | None]] = {}
        self._open: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {"input", "meta", "br", "img"}:
            return
        ident = dict(attrs).get("id")
        if ident:
            self.text[ident] = ""
            self.attrs_by_id[ident] = dict(attrs)
        self._open.append(ident)

    def handle_endtag(self, tag: str) -> None:
        if tag not in {"input", "meta", "br", "img"} and self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for ident in self._open:
            if ident:
                self.text[ident] += data


async def chromium(url: str, *flags: str) -> str:
    """Load ``url`` in a throwaway headless profile; stdout (the DOM with ``--dump-dom``)."""
    with tempfile.TemporaryDirectory() as profile:
        proc = await asyncio.create_subprocess_exec(
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
            "--virtual-time-budget=3000", *flags, url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
    return out.decode()


def dom(html: str) -> TextById:
    parser = TextById()
    parser.feed(html)
    return parser


@pytest.fixture
def control() -> RecordingControl:
    stats = LiveStats(window=60)
    for i in range(40):
        phase = "hit" if i % 4 else "miss"
        stats.record_request(T0 + i / 4, phase, (i + 1) / 2000, key=f"shop.test/api/items?category=c{i % 3}")
    stats.record_request(T0 + 9, "pass", 0.05)
    stats.record_origin(T0 + 9, "http://origin:8000", OriginOutcome.ERROR, "timeout")
    stats.record_purge(T0 + 9, "10.0.0.9", "hard tags=1", "fleet")
    snapshot = stats.snapshot(T0 + 10) | {
        "redis": {"state": "degraded"}, "policy": {"version": "3f2a9c"}, "workers": 2,
        "models": [{"name": "demo-ranker", "version": "v2", "canary": None}],
    }
    return RecordingControl(snapshot=snapshot)


async def test_page_numbers_match_stats(admin: Admin) -> None:
    async with admin.http.get(admin.base + "/stats", headers=admin.auth()) as resp:
        stats = await resp.json()
    page = dom(await chromium(f"{admin.base}/#token={TOKEN}", "--dump-dom"))
    assert page.attrs_by_id["dash"].get("hidden") is None, page.text.get("status")
    assert page.text["rps"] == f"{stats['requests_per_second']:.1f}"
    assert page.text["hit-ratio"] == f"{stats['hit_ratio'] * 100:.1f}%"
    for q in ("p50", "p90", "p99"):
        assert page.text[q] == f"{stats['latency_ms'][q]:.2f} ms"
    assert page.text["redis"] == "degraded"
    assert page.text["policy"] == "3f2a9c"
    assert page.text["workers"] == "2"
    top = stats["top_keys"][0]
    assert page.text["top-keys"].startswith(f"{top['key']}{top['count']}")
    assert "http://origin:8000degraded1 errors: timeout" in page.text["origins"]
    assert "10.0.0.9hard tags=1fleet" in page.text["purges"]
    assert "demo-rankerv2" in page.text["models"]


async def test_page_with_a_wrong_token_shows_no_data(admin: Admin) -> None:
    page = dom(await chromium(f"{admin.base}/#token=not-the-token", "--dump-dom"))
    assert page.text["status"] == "token rejected"
    assert page.attrs_by_id["login"].get("hidden") is None
    assert page.text["rps"] == "–"


async def test_page_without_a_token_asks_for_one(admin: Admin) -> None:
    page = dom(await chromium(f"{admin.base}/", "--dump-dom"))
    assert page.text["status"] == "token needed"
    assert "dash" in page.attrs_by_id and "hidden" in page.attrs_by_id["dash"]


async def test_screenshot_artifact(admin: Admin) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "status-page.png"
    shot.unlink(missing_ok=True)
    await chromium(f"{admin.base}/#token={TOKEN}", f"--screenshot={shot}", "--window-size=1280,900")
    assert shot.exists() and shot.stat().st_size > 10_000
