"""``edgeproxy serve --workers N`` as a real subprocess, on free loopback ports, always stopped.

The supervisor runs in its own session so a failing test can kill it and its workers at once;
its log goes to a file (the test shows the tail when something goes wrong). Starting and stopping
block the calling thread: leave no request in flight to an origin served by the test's own event
loop when the block exits, or the workers' drain would wait for it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import free_port
from tests.fleet.harness import TOKEN

READY_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0


@dataclass(slots=True)
class Served:
    proc: subprocess.Popen[bytes]
    port: int
    admin_port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def workers(self) -> set[int]:
        """Pids of the supervisor's live children (``pgrep -P``)."""
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True, timeout=5)
        return {int(pid) for pid in out.stdout.split()}

    def listening(self) -> int:
        """Workers that have bound the port: each logs it once. A worker that runs but does not
        listen yet gets none of the connections SO_REUSEPORT spreads, and a test of two workers
        would then test one."""
        return self.log.read_text(errors="replace").count("edgeproxy listening on")

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@contextmanager
def serve(tmp_path: Path, origin_url: str, *, workers: int, redis_url: str | None = None) -> Iterator[Served]:
    """Start the supervisor; ready once ``workers`` children run, each has said it listens, and
    both ports accept (a bare TCP connect, so no request is counted before the test makes its own)."""
    port, admin_port = free_port(), free_port()
    argv = [sys.executable, "-m", "edgeproxy.cli", "serve", "--origin", origin_url,
            "--listen", f"127.0.0.1:{port}", "--workers", str(workers),
            "--admin", f"127.0.0.1:{admin_port}", "--admin-token", TOKEN]
    if redis_url is not None:
        argv += ["--redis", redis_url]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGEPROXY_", "PROMETHEUS_MULTIPROC"))}
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)
    served = Served(proc, port, admin_port, log)
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while not (len(served.workers()) == workers and served.listening() >= workers
                   and _accepts(port) and _accepts(admin_port)):
            if proc.poll() is not None:
                raise RuntimeError(f"edgeproxy serve exited with {proc.returncode}:\n{served.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"edgeproxy serve not ready after {READY_TIMEOUT}s:\n{served.log_tail()}")
            time.sleep(0.05)
        yield served
    finally:
        if proc.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
