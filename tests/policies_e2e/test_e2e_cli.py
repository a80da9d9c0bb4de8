"""`edgeproxy policy check` and `edgeproxy policy explain`, run as the installed command."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.policies_e2e.conftest import EDGEPROXY, PROBLEM_LINE, policy_text

SHIPPED = Path(__file__).resolve().parents[2] / "policies"


def edgeproxy(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(EDGEPROXY), *map(str, args)], capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    """Two files with one problem of each kind an operator makes, at known lines."""
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "a.yaml").write_text(
        policy_text("""
        policies:
          api:
            priority: 10
            match:
              paths: [/api/*]
            ttl:
              force: soon
            key:
              qurey: all
          admin:
            bypass:
              skip_rules: [req_method]
    """),
        encoding="utf-8",
    )
    (folder / "b.yaml").write_text(
        policy_text("""
        policies:
          sized:
            store:
              max_object_size: lots
            origin:
              url: ftp://example.com
    """),
        encoding="utf-8",
    )
    return folder


@pytest.fixture
def tied(tmp_path: Path) -> Path:
    folder = tmp_path / "tied"
    folder.mkdir()
    (folder / "a.yaml").write_text(
        policy_text("""
        policies:
          api:
            priority: 10
            match: {paths: ["/api/*"]}
    """),
        encoding="utf-8",
    )
    (folder / "b.yaml").write_text(
        policy_text("""
        policies:
          v1:
            priority: 10
            match: {paths: ["/api/v1/*"]}
    """),
        encoding="utf-8",
    )
    return folder


def test_check_accepts_the_shipped_policies():
    result = edgeproxy("policy", "check", SHIPPED)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "are valid" in result.stdout


def test_check_reports_every_problem_as_file_line_policy_field_reason(broken: Path):
    result = edgeproxy("policy", "check", broken)
    assert result.returncode == 1
    *problems, summary = result.stdout.strip().splitlines()
    parsed = [PROBLEM_LINE.match(line) for line in problems]
    assert all(parsed), f"lines not in file:line: policy 'name': field: reason form: {problems}"
    where = {(Path(m["file"]).name, int(m["line"]), m["policy"], m["field"]) for m in parsed if m}
    assert where == {
        ("a.yaml", 7, "api", "ttl.force"),
        ("a.yaml", 9, "api", "key.qurey"),
        ("a.yaml", 12, "admin", "bypass.skip_rules[0]"),
        ("b.yaml", 4, "sized", "store.max_object_size"),
        ("b.yaml", 6, "sized", "origin.url"),
    }
    assert "did you mean 'query'" in result.stdout
    assert summary == f"5 problems in {broken}"


def test_check_rejects_equal_priorities_that_can_match_the_same_request(tied: Path):
    result = edgeproxy("policy", "check", tied)
    assert result.returncode == 1
    match = PROBLEM_LINE.match(result.stdout.splitlines()[0])
    assert match and match["field"] == "priority" and "higher priority" in match["reason"], result.stdout


def test_explain_shows_policy_key_upstream_and_personalization_for_a_shipped_route():
    result = edgeproxy(
        "policy", "explain", "--policies", SHIPPED, "http://shop.example/api/items?limit=5&category=books&utm_source=x"
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert re.search(r"^policy\s+demo-items \(.*demo\.yaml:\d+, priority 100\)$", out, re.M), out
    assert re.search(r"^upstream\s+/api/items\?category=books&limit=5 ", out, re.M), out
    assert re.search(r"^personalize\s+model 'demo-ranker'", out, re.M), out
    assert re.search(r"^bypass\s+no: looked up in the cache$", out, re.M), out


def test_explain_names_the_rule_that_passes_a_request():
    result = edgeproxy(
        "policy", "explain", "--policies", SHIPPED, "--cookie", "preview=1", "http://shop.example/items/3"
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"^bypass\s+yes, req_bypass_cookie: ", result.stdout, re.M), result.stdout


def test_explain_on_a_broken_directory_exits_1_listing_the_problems(broken: Path):
    result = edgeproxy("policy", "explain", "--policies", broken, "http://shop.example/")
    assert result.returncode == 1
    assert sum(bool(PROBLEM_LINE.match(line)) for line in result.stderr.splitlines()) == 5, result.stderr


def test_explain_of_a_url_that_is_not_absolute_exits_2():
    result = edgeproxy("policy", "explain", "--policies", SHIPPED, "shop.example/items")
    assert result.returncode == 2
    assert "absolute http(s) URL" in result.stderr


def test_explain_describes_the_error_rule_the_proxy_applies(tmp_path: Path):
    """Under the built-in default a 404 with max-age is stored (tests/policies_e2e/test_e2e_ttl.py);
    only the statuses a client can provoke (400, 403, 413, 429, 431, 5xx) are not. Explain must not
    tell an operator that errors are simply "not stored"."""
    result = edgeproxy("policy", "explain", "--policies", tmp_path, "http://shop.example/items/3")
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.strip().startswith("beresp_errors"))
    assert "5xx" in line and "400" in line, line
