"""Policies under the real `edgeproxy serve` process: SIGHUP reloads, and a broken directory at
startup is reported like `policy check` reports it, not as a crash."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import free_port
from tests.policies_e2e.conftest import EDGEPROXY, PROBLEM_LINE, policy_text
from tests.proxy.harness import CacheStatusView, ttl_near
from tests.support.origin import serve_demo_origin

STARTUP_TIMEOUT = 15.0


def forced(ttl: int) -> str:
    return policy_text(f"""
        policies:
          items:
            match: {{paths: ["/items/*"]}}
            ttl: {{force: {ttl}}}
    """)


async def wait_listening(port: int, process: asyncio.subprocess.Process) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STARTUP_TIMEOUT
    while loop.time() < deadline:
        if process.returncode is not None:
            raise AssertionError(f"edgeproxy serve exited with {process.returncode} before listening")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        return
    raise AssertionError(f"edgeproxy serve did not listen on {port} within {STARTUP_TIMEOUT}s")


async def wait_logged(log: Path, text: str, times: int, process: asyncio.subprocess.Process) -> None:
    """Wait until the server's log holds ``text`` ``times`` times (e.g. one line per worker)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STARTUP_TIMEOUT
    while loop.time() < deadline:
        if process.returncode is not None:
            raise AssertionError(f"edgeproxy serve exited with {process.returncode}:\n{log.read_text()[-800:]}")
        if log.read_text(encoding="utf-8", errors="replace").count(text) >= times:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{text!r} was not logged {times} times within {STARTUP_TIMEOUT}s")


@asynccontextmanager
async def serving(
    origin: str, policies: Path, *extra: str, workers: int = 1
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """``edgeproxy serve`` on a free port until every worker listens; stopped with SIGTERM (then
    SIGKILL) at the end."""
    port = free_port()
    log = policies.parent / f"serve-{port}.log"
    with log.open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            str(EDGEPROXY),
            "serve",
            "--origin",
            origin,
            "--listen",
            f"127.0.0.1:{port}",
            "--policies",
            str(policies),
            "--workers",
            str(workers),
            *extra,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    try:
        await wait_listening(port, process)
        await wait_logged(log, "edgeproxy listening on", workers, process)
        yield process, f"http://127.0.0.1:{port}"
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


def edit_unseen_by_the_watch(path: Path, text: str) -> None:
    """Rewrite ``path`` with same-size ``text`` and restore its mtime: the file watch (size and
    mtime) cannot notice, so only an explicit reload applies the change."""
    before = path.stat()
    assert len(text.encode()) == before.st_size, "the edit must keep the file size"
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


@pytest.mark.parametrize("workers", [1, 2])
async def test_sighup_reloads_a_change_the_file_watch_cannot_see(tmp_path: Path, workers: int):
    """With workers, the supervisor passes SIGHUP on to each of them."""
    folder = tmp_path / "policies"
    folder.mkdir()
    path = folder / "items.yaml"
    path.write_text(forced(100), encoding="utf-8")
    async with serve_demo_origin() as origin, serving(origin, folder, workers=workers) as (process, url):
        edit_unseen_by_the_watch(path, forced(200))
        process.send_signal(signal.SIGHUP)
        ttls = await fresh_connection_ttls(url, rounds_until=lambda ttls: all(t in ttl_near(200) for t in ttls))
    stale = [ttl for ttl in ttls if ttl not in ttl_near(200)]
    assert not stale, f"{len(stale)} of 20 requests were still answered under the old policy: {ttls}"


async def test_serve_with_an_invalid_policy_directory_reports_the_problems_and_exits(tmp_path: Path):
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "bad.yaml").write_text(
        policy_text("""
        policies:
          items:
            ttl: {force: soon}
    """),
        encoding="utf-8",
    )
    result = await asyncio.to_thread(
        subprocess.run,
        [
            str(EDGEPROXY),
            "serve",
            "--origin",
            "http://127.0.0.1:9",
            "--listen",
            f"127.0.0.1:{free_port()}",
            "--policies",
            str(folder),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode not in (0, None)
    assert "Traceback" not in result.stderr, f"a crash instead of a report:\n{result.stderr[-600:]}"
    lines = [line for line in result.stderr.splitlines() if PROBLEM_LINE.match(line)]
    assert len(lines) == 1 and "bad.yaml:3: policy 'items': ttl.force:" in lines[0], result.stderr


async def test_an_admin_reload_on_one_worker_reaches_every_worker(tmp_path: Path):
    """`serve --workers 2`: the admin request lands on one worker; the reload travels to the other
    on the local bus. Twenty fresh connections are spread over both workers by SO_REUSEPORT."""
    folder = tmp_path / "policies"
    folder.mkdir()
    path = folder / "items.yaml"
    path.write_text(forced(100), encoding="utf-8")
    admin = free_port()
    admin_args = ("--admin", f"127.0.0.1:{admin}", "--admin-token", "t")
    async with serve_demo_origin() as origin, serving(origin, folder, *admin_args, workers=2) as (_, url):
        edit_unseen_by_the_watch(path, forced(200))
        async with aiohttp.ClientSession() as session:
            async with session.post(
                f"http://127.0.0.1:{admin}/reload", headers={"Authorization": "Bearer t"}
            ) as answer:
                assert answer.status == 200 and (await answer.json())["outcome"] == "reloaded"
        ttls = await fresh_connection_ttls(url, rounds_until=lambda ttls: all(t in ttl_near(200) for t in ttls))
    stale = [ttl for ttl in ttls if ttl not in ttl_near(200)]
    assert not stale, f"{len(stale)} of 20 requests were still answered under the old policy: {ttls}"


async def fresh_connection_ttls(url: str, *, rounds_until: Callable[[list[int | None]], bool]) -> list[int | None]:
    """Cache-Status ttl of 20 never-seen URLs, each on a new connection; repeated (bounded, for
    the bus hop between workers) until ``rounds_until`` holds, returning the last round."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5.0
    first = 1
    while True:
        ttls = []
        for item in range(first, first + 20):
            async with aiohttp.ClientSession() as fresh, fresh.get(f"{url}/items/{item}") as response:
                ttls.append(CacheStatusView.parse(response.headers.get("Cache-Status")).ttl)
        first += 20
        if rounds_until(ttls) or loop.time() > deadline:
            return ttls
        await asyncio.sleep(0.1)
