"""Pass-through bodies are relayed as bytes: never inflated, so a small compressed body cannot
become a large one inside the proxy (decompression bomb), and what arrives is byte-identical."""

from __future__ import annotations

import gzip
import json

from tests.hardening.conftest import REPO_POLICIES, StartProxy
from tests.hardening.origins import RecordingOrigin
from tests.proxy.harness import proxy_client
from tests.support.origin import ProgrammableOrigin

BOMB = gzip.compress(b"\x00" * (64 * 1024 * 1024), compresslevel=9, mtime=0)
"""64 MiB of zeros in ~64 KiB: inflating it would blow the 8 MiB object cap many times over."""


async def test_a_gzip_bomb_is_relayed_compressed_and_stored_at_its_wire_size(
    start_proxy: StartProxy, origin_url: str, origin: ProgrammableOrigin
):
    origin.set(
        "/bomb",
        headers={"Cache-Control": "max-age=60", "Content-Encoding": "gzip", "Content-Type": "application/octet-stream"},
        body=BOMB,
    )
    async with start_proxy(origin_url) as proxy, proxy_client(proxy.url) as client:
        miss = await client.get("/bomb", headers={"Accept-Encoding": "gzip"})
        hit = await client.get("/bomb", headers={"Accept-Encoding": "gzip"})
        stored_bytes = proxy.l1.stats()["bytes"]
    assert miss.body == hit.body == BOMB
    assert hit.headers["Content-Encoding"] == "gzip" and hit.cache_status.hit
    assert stored_bytes < 2 * len(BOMB), f"L1 holds {stored_bytes} bytes for a {len(BOMB)}-byte body"


async def test_a_compressed_list_on_a_personalized_route_is_not_inflated_to_rank_it(
    start_proxy: StartProxy, origin_url: str, origin: ProgrammableOrigin, tmp_path
):
    # The ranker only reads identity-encoded JSON; a gzip body passes unranked and untouched.
    body = gzip.compress(json.dumps({"items": [{"id": str(n), "title": "x"} for n in range(50)]}).encode(), mtime=0)
    origin.set(
        "/api/items",
        headers={"Cache-Control": "max-age=60", "Content-Encoding": "gzip", "Content-Type": "application/json"},
        body=body,
    )
    config = {"policies": REPO_POLICIES, "events_path": tmp_path / "events.jsonl"}
    async with start_proxy(origin_url, **config) as proxy, proxy_client(proxy.url) as client:
        for _ in range(2):
            seen = await client.get("/api/items?category=books", headers={"Cookie": "uid=u0001", "Accept-Encoding": "gzip"})
            assert seen.status == 200 and seen.body == body, seen


async def test_a_gzip_request_body_reaches_the_origin_byte_identical(start_proxy: StartProxy):
    # The byte-level origin: aiohttp's own server would inflate the body before a handler saw it.
    payload = gzip.compress(b'{"event": "upload"}' * 10_000, mtime=0)
    recorder = RecordingOrigin(headers=(("Cache-Control", "no-store"),))
    async with recorder.serving() as url, start_proxy(url) as proxy, proxy_client(proxy.url) as client:
        seen = await client.request(
            "POST", "/upload", data=payload, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
        )
    assert seen.status == 200
    [forwarded] = recorder.seen
    assert forwarded.body == payload
    assert b"content-encoding: gzip" in [line.lower() for line in forwarded.header_lines()]
