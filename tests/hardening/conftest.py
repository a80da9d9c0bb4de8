"""Fixtures for the hardening tests: a programmable origin, proxies started with a policy text,
and the hypothesis profiles (``make fuzz`` selects the long one)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hardening.profiles import FUZZ_MARKER, load_profiles
from tests.support.fixtures import StartProxy  # noqa: F401 (re-exported for the tests)

load_profiles()

REPO_POLICIES = Path(__file__).resolve().parents[2] / "policies"
"""The repository's policies/ folder (the demo policies personalize /api/items)."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", FUZZ_MARKER)
