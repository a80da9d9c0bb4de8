"""``edgeproxy demo``: the demo origin and the proxy in one process, and a guided tour.

The tour is a script of requests, each shown as the curl line a reader can paste, with the
Cache-Status the proxy answered. ``--smoke`` checks every answer against what the step
expects and exits 1 on the first surprise, so the README's tour is tested, not just shown.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import uvloop

from edgeproxy.demo import origin as demo_origin
from edgeproxy.proxy.runtime import ProxyConfig, running_proxy


@dataclass(frozen=True, slots=True)
class Step:
    title: str
    path: str
    expect: str
    """Regex the Cache-Status header must match."""
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    origin_fail: bool | None = None
    """Switch the origin's failure mode on/off before this step."""
    expect_status: int = 200
    show_items: bool = False
    """Print the first item ids of a JSON list (personalized orders differ per user)."""
    again_if: str | None = None
    """Ask once more when Cache-Status contains this: a fallback the step allows once."""


RANKING_LATE = " deadline model="
"""Cache-Status detail of a ranking that missed the policy's 2 ms (wall clock) deadline and served
the base order: the right answer on a busy machine, so a personalized step asks once more."""


ITEMS = "/api/items?category=books&limit=5"
RANKED = "/api/items?category=games&limit=20"

TOUR: tuple[Step, ...] = (
    Step("First request: a miss, fetched from the origin and stored", ITEMS, r"fwd=uri-miss; fwd-status=200;.*stored"),
    Step("Same URL again: a hit from the in-process cache", ITEMS, r"hit; ttl=\d+"),
    Step("Tracking parameters are not part of the key (policies/demo.yaml)", ITEMS + "&utm_source=mail", r"hit"),
    Step("The client asks for max-age=0: revalidated with the origin (304)", ITEMS,
         r"fwd=request; fwd-status=304;.*stored", headers={"Cache-Control": "max-age=0"}),
    Step("HEAD is answered from the stored GET", ITEMS, r"hit", method="HEAD"),
    Step("Origin down and the client insists on a fresh copy: stale-if-error serves the stored one",
         ITEMS, r'fwd=request; fwd-status=503; ttl=-?\d+; detail="origin-503', headers={"Cache-Control": "max-age=0"}, origin_fail=True),
    Step("Vary: Accept-Language: the French variant", "/greeting", r"fwd=uri-miss", headers={"Accept-Language": "fr"},
         origin_fail=False),
    Step("Vary: a German request misses the French variant", "/greeting", r"fwd=vary-miss",
         headers={"Accept-Language": "de"}),
    Step("Vary: French again is a hit", "/greeting", r"hit", headers={"Accept-Language": "fr"}),
    Step("A private page with Set-Cookie passes by policy", "/account", r"fwd=bypass"),
    Step("Personalized: user u0001 gets the cached list re-ranked by the demo model", RANKED,
         r"ranked model=demo-ranker", headers={"Cookie": "uid=u0001"}, show_items=True, again_if=RANKING_LATE),
    Step("Personalized: user u0002 gets the same cached object (a hit) in another order", RANKED,
         r"hit; .*ranked model=demo-ranker", headers={"Cookie": "uid=u0002"}, show_items=True, again_if=RANKING_LATE),
)


def curl_line(base: str, step: Step) -> str:
    parts = ["curl", "-sI" if step.method == "HEAD" else "-si"]
    for name, value in step.headers.items():
        parts += ["-H", f"{name}: {value}"]
    parts.append(base + step.path)
    return " ".join(shlex.quote(p) for p in parts)


def first_ids(body: bytes, n: int = 5) -> list[object]:
    try:
        return [item.get("id") for item in json.loads(body).get("items", [])[:n]]
    except (ValueError, AttributeError):
        return []


async def run_tour(proxy_url: str, origin_url: str, *, out=sys.stdout) -> list[str]:
    """Run every step; return the list of failures (empty when the tour went as scripted)."""
    failures: list[str] = []
    orders: list[list[object]] = []
    async with aiohttp.ClientSession(auto_decompress=False) as client:
        for number, step in enumerate(TOUR, 1):
            if step.origin_fail is not None:
                async with client.post(f"{origin_url}/_control/fail", json={"on": step.origin_fail}) as r:
                    await r.read()
            print(f"\n{number}. {step.title}\n$ {curl_line(proxy_url, step)}", file=out)
            for attempt in range(2):
                async with client.request(step.method, proxy_url + step.path, headers=step.headers) as resp:
                    body = await resp.read()
                    status_line = resp.headers.get("Cache-Status", "")
                    age = resp.headers.get("Age", "-")
                print(f"   HTTP {resp.status}   Age: {age}   Cache-Status: {status_line}", file=out)
                if attempt or step.again_if is None or step.again_if not in status_line:
                    break
                print(f"   ({step.again_if.strip()!r} is an allowed fallback: asking again)", file=out)
            if step.show_items:
                orders.append(first_ids(body))
                print(f"   first items: {orders[-1]}", file=out)
            if resp.status != step.expect_status or not re.search(step.expect, status_line):
                failures.append(
                    f"step {number} ({step.title}): got HTTP {resp.status} / {status_line!r}, "
                    f"expected HTTP {step.expect_status} / /{step.expect}/"
                )
        async with client.post(f"{origin_url}/_control/fail", json={"on": False}) as r:
            await r.read()
    if len(orders) == 2 and orders[0] == orders[1]:
        failures.append(f"two users got the same order {orders[0]}: personalization did not change anything")
    return failures


async def _demo(listen: tuple[str, int], origin_listen: tuple[str, int], smoke: bool) -> int:
    runner = await demo_origin.start(*origin_listen)
    origin_host, origin_port = runner.addresses[0][:2]
    origin_url = f"http://{origin_host}:{origin_port}"
    policies = Path("policies") if Path("policies", "demo.yaml").is_file() else None
    config = ProxyConfig(origin=origin_url, host=listen[0], port=listen[1], policies=policies,
                         demo_profiles=True, events_path=Path(tempfile.gettempdir(), "edgeproxy-demo-events.jsonl"))
    try:
        async with running_proxy(config) as proxy:
            print(f"demo origin on {origin_url}; edgeproxy on {proxy.url} (policies: {policies or 'built-in'})")
            failures = await run_tour(proxy.url, origin_url)
            if smoke:
                for failure in failures:
                    print(f"SMOKE FAILURE: {failure}", file=sys.stderr)
                print(f"\nsmoke: {len(TOUR) - len(failures)} of {len(TOUR)} steps as expected")
                return 1 if failures else 0
            print(f"\nThe proxy keeps running on {proxy.url}; try the curl lines above. Ctrl-C stops it.")
            await asyncio.Event().wait()
    finally:
        await runner.cleanup()
    return 0


def run_demo(*, listen: tuple[str, int], origin_listen: tuple[str, int], smoke: bool) -> int:
    try:
        return uvloop.run(_demo(listen, origin_listen, smoke))
    except KeyboardInterrupt:
        return 0
