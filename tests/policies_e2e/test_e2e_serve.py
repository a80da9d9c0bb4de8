"""Policies under the real `edgeproxy serve` process: SIGHUP reloads, and a broken directory at
startup is reported like `policy check` reports it, not as a crash."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from tests.conftest import free_port
from tests.policies_e2e.conftest import EDGEPROXY, PROBLEM_LINE, policy_text
from tests.proxy.harness import proxy_client, ttl_near
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


@asynccontextmanager
async def serving(origin: str, policies: Path) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """``edgeproxy serve`` on a free port; stopped with SIGTERM (then SIGKILL) at the end."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        str(EDGEPROXY), "serve", "--origin", origin, "--listen", f"127.0.0.1:{port}", "--policies", str(policies),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        await wait_listening(port, process)
        yield process, f"http://127.0.0.1:{port}"
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


async def test_sighup_reloads_a_change_the_file_watch_cannot_see(tmp_path: Path):
    """Same size and mtime restored: only an explicit reload notices the new content."""
    folder = tmp_path / "policies"
    folder.mkdir()
    path = folder / "items.yaml"
    path.write_text(forced(100), encoding="utf-8")
    async with serve_demo_origin() as origin, serving(origin, folder) as (process, url), proxy_client(url) as client:
        assert (await client.get("/items/1")).cache_status.ttl in ttl_near(100)
        before = path.stat()
        path.write_text(forced(200), encoding="utf-8")
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        process.send_signal(signal.SIGHUP)
        ttl = None
        for item in range(2, 60):
            ttl = (await client.get(f"/items/{item}")).cache_status.ttl
            if ttl in ttl_near(200):
                break
            await asyncio.sleep(0.05)
        assert ttl in ttl_near(200), f"SIGHUP did not apply the new policy (ttl still {ttl})"


async def test_serve_with_an_invalid_policy_directory_reports_the_problems_and_exits(tmp_path: Path):
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "bad.yaml").write_text(policy_text("""
        policies:
          items:
            ttl: {force: soon}
    """), encoding="utf-8")
    result = await asyncio.to_thread(
        subprocess.run,
        [str(EDGEPROXY), "serve", "--origin", "http://127.0.0.1:9", "--listen", f"127.0.0.1:{free_port()}",
         "--policies", str(folder)],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert result.returncode not in (0, None)
    assert "Traceback" not in result.stderr, f"a crash instead of a report:\n{result.stderr[-600:]}"
    lines = [line for line in result.stderr.splitlines() if PROBLEM_LINE.match(line)]
    assert len(lines) == 1 and "bad.yaml:3: policy 'items': ttl.force:" in lines[0], result.stderr


