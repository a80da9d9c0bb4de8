"""Ctrl-C in the middle of a run stops every process the run started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

# Ctrl-C from a terminal reaches the whole foreground process group; a test runner may start us
# with SIGINT ignored, so the child restores the default handler before running the CLI.
RUN = (
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv = ['bench', 'run', '--scenario', 'redis-down', '--duration', '30', '--connections', '2', "
    "'--no-report', '--out', sys.argv[1]]; runpy.run_module('bench', run_name='__main__')"
)


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` now (Linux /proc); one that exits mid-walk is skipped."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            found |= {child} | descendants(child)
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_ctrl_c_mid_run_stops_origin_proxy_redis_and_generator(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-c", RUN, str(tmp_path)], cwd=repo, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        started: set[int] = set()
        while time.monotonic() < deadline and len(started) < 4:  # origin, redis, proxy, generator
            time.sleep(0.2)
            started = descendants(proc.pid)
        assert len(started) >= 4, f"the run did not start its servers and load generator: {started}"
        os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, stderr[-2000:]
    assert "every server this run started has been stopped" in stderr
    time.sleep(0.5)
    assert not [pid for pid in started if alive(pid)]
