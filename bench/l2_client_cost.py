"""What one L2 command costs the proxy's CPU: the lean channel (``edgeproxy.storage.resp``) against
redis-py configured as the data path had it (no socket timeout, no retries), and against the
redis-py channel that TLS and Cluster URLs still use.

Many GETs of one 2 KB value with ``--in-flight`` of them outstanding at once, as a busy worker
has them; the figure is this process's CPU time (user + system) per command, so Redis's own
work is not in it. Loopback only; bounded by ``--commands``.

    python -m bench.l2_client_cost [--redis redis://127.0.0.1:6379/0] [--commands 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import uvloop

from edgeproxy.storage.redisconn import connect
from edgeproxy.storage.resp import RedisPyChannel, RespChannel, plain_endpoint

VALUE = b"x" * 2048


async def cpu_per_call(call: Callable[[], Awaitable[Any]], commands: int, in_flight: int) -> float:
    """Microseconds of this process's CPU per ``call``, ``in_flight`` at a time, after a warm-up."""
    for _ in range(200):
        await call()

    async def worker(n: int) -> None:
        for _ in range(n):
            await call()

    started = time.process_time()
    await asyncio.gather(*(worker(commands // in_flight) for _ in range(in_flight)))
    return (time.process_time() - started) / (commands // in_flight * in_flight) * 1e6


async def measure(url: str, commands: int, in_flight: int) -> None:
    endpoint = plain_endpoint(url)
    if endpoint is None:
        raise SystemExit(f"{url}: the lean channel serves plain redis:// and unix:// URLs only; compare on one of those")
    key = f"bench-l2-cost:{uuid.uuid4().hex}"
    client = connect(url, timeout=1.0, calls_bounded=True)
    lean, wrapped = RespChannel(endpoint), RedisPyChannel(client)
    try:
        await client.set(key, VALUE, px=60_000)
        rows = [
            ("lean channel (resp.py)", lambda: lean.call("GET", key)),
            ("redis-py client.get", lambda: client.get(key)),
            ("redis-py channel", lambda: wrapped.call("GET", key)),
        ]
        print(f"GET of {len(VALUE)} B, {commands:,} commands, {in_flight} in flight, {url}")
        for label, call in rows:
            print(f"  {label:32s} {await cpu_per_call(call, commands, in_flight):6.1f} µs CPU per command")
    finally:
        await client.unlink(key)
        await lean.close()
        await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="a loopback Redis")
    parser.add_argument("--commands", type=int, default=20_000)
    parser.add_argument("--in-flight", type=int, default=64)
    args = parser.parse_args()
    uvloop.run(measure(args.redis, args.commands, args.in_flight))


if __name__ == "__main__":
    main()
