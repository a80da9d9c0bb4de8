"""``policy check`` / ``policy explain`` output, and the shipped policies/ folder."""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from edgeproxy.policies.builtin import DEFAULT_POLICY
from edgeproxy.policies.keying import request_key
from edgeproxy.policies.loader import load_directory
from edgeproxy.policies.tool import check, explain, register, request_from_url

WritePolicies = Callable[..., Path]
EDGEPROXY = str(Path(sys.executable).with_name("edgeproxy"))


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="edgeproxy")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_shipped_policies_pass_check(shipped: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("policy", "check", str(shipped)) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{shipped}: 4 policies in 2 files are valid (version ")


def test_default_yaml_is_the_builtin_default_written_out(shipped: Path) -> None:
    written = next(p for p in load_directory(shipped).policies if p.name == "default")
    assert dataclasses.replace(written, name=DEFAULT_POLICY.name, source=DEFAULT_POLICY.source) == DEFAULT_POLICY


def test_demo_policies_do_what_the_demo_needs(shipped: Path) -> None:
    policies = load_directory(shipped)
    items = policies.match("127.0.0.1:8080", "GET", "/api/items")
    assert items.name == "demo-items" and items.personalize is not None
    assert (items.personalize.model, items.personalize.items_path, items.personalize.deadline_ms, items.personalize.max_candidates) == (
        "demo-ranker", "items", 2.0, 500,
    )
    key = request_key(items, request_from_url("http://127.0.0.1:8080/api/items?utm_source=x&limit=5&fbclid=1&category=books&z=1"))
    assert key.upstream_target == "/api/items?category=books&limit=5"
    static = policies.match("127.0.0.1:8080", "GET", "/static/app.css")
    assert static.name == "demo-static" and static.rules.min_ttl == 3600
    site = policies.match("127.0.0.1:8080", "GET", "/items/3")
    assert site.name == "demo-site" and site.rules.negative_ttl == {404: 10.0}


def test_check_prints_every_problem_and_fails(write_policies: WritePolicies, capsys: pytest.CaptureFixture[str]) -> None:
    folder = write_policies(a="policies:\n  p:\n    priority: x\n    ttl: {max: 1y}\n")
    assert check(folder) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{folder / 'a.yaml'}:3: policy 'p': priority: expected a whole number, got 'x'",
        f"{folder / 'a.yaml'}:4: policy 'p': ttl.max: expected a duration like 30s, 5m, 1h, 2d or 2ms, got '1y'",
        f"2 problems in {folder}",
    ]


def test_explain_a_personalized_route(shipped: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run_cli(
        "policy", "explain", "http://127.0.0.1:8080/api/items?limit=5&utm_medium=mail&category=books",
        "--policies", str(shipped), "--header", "X-User-Id: 42", "--cookie", "uid=42",
    )
    assert code == 0
    out = capsys.readouterr().out
    assert f"policy       demo-items ({shipped / 'demo.yaml'}:4, priority 100)" in out
    assert "matched    host '*', path '/api/items', method GET listed" in out
    assert "  target                 /api/items?category=books&limit=5\n" in out
    assert "upstream     /api/items?category=books&limit=5 (to the proxy's --origin)" in out
    assert "bypass       no: looked up in the cache" in out
    assert "personalize  model 'demo-ranker', items at 'items', deadline 2ms, up to 500 candidates" in out
    hash_line = next(line for line in out.splitlines() if line.startswith("  hash"))
    assert len(hash_line.split()[-1]) == 32


def test_explain_a_bypass_and_negative_caching(shipped: Path) -> None:
    policies = load_directory(shipped)
    text = explain(policies, request_from_url("http://shop.example/catalog", cookies=["preview=1"]))
    assert "policy       demo-site" in text
    assert "bypass       yes, req_bypass_cookie: the request carries a cookie the policy passes on" in text
    assert "beresp_errors          kept 404 for 10s" in text
    assert "stale      while-revalidate -, if-error 5m" in text
    assert "             if-disconnected 10s (when the origin cannot be reached)" in text
    assert "personalize  off" in text


def test_explain_says_when_the_disconnected_window_is_off(write_policies: WritePolicies) -> None:
    folder = write_policies(a="policies:\n  strict:\n    priority: 1\n    stale: {if_disconnected: 0}\n")
    assert "if-disconnected off (when the origin cannot be reached)" in explain(load_directory(folder), request_from_url("http://x/a"))


def test_explain_shows_absent_key_parts_and_the_builtin_fallback(write_policies: WritePolicies) -> None:
    folder = write_policies(a="policies:\n  lang:\n    priority: 1\n    match: {paths: [/i18n/*]}\n    key: {headers: [accept-language]}\n")
    policies = load_directory(folder)
    assert "header:accept-language (absent: not in key)" in explain(policies, request_from_url("http://x/i18n/a"))
    fallback = explain(policies, request_from_url("http://x/other"))
    assert "policy       builtin-default (<builtin>, priority 0)" in fallback
    assert "no policy matched: the built-in default applies" in fallback


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["/relative"], "expected an absolute http(s) URL"),
        (["http://x/", "--header", "no-colon"], "--header expects K:V"),
        (["http://x/", "--cookie", "novalue"], "--cookie expects name=value"),
    ],
)
def test_explain_rejects_bad_input(argv: list[str], message: str, shipped: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("policy", "explain", *argv, "--policies", str(shipped)) == 2
    assert message in capsys.readouterr().err


def test_explain_refuses_an_invalid_policy_set(write_policies: WritePolicies, capsys: pytest.CaptureFixture[str]) -> None:
    folder = write_policies(a="policies:\n  p:\n    priorty: 1\n")
    assert run_cli("policy", "explain", "http://x/", "--policies", str(folder)) == 1
    assert "priorty: unknown key; did you mean 'priority'?" in capsys.readouterr().err


def test_installed_command_checks_the_shipped_policies(shipped: Path, tmp_path: Path) -> None:
    """The real ``edgeproxy policy check`` entry point, as an operator runs it."""
    ok = subprocess.run([EDGEPROXY, "policy", "check", str(shipped)], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    (tmp_path / "bad.yaml").write_text("policies:\n  p:\n    ttl: {min: soon}\n")
    bad = subprocess.run([EDGEPROXY, "policy", "check", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1
    assert bad.stdout.splitlines()[0] == (
        f"{tmp_path / 'bad.yaml'}:3: policy 'p': ttl.min: expected a duration like 30s, 5m, 1h, 2d or 2ms, got 'soon'"
    )
