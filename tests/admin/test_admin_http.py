"""The admin API over real HTTP: authentication, validation, outcomes → statuses, audit trail."""

from __future__ import annotations

import json
import logging

import pytest
from admin_harness import Admin

from edgeproxy.admin.control import HealthState, ModelAction, PurgeOutcome, PurgeRequest, ReloadOutcome

PROTECTED = [("GET", "/stats"), ("GET", "/metrics"), ("POST", "/purge"), ("POST", "/reload"),
             ("POST", "/models/demo-ranker")]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
async def test_protected_endpoints_answer_401_with_a_bearer_challenge_without_a_token(
    admin: Admin, method: str, path: str
) -> None:
    async with admin.http.request(method, admin.base + path, json={"all": True}) as resp:
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"] == 'Bearer realm="edgeproxy-admin"'
        assert "bearer token" in (await resp.json())["error"]
    assert admin.control.purges == []


@pytest.mark.parametrize(
    "header", ["Bearer wrong-token", "Bearer s3cret-token-and-more", "Basic s3cret-token", "s3cret-token"]
)
async def test_a_wrong_token_is_401_invalid_token_and_never_reaches_the_control(admin: Admin, header: str) -> None:
    async with admin.http.post(admin.base + "/purge", json={"all": True}, headers={"Authorization": header}) as resp:
        assert resp.status == 401
        assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]
    assert admin.control.purges == []


async def test_failed_logins_are_audited(admin: Admin, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="edgeproxy.admin.audit")
    async with admin.http.post(admin.base + "/reload", headers=admin.auth("guess")):
        pass
    [line] = [json.loads(r.getMessage()) for r in caplog.records if r.name == "edgeproxy.admin.audit"]
    assert line == {"event": "unauthorized", "client": "127.0.0.1", "method": "POST", "path": "/reload"}


async def test_healthz_is_public_and_degraded_still_answers_200(admin: Admin) -> None:
    for state, status in [(HealthState.OK, 200), (HealthState.DEGRADED, 200), (HealthState.FAILING, 503)]:
        admin.control.health_state = state
        async with admin.http.get(admin.base + "/healthz") as resp:
            assert resp.status == status
            assert (await resp.json())["state"] == state.value


async def test_status_page_shell_is_public_but_locked_down_by_csp(admin: Admin) -> None:
    async with admin.http.get(admin.base + "/") as resp:
        assert resp.status == 200
        assert resp.content_type == "text/html"
        csp = resp.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "script-src 'sha256-" in csp and "frame-ancestors 'none'" in csp
        assert resp.headers["Cache-Control"] == "no-store"
        assert "s3cret" not in await resp.text()


async def test_purge_hands_the_parsed_request_to_the_control(admin: Admin) -> None:
    body = {"urls": ["http://shop.test/items/7", "http://shop.test/items/7"], "tags": ["items:books"], "soft": True}
    async with admin.http.post(admin.base + "/purge", json=body, headers=admin.auth()) as resp:
        assert resp.status == 200
        assert await resp.json() == {"outcome": "fleet", "selectors": 2, "detail": ""}
    assert admin.control.purges == [
        PurgeRequest(urls=("http://shop.test/items/7",), tags=("items:books",), soft=True, client="127.0.0.1")
    ]


async def test_purge_that_could_not_reach_the_fleet_is_503_so_scripts_retry(admin: Admin) -> None:
    admin.control.purge_outcome = PurgeOutcome.LOCAL_ONLY
    async with admin.http.post(admin.base + "/purge", json={"all": True}, headers=admin.auth()) as resp:
        assert resp.status == 503
        assert (await resp.json())["outcome"] == "local-only"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ('{"urls": ["http://a/"', "malformed JSON"),
        ("", "empty body"),
        ('["http://a/"]', "must be a JSON object"),
        ("{}", "nothing to purge"),
        ('{"urls": []}', "nothing to purge"),
        ('{"url": ["http://a/"]}', "unknown keys ['url']"),
        ('{"urls": "http://a/"}', '"urls" must be a list of strings'),
        ('{"urls": [""]}', '"urls"[0] must be a non-empty string'),
        ('{"tags": [7]}', '"tags"[0] must be a non-empty string'),
        ('{"urls": ["/items/1"]}', "absolute http(s) URL"),
        ('{"prefixes": ["ftp://a/"]}', "absolute http(s) URL"),
        ('{"tags": ["two words"]}', "whitespace"),
        ('{"all": "yes"}', '"all" must be true or false'),
        ('{"all": true, "tags": ["x"]}', "without urls, prefixes or tags"),
        (json.dumps({"tags": [f"t{i}" for i in range(1001)]}), "too many selectors: 1001 > 1000"),
        (json.dumps({"tags": ["x" * 2049]}), "the limit is 2048"),
    ],
)
async def test_invalid_purge_bodies_are_400_with_a_reason(admin: Admin, raw: str, reason: str) -> None:
    headers = admin.auth() | {"Content-Type": "application/json"}
    async with admin.http.post(admin.base + "/purge", data=raw, headers=headers) as resp:
        assert resp.status == 400
        assert reason in (await resp.json())["error"]
    assert admin.control.purges == []


