"""A started worker keeps the garbage collector out of the hit path: what exists at start is
frozen, and young collections are rare (the p99 effect is measured in bench/, not here)."""

from __future__ import annotations

import subprocess
import sys

from edgeproxy.proxy.supervisor import GC_THRESHOLDS


def test_settling_freezes_what_exists_and_raises_the_thresholds() -> None:
    probe = (
        "import gc, edgeproxy.proxy.runtime\n"
        "from edgeproxy.proxy.supervisor import settle_garbage_collector\n"
        "before = gc.get_freeze_count()\n"
        "settle_garbage_collector()\n"
        "print(before, gc.get_freeze_count(), *gc.get_threshold())\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    before, frozen, *thresholds = map(int, out.stdout.split())
    assert before == 0 and frozen > 10_000  # the imported modules alone are tens of thousands
    assert tuple(thresholds) == GC_THRESHOLDS
