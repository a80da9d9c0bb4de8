"""Starting and always stopping the servers a benchmark needs, on loopback ports.

Every process is started in its own session (process group) and registered with an
``ExitStack``, so a normal exit, an exception or Ctrl-C kills the whole group: a benchmark
never leaves an origin, a proxy worker or a redis-server behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

LOOPBACK = "127.0.0.1"
READY_TIMEOUT_S = 20.0
STOP_GRACE_S = 3.0


class StartError(RuntimeError):
    """A server did not come up; the message names it and carries the tail of its log."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


@dataclass(slots=True)
class Server:
    """A process we started, serving on ``port`` of the loopback interface."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def stop(self) -> None:
        """SIGTERM the process group, then SIGKILL after a grace period. Idempotent."""
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=STOP_GRACE_S)

    def kill(self) -> None:
        """Abrupt death (SIGKILL), as in a crash: used by the origin-down and redis-down scenarios."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=STOP_GRACE_S)


def launch(stack: contextlib.ExitStack, name: str, argv: list[str], port: int, logdir: Path) -> Server:
    """Start ``argv`` in its own process group and register its stop with ``stack``; no waiting."""
    if shutil.which(argv[0]) is None and not Path(argv[0]).exists():
        raise StartError(f"{name}: executable {argv[0]!r} not found")
    log = logdir / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    server = Server(name, port, proc, log)
    stack.callback(server.stop)
    return server


def wait_ready(server: Server, ready: Callable[[Server], bool]) -> Server:
    """Block until ``ready`` says so; a process that exits or stays silent raises StartError."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not ready(server):
        if server.proc.poll() is not None:
            raise StartError(f"{server.name} exited with status {server.proc.returncode}:\n{_tail(server.log)}")
        if time.monotonic() > deadline:
            raise StartError(
                f"{server.name} not ready on port {server.port} after {READY_TIMEOUT_S:.0f} s:\n{_tail(server.log)}"
            )
        time.sleep(0.05)
    return server


def start(
    stack: contextlib.ExitStack, name: str, argv: list[str], port: int, logdir: Path,
    ready: Callable[[Server], bool],
) -> Server:
    """:func:`launch`, then :func:`wait_ready`."""
    return wait_ready(launch(stack, name, argv, port, logdir), ready)


def http_ready(path: str = "/") -> Callable[[Server], bool]:
    """Ready once the server answers ``path`` with any HTTP status."""

    def check(server: Server) -> bool:
        try:
            with urllib.request.urlopen(server.url + path, timeout=1.0):
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False

    return check


def tcp_ready(server: Server) -> bool:
    try:
        with socket.create_connection((LOOPBACK, server.port), timeout=0.5):
            return True
    except OSError:
        return False


def edgeproxy_bin() -> str:
    """The ``edgeproxy`` console script next to this interpreter (the venv's), else on PATH."""
    beside = Path(sys.executable).with_name("edgeproxy")
    return str(beside) if beside.exists() else "edgeproxy"


ORIGIN_READY = http_ready("/_control/stats")


def start_origin(stack: contextlib.ExitStack, logdir: Path) -> Server:
    """The demo origin, started and answering."""
    return wait_ready(launch_origin(stack, logdir), ORIGIN_READY)


def launch_origin(stack: contextlib.ExitStack, logdir: Path) -> Server:
    """The demo origin, launched but not waited for (``wait_ready(origin, ORIGIN_READY)``), so
    its start-up overlaps the proxy's."""
    port = free_port()
    return launch(stack, "origin", [edgeproxy_bin(), "demo-origin", "--listen", f"{LOOPBACK}:{port}"], port, logdir)


def start_redis(stack: contextlib.ExitStack, logdir: Path) -> Server:
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", LOOPBACK, "--save", "", "--appendonly", "no"]
    return start(stack, "redis", argv, port, logdir, tcp_ready)


@dataclass(frozen=True, slots=True)
class AdminAccess:
    url: str
    token: str


def start_edgeproxy(
    stack: contextlib.ExitStack, logdir: Path, origin: str, *, workers: int,
    redis: str | None = None, admin_token: str | None = None, cache_bytes: int | None = None,
) -> tuple[Server, AdminAccess | None]:
    """``edgeproxy serve`` in front of ``origin``; with ``admin_token`` also its admin port."""
    port = free_port()
    argv = [edgeproxy_bin(), "serve", "--origin", origin, "--listen", f"{LOOPBACK}:{port}",
            "--workers", str(workers)]
    if cache_bytes is not None:
        argv += ["--cache-size", str(cache_bytes)]
    if redis is not None:
        argv += ["--redis", redis]
    admin = None
    if admin_token is not None:
        admin_port = free_port()
        argv += ["--admin", f"{LOOPBACK}:{admin_port}", "--admin-token", admin_token]
        admin = AdminAccess(f"http://{LOOPBACK}:{admin_port}", admin_token)
    # Any answer will do, a 502 included: the origin may still be starting.
    server = start(stack, "edgeproxy", argv, port, logdir, http_ready("/"))
    return server, admin


def _tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C, so ``finally`` blocks stop every server on either."""

    def raise_interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
