"""Hot reload: a valid set swaps in whole, an invalid one is rejected and the old one keeps serving."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from edgeproxy.policies.problems import PolicyError
from edgeproxy.policies.reload import PolicyHolder, ReloadOutcome, ReloadResult

WritePolicies = Callable[..., Path]

ONE = """
policies:
  api:
    priority: 10
    match: {paths: [/api/*]}
    ttl: {default: 30s}
"""
TWO = ONE.replace("30s", "60s")
BROKEN = ONE.replace("30s", "thirty")


def test_valid_change_swaps_the_set_and_its_version(write_policies: WritePolicies) -> None:
    holder = PolicyHolder(write_policies(a=ONE))
    before = holder.current
    write_policies(a=TWO)
    result = holder.reload()
    assert result.outcome is ReloadOutcome.APPLIED
    assert result.version == holder.current.version != before.version
    assert holder.current.match("x", "GET", "/api/a").rules.default_ttl == 60.0
    # A request that took the old set keeps answering by it.
    assert before.match("x", "GET", "/api/a").rules.default_ttl == 30.0


def test_invalid_change_is_rejected_whole_and_the_old_set_keeps_serving(write_policies: WritePolicies) -> None:
    folder = write_policies(a=ONE)
    holder = PolicyHolder(folder)
    before = holder.current
    write_policies(b=BROKEN.replace("api", "other").replace("10", "20"))
    result = holder.reload()
    assert result.outcome is ReloadOutcome.REJECTED
    assert holder.current is before and result.version == before.version
    assert [str(p) for p in result.problems] == [
        f"{folder / 'b.yaml'}:5: policy 'other': ttl.default: "
        "expected a duration like 30s, 5m, 1h, 2d or 2ms, got 'thirty'"
    ]
    assert result.describe().startswith(f"policy reload rejected: version {before.version}\n")
    assert result.as_dict() == {
        "outcome": "rejected",
        "version": before.version,
        "problems": [str(p) for p in result.problems],
    }


def test_reload_without_changes_is_unchanged(write_policies: WritePolicies) -> None:
    holder = PolicyHolder(write_policies(a=ONE))
    assert holder.reload().outcome is ReloadOutcome.UNCHANGED


def test_no_directory_means_builtin_defaults_only() -> None:
    holder = PolicyHolder(None)
    assert holder.current.version == "builtin" and holder.current.policies == ()
    assert holder.current.match("x", "GET", "/").name == "builtin-default"
    assert holder.reload().outcome is ReloadOutcome.UNCHANGED


def test_an_invalid_directory_at_startup_raises(write_policies: WritePolicies) -> None:
    with pytest.raises(PolicyError):
        PolicyHolder(write_policies(a=BROKEN))


async def test_watch_picks_up_a_file_change(write_policies: WritePolicies) -> None:
    folder = write_policies(a=ONE)
    holder = PolicyHolder(folder)
    results: asyncio.Queue[ReloadResult] = asyncio.Queue()
    watcher = asyncio.create_task(holder.watch(0.02, results.put_nowait))
    try:
        write_policies(b="policies:\n  extra:\n    priority: 99\n    match: {paths: [/extra]}\n")
        applied = await asyncio.wait_for(results.get(), timeout=5)
        assert applied.outcome is ReloadOutcome.APPLIED
        assert holder.current.match("x", "GET", "/extra").name == "extra"

        (folder / "b.yaml").write_text(BROKEN.replace("api", "extra").replace("10", "99"))
        rejected = await asyncio.wait_for(results.get(), timeout=5)
        assert rejected.outcome is ReloadOutcome.REJECTED
        assert holder.current.version == applied.version

        (folder / "b.yaml").unlink()
        removed = await asyncio.wait_for(results.get(), timeout=5)
        assert removed.outcome is ReloadOutcome.APPLIED
        assert holder.current.match("x", "GET", "/extra").name == "builtin-default"
    finally:
        watcher.cancel()
        with pytest.raises(asyncio.CancelledError):
            await watcher