async def test_oversized_body_is_413_before_parsing(admin: Admin) -> None:
    raw = json.dumps({"tags": ["x" * 1000] * 100})
    async with admin.http.post(admin.base + "/purge", data=raw, headers=admin.auth()) as resp:
        assert resp.status == 413
    assert admin.control.purges == []


async def test_purges_are_audited_with_who_what_and_result(admin: Admin, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="edgeproxy.admin.audit")
    body = {"prefixes": ["http://shop.test/api/"]}
    async with admin.http.post(admin.base + "/purge", json=body, headers=admin.auth()):
        pass
    async with admin.http.post(admin.base + "/purge", json={"tags": []}, headers=admin.auth()):
        pass
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "edgeproxy.admin.audit"]
    assert lines[0] == {
        "event": "purge", "client": "127.0.0.1", "urls": [], "prefixes": ["http://shop.test/api/"], "tags": [],
        "all": False, "soft": False, "outcome": "fleet", "selectors": 1,
    }
    assert lines[1]["event"] == "purge" and "nothing to purge" in lines[1]["rejected"]


async def test_reload_outcomes_map_to_statuses(admin: Admin) -> None:
    async with admin.http.post(admin.base + "/reload", headers=admin.auth()) as resp:
        assert resp.status == 200
        assert await resp.json() == {"outcome": "reloaded", "version": "v7", "detail": ""}
    admin.control.reload_outcome = ReloadOutcome.REJECTED
    async with admin.http.post(admin.base + "/reload", headers=admin.auth()) as resp:
        assert resp.status == 422
        assert "unknown key" in (await resp.json())["detail"]


async def test_model_canary_is_validated_and_passed_on(admin: Admin) -> None:
    url = admin.base + "/models/demo-ranker"
    async with admin.http.post(url, json={"action": "canary", "version": "v2"}, headers=admin.auth()) as resp:
        assert resp.status == 400
        assert '"canary" needs "share"' in (await resp.json())["error"]
    body = {"action": "canary", "version": "v2", "share": 0.1}
    async with admin.http.post(url, json=body, headers=admin.auth()) as resp:
        assert resp.status == 200
    [command] = admin.control.commands
    assert (command.model, command.action, command.version, command.share) == (
        "demo-ranker", ModelAction.CANARY, "v2", 0.1)


async def test_stats_and_metrics_come_from_the_control(admin: Admin) -> None:
    admin.control.snapshot = {"requests_per_second": 2.5, "hit_ratio": 0.75}
    admin.control.exposition = b"edgeproxy_requests_total 3.0\n"
    async with admin.http.get(admin.base + "/stats", headers=admin.auth()) as resp:
        assert await resp.json() == {"requests_per_second": 2.5, "hit_ratio": 0.75}
    async with admin.http.get(admin.base + "/metrics", headers=admin.auth()) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert await resp.read() == b"edgeproxy_requests_total 3.0\n"


async def test_unknown_path_and_wrong_method_answer_in_json(admin: Admin) -> None:
    async with admin.http.get(admin.base + "/nope", headers=admin.auth()) as resp:
        assert resp.status == 404
        assert "error" in await resp.json()
    async with admin.http.get(admin.base + "/purge", headers=admin.auth()) as resp:
        assert resp.status == 405
        assert resp.headers["Allow"] == "POST"
