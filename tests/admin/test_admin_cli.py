"""``edgeproxy purge`` / ``reload`` against a real admin server."""

from __future__ import annotations

import argparse
import asyncio
import json
import socket

import pytest
from admin_harness import TOKEN, Admin

from edgeproxy.admin.cli import register
from edgeproxy.admin.control import PurgeRequest, ReloadOutcome


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="edgeproxy")
    register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


async def run(argv: list[str]) -> int:
    args = parse(argv)
    return await asyncio.to_thread(args.func, args)


async def test_purge_sends_every_selector(admin: Admin, capsys: pytest.CaptureFixture[str]) -> None:
    code = await run(["purge", "--admin", admin.base, "--token", TOKEN, "--url", "http://shop.test/a",
                      "--tag", "items", "--tag", "items:books", "--soft"])
    assert code == 0
    assert json.loads(capsys.readouterr().out) == {"outcome": "fleet", "selectors": 3, "detail": ""}
    assert admin.control.purges == [
        PurgeRequest(urls=("http://shop.test/a",), tags=("items", "items:books"), soft=True, client="127.0.0.1")
    ]


async def test_token_defaults_to_the_environment(admin: Admin, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEPROXY_ADMIN_TOKEN", TOKEN)
    assert await run(["purge", "--admin", admin.base, "--all"]) == 0
    assert admin.control.purges[0].all


async def test_refusals_exit_1_with_the_reason(admin: Admin, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGEPROXY_ADMIN_TOKEN", raising=False)
    assert await run(["purge", "--admin", admin.base, "--token", TOKEN]) == 1
    assert "HTTP 400" in capsys.readouterr().err
    assert await run(["reload", "--admin", admin.base]) == 1
    assert "HTTP 401" in capsys.readouterr().err
    admin.control.reload_outcome = ReloadOutcome.REJECTED
    assert await run(["reload", "--admin", admin.base, "--token", TOKEN]) == 1
    assert "unknown key" in capsys.readouterr().err


async def test_unreachable_admin_exits_2_and_says_what_to_check(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as bound_not_listening:
        bound_not_listening.bind(("127.0.0.1", 0))
        port = bound_not_listening.getsockname()[1]
        assert await run(["reload", "--admin", f"http://127.0.0.1:{port}", "--token", TOKEN]) == 2
    assert "edgeproxy serve --admin" in capsys.readouterr().err
