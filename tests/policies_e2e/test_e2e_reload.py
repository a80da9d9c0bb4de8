"""Hot reload: admin POST /reload, the file watch, rejected sets, and reloading under load.

A policy forces a TTL, so the Cache-Status ttl of a fresh URL says which policy version served it.
"""

from __future__ import annotations

import asyncio
import re
from itertools import count

import aiohttp
import pytest

from tests.policies_e2e.conftest import PolicyEdge, ServePolicy
from tests.proxy.harness import ttl_near
from tests.support.origin import ProgrammableOrigin


def forced(ttl: str) -> str:
    return f"""
        policies:
          site:
            match: {{paths: ["/*"]}}
            ttl: {{force: {ttl}}}
    """


BROKEN = """
    policies:
      site:
        match: {paths: ["/*"]}
        ttl:
          force: soon
"""
"""Line 5 holds the bad duration."""

_fresh = count()


async def fresh_ttl(edge: PolicyEdge) -> int | None:
    """The TTL a never-seen URL gets now (each call uses a new query, so it is always a fill)."""
    seen = await edge.get(f"/page?n={next(_fresh)}")
    assert seen.status == 200, seen
    return seen.cache_status.ttl


@pytest.fixture(autouse=True)
def programmed(origin: ProgrammableOrigin) -> None:
    origin.set("/page", headers={"Cache-Control": "max-age=5"}, body="page")


async def test_admin_reload_applies_a_changed_ttl(serve_policy: ServePolicy):
    async with serve_policy(forced("100")) as edge:
        assert await fresh_ttl(edge) in ttl_near(100)
        edge.write(forced("200"))
        answer = await edge.reload()
        assert answer.status == 200 and answer.body["outcome"] == "reloaded", answer
        assert await fresh_ttl(edge) in ttl_near(200)
        again = await edge.reload()
        assert again.status == 200 and again.body["outcome"] == "unchanged", again
        assert again.body["version"] == answer.body["version"]


async def test_admin_reload_of_an_invalid_file_is_a_422_naming_file_and_line_and_the_old_set_serves(
    serve_policy: ServePolicy,
):
    async with serve_policy(forced("100")) as edge:
        version = (await edge.reload()).body["version"]
        edge.write(BROKEN)
        answer = await edge.reload()
        assert answer.status == 422, answer
        assert answer.body["outcome"] == "rejected" and answer.body["version"] == version
        assert re.search(r"site\.yaml:5: policy 'site': ttl\.force: ", answer.body["detail"]), answer.body
        assert await fresh_ttl(edge) in ttl_near(100)


async def test_adding_and_removing_files_is_picked_up_by_reload(serve_policy: ServePolicy):
    async with serve_policy(forced("100")) as edge:
        edge.write(
            """
            policies:
              urgent:
                priority: 10
                match: {paths: ["/page"]}
                ttl: {force: 300}
        """,
            name="urgent.yaml",
        )
        assert (await edge.reload()).body["outcome"] == "reloaded"
        assert await fresh_ttl(edge) in ttl_near(300)
        (edge.folder / "urgent.yaml").unlink()
        assert (await edge.reload()).body["outcome"] == "reloaded"
        assert await fresh_ttl(edge) in ttl_near(100)


async def ttl_becomes(edge: PolicyEdge, wanted: int, *, within: float = 3.0) -> None:
    """Poll fresh URLs until they get ``wanted`` TTL; fail naming the last TTL seen."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    last = None
    while loop.time() < deadline:
        last = await fresh_ttl(edge)
        if last in ttl_near(wanted):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"TTL never became {wanted} within {within}s (last seen {last})")


async def test_the_file_watch_applies_a_saved_change_by_itself(serve_policy: ServePolicy):
    async with serve_policy(forced("100"), policy_watch_interval=0.05) as edge:
        assert await fresh_ttl(edge) in ttl_near(100)
        edge.write(forced("200"))
        await ttl_becomes(edge, 200)


async def test_the_file_watch_keeps_serving_through_a_broken_save_and_applies_the_fix(serve_policy: ServePolicy):
    async with serve_policy(forced("100"), policy_watch_interval=0.05) as edge:
        edge.write(BROKEN)
        await asyncio.sleep(0.3)
        assert await fresh_ttl(edge) in ttl_near(100)
        edge.write(forced("300"))
        await ttl_becomes(edge, 300)


async def test_reload_under_load_fails_no_request(serve_policy: ServePolicy):
    """20 clients for ~2 s while the policy flips 10 times between two key and TTL settings."""
    versions = [
        forced("100"),
        """
        policies:
          site:
            match: {paths: ["/*"]}
            key: {query: ignore}
            ttl: {force: 200}
        """,
    ]
    statuses: list[int | str] = []
    """Each response's status, or the error that stood in for one."""
    ttls: set[int] = set()
    # The file watcher stays out of the way: a poll landing between a write and its admin reload
    # would apply the file first and make that reload "unchanged".
    async with serve_policy(versions[0], policy_watch_interval=3600.0) as edge:
        stop = asyncio.Event()

        async def client(number: int) -> None:
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    seen = await edge.get(f"/page?c={number}&n={n % 7}")
                except aiohttp.ClientError as exc:
                    statuses.append(repr(exc))
                    continue
                statuses.append(seen.status)
                if seen.cache_status.ttl is not None:
                    ttls.add(seen.cache_status.ttl)

        clients = [asyncio.create_task(client(number)) for number in range(20)]
        answers = []
        for flip in range(10):
            await asyncio.sleep(0.2)
            edge.write(versions[(flip + 1) % 2])
            answers.append(await edge.reload())
        stop.set()
        await asyncio.gather(*clients)
    assert [a.body["outcome"] for a in answers] == ["reloaded"] * 10, answers
    failed = [status for status in statuses if status != 200]
    assert len(statuses) > 100 and not failed, f"{len(failed)} of {len(statuses)} failed: {failed[:5]}"
    assert any(t in ttl_near(100) for t in ttls) and any(t in ttl_near(200) for t in ttls), ttls
