"""`edgeproxy serve` settings: command line, then EDGEPROXY_* environment, then a YAML config file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edgeproxy.cli import build_parser, load_config


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "edgeproxy.yaml"
    path.write_text(text)
    return str(path)


def test_the_file_sets_what_flags_and_environment_leave_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(write(tmp_path, "origin: http://o.example\ncache_size: 64MB\nworkers: 3\nredis: redis://r:6379/0\n"))
    monkeypatch.setenv("EDGEPROXY_WORKERS", "2")
    args = build_parser(config).parse_args(["serve", "--redis", "redis://flag:6379/0"])
    assert args.origin == "http://o.example"
    assert args.cache_size == 64 * 1024 * 1024
    assert args.workers == 2  # the environment wins over the file
    assert args.redis == "redis://flag:6379/0"  # the flag wins over both


def test_an_unknown_setting_is_refused_with_the_file_and_the_known_names(tmp_path: Path) -> None:
    path = write(tmp_path, "orign: http://typo.example\n")
    result = subprocess.run(
        [sys.executable, "-m", "edgeproxy.cli", "serve", "--config", path], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert f"{path}: unknown setting 'orign'" in result.stderr and "origin" in result.stderr


def test_a_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="expected a mapping"):
        load_config(write(tmp_path, "- origin\n"))


def test_the_l2_bound_is_a_duration_defaulting_to_the_shipped_25ms(tmp_path: Path) -> None:
    assert build_parser({}).parse_args(["serve", "--origin", "http://o.example"]).redis_timeout == 0.025
    config = load_config(write(tmp_path, "origin: http://o.example\nredis_timeout: 250ms\n"))
    assert build_parser(config).parse_args(["serve"]).redis_timeout == 0.25


def test_a_zero_l2_bound_is_refused_with_what_a_bound_must_be(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser({}).parse_args(["serve", "--origin", "http://o.example", "--redis-timeout", "0"])
    assert "--redis-timeout: must be longer than 0s" in capsys.readouterr().err
