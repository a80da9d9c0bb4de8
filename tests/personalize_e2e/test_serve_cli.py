"""``edgeproxy serve --models DIR --events FILE`` as an operator runs it: a corrupt model never
stops the proxy, and clicks land in the file ``edgeproxy train --events`` reads."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp

from edgeproxy.personalize.events import JsonlSink
from tests.conftest import free_port
from tests.personalize_e2e.conftest import BUNDLED_MODELS, ITEMS, fetch, user

START_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0


@contextmanager
def serve(cwd: Path, *argv: str) -> Iterator[subprocess.Popen[bytes]]:
    """``edgeproxy serve …`` in ``cwd``; SIGTERM (then SIGKILL) when the block ends."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeproxy.cli", "serve", *argv],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def wait_until_listening(session: aiohttp.ClientSession, url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = asyncio.get_running_loop().time() + START_TIMEOUT
    while True:
        assert proc.poll() is None, (
            f"edgeproxy serve exited {proc.returncode}: {proc.stderr.read().decode() if proc.stderr else ''}"
        )
        try:
            async with session.get(url + "/_edge/none") as resp:
                await resp.read()
                return
        except aiohttp.ClientConnectionError:
            assert asyncio.get_running_loop().time() < deadline, "edgeproxy serve did not start listening"
            await asyncio.sleep(0.1)


async def test_serve_with_a_corrupt_models_dir_serves_the_base_order_and_logs_clicks(
    origin: str, policies: Path, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(BUNDLED_MODELS / "demo-ranker-v1.json", models)
    (models / "demo-ranker-v1.txt").write_text("tree\nnot a model\n")
    events = tmp_path / "clicks.jsonl"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    base = await fetch(session, origin + ITEMS)
    with serve(
        tmp_path,
        "--origin",
        origin,
        "--listen",
        f"127.0.0.1:{port}",
        "--policies",
        str(policies),
        "--models",
        str(models),
        "--events",
        str(events),
    ) as proc:
        await wait_until_listening(session, url, proc)
        seen = await fetch(session, url + ITEMS, headers=user("u0001"))
        click = await fetch(session, url + "/_edge/feedback", "POST", json={"user": "u0001", "item": 5})
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(STOP_TIMEOUT) == 0
    assert seen.status == 200 and seen.body == base.body
    assert 'no-model model=none"' in seen.cache_status
    assert click.status == 202
    logged = [e for e in await JsonlSink(events).read_all() if e["type"] == "click"]
    assert [(e["user_id"], e["item_id"]) for e in logged] == [("u0001", "5")]
    assert not (tmp_path / "edgeproxy-events.jsonl").exists()  # not the default in the working dir
