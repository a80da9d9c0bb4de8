"""`edgeproxy demo --smoke` is the README's tour, run as a test: every step must behave as shown."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_demo_smoke_tour_passes_every_step() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "edgeproxy.cli", "demo", "--smoke", "--listen", "127.0.0.1:0", "--origin-listen", "127.0.0.1:0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "smoke:" in result.stdout and "SMOKE FAILURE" not in result.stderr
