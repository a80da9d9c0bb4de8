"""The demo tour (``edgeproxy demo``): a ranking that missed its deadline is the documented
fallback on a busy machine, so a personalized step that meets it asks once more; a ranker that
keeps missing it still fails the step."""

from __future__ import annotations

import io
import json

from aiohttp import web

from edgeproxy.demo.tour import RANKED, TOUR, run_tour
from tests.support.origin import serve_app

DEADLINE = 'edgeproxy; hit; ttl=29; detail="l1 deadline model=demo-ranker-v1"'
RANKED_HIT = 'edgeproxy; hit; ttl=29; detail="l1 ranked model=demo-ranker-v1"'
PERSONALIZED_STEP = next(n for n, step in enumerate(TOUR, 1) if step.path == RANKED)


def scripted_proxy(misses_per_user: int) -> web.Application:
    """Answers the personalized URL with a deadline fallback ``misses_per_user`` times per user,
    then ranked (each user its own order); anything else with a plain hit."""
    asked: dict[str, int] = {}

    async def answer(request: web.Request) -> web.Response:
        if request.path_qs != RANKED:
            return web.Response(text="{}", headers={"Cache-Status": "edgeproxy; hit"})
        user = request.cookies.get("uid", "")
        asked[user] = asked.get(user, 0) + 1
        ranked = asked[user] > misses_per_user
        ids = list(range(20)) if not ranked else sorted(range(20), key=lambda i: hash((user, i)))
        body = json.dumps({"items": [{"id": i} for i in ids]})
        return web.Response(text=body, headers={"Cache-Status": RANKED_HIT if ranked else DEADLINE})

    async def origin_control(request: web.Request) -> web.Response:
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/_control/fail", origin_control)
    app.router.add_route("*", "/{tail:.*}", answer)
    return app


def failures_of_step(failures: list[str], number: int) -> list[str]:
    return [failure for failure in failures if failure.startswith(f"step {number} ")]


async def test_a_ranking_that_missed_its_deadline_once_is_asked_again() -> None:
    out = io.StringIO()
    async with serve_app(scripted_proxy(misses_per_user=1)) as url:
        failures = await run_tour(url, url, out=out)
    assert failures_of_step(failures, PERSONALIZED_STEP) == [], failures
    assert "is an allowed fallback: asking again" in out.getvalue()


async def test_a_ranker_that_keeps_missing_its_deadline_fails_the_step() -> None:
    async with serve_app(scripted_proxy(misses_per_user=2)) as url:
        failures = await run_tour(url, url, out=io.StringIO())
    assert len(failures_of_step(failures, PERSONALIZED_STEP)) == 1, failures
