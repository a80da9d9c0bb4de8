"""Peer caches (nginx ``proxy_cache``, Varnish) in front of the same demo origin, and the floor
any Python proxy stands on (``relay.py``: no cache at all).

Each peer runs from a config generated from the template beside this file into a private temp
dir, on a free loopback port, with the same worker count and cache byte budget as edgeproxy.
"""

from __future__ import annotations

import contextlib
import enum
import os
import shutil
import sys
import tempfile
from pathlib import Path

from bench.procs import LOOPBACK, Server, free_port, http_ready, start

TEMPLATES = Path(__file__).parent
RAM_DISK = Path("/dev/shm")
"""Where nginx keeps its cache when the machine has one: edgeproxy's L1 and Varnish's malloc
storage are in memory, so a disk-backed nginx would measure the disk, not the proxy."""


class Peer(enum.Enum):
    NGINX = "nginx"
    VARNISH = "varnish"
    RELAY = "relay"
    """Not a cache: what a miss costs a Python proxy that does nothing but relay (``relay.py``)."""

    @property
    def binary(self) -> str:
        return {Peer.NGINX: "nginx", Peer.VARNISH: "varnishd", Peer.RELAY: sys.executable}[self]

    def missing(self) -> str | None:
        """Why this peer cannot run here, or None when it can."""
        if shutil.which(self.binary) is None:
            return f"{self.value} skipped: `{self.binary}` is not installed (apt-get install -y {self.value})"
        return None


def start_peer(
    stack: contextlib.ExitStack, peer: Peer, workdir: Path, origin_port: int, *, workers: int,
    cache_bytes: int,
) -> Server:
    """Start ``peer`` in front of the origin on ``origin_port``; stopped when ``stack`` closes."""
    if (reason := peer.missing()) is not None:
        raise RuntimeError(reason)
    peer_dir = workdir / peer.value
    peer_dir.mkdir(parents=True, exist_ok=True)
    # Both peers drop privileges to their own user for workers, which must reach the work dir.
    for path in (workdir, peer_dir):
        path.chmod(0o755)
    port = free_port()
    if peer is Peer.NGINX:
        conf = peer_dir / "nginx.conf"
        user_line = "user root;" if os.geteuid() == 0 else ""
        conf.write_text((TEMPLATES / "nginx.conf").read_text().format(
            workers=workers, workdir=peer_dir, cache_dir=_cache_dir(stack, peer_dir), cache_bytes=cache_bytes,
            origin_port=origin_port, port=port, user_line=user_line))
        argv = ["nginx", "-p", str(peer_dir), "-c", str(conf)]
    elif peer is Peer.RELAY:
        argv = [sys.executable, str(TEMPLATES / "relay.py"), "--listen", f"{LOOPBACK}:{port}",
                "--origin-port", str(origin_port), "--workers", str(workers)]
    else:
        vcl = peer_dir / "default.vcl"
        vcl.write_text((TEMPLATES / "varnish.vcl").read_text().format(origin_port=origin_port))
        vcl.chmod(0o644)
        argv = ["varnishd", "-F", "-a", f"{LOOPBACK}:{port}", "-f", str(vcl), "-n", str(peer_dir / "work"),
                "-s", f"malloc,{cache_bytes}", "-T", "none",
                "-p", f"thread_pools={max(1, workers)}"]
    # Any answer will do, a 502 included: the origin may still be starting.
    return start(stack, peer.value, argv, port, peer_dir, http_ready("/"))


def _cache_dir(stack: contextlib.ExitStack, peer_dir: Path) -> Path:
    """nginx's cache directory: on the RAM disk when there is one (removed when ``stack`` closes),
    else beside its config."""
    if not RAM_DISK.is_dir() or not os.access(RAM_DISK, os.W_OK):
        return peer_dir / "cache"
    cache_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="edgeproxy-nginx-", dir=RAM_DISK)))
    cache_dir.chmod(0o755)
    return cache_dir
