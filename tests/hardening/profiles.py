"""Hypothesis profiles for every property test in the suite, registered in one place.

``default`` keeps ``pytest`` fast; ``fuzz`` (``HYPOTHESIS_PROFILE=fuzz``, what ``make fuzz``
sets) runs each property with many more examples. Any conftest may call
:func:`load_profiles`; registering twice is harmless.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

FUZZ_MARKER = "fuzz: property tests worth running longer (make fuzz)"


def load_profiles() -> None:
    settings.register_profile("default", max_examples=60, deadline=None)
    settings.register_profile(
        "fuzz", max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
