"""The cache core's specification tests: the ``fuzz`` marker and hypothesis profiles.

``HYPOTHESIS_PROFILE=fuzz`` (what ``make fuzz`` sets) runs the property tests with many more
examples; the default profile keeps the normal suite fast.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("default", max_examples=60, deadline=None)
settings.register_profile(
    "fuzz", max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fuzz: property tests worth running longer (make fuzz)")
