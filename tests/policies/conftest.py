"""Fixtures for policy tests: a temporary policies directory written from YAML snippets."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

SHIPPED = Path(__file__).resolve().parents[2] / "policies"

WritePolicies = Callable[..., Path]


@pytest.fixture
def shipped() -> Path:
    """The repository's own policies/ folder."""
    return SHIPPED


@pytest.fixture
def write_policies(tmp_path: Path) -> WritePolicies:
    """``write_policies(a="yaml...", b="yaml...")`` writes a.yaml, b.yaml (dedented) and returns the folder."""
    folder = tmp_path / "policies"
    folder.mkdir()

    def write(**files: str) -> Path:
        for name, text in files.items():
            (folder / f"{name}.yaml").write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return folder

    return write
