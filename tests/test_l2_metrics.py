"""/metrics reports the Redis tier: call latency by operation, failures by kind, circuit state."""

from __future__ import annotations

import aiohttp

from edgeproxy.proxy.runtime import ProxyConfig, running_proxy
from tests.conftest import RedisServer
from tests.support.origin import ProgrammableOrigin, serve_app

TOKEN = "t"


def sample(text: str, name: str, **labels: str) -> float:
    """The value of the sample ``name`` carrying exactly these labels (in any order), or 0."""
    wanted = {f'{k}="{v}"' for k, v in labels.items()}
    for line in text.splitlines():
        head, _, value = line.rpartition(" ")
        metric, _, rest = head.partition("{")
        if metric == name and set(filter(None, rest.rstrip("}").split(","))) == wanted:
            return float(value)
    return 0.0


async def test_l2_calls_failures_and_circuit_state_are_metrics(own_redis: RedisServer) -> None:
    origin = ProgrammableOrigin()
    origin.set("/a", headers={"Cache-Control": "max-age=60"}, body="a")
    origin.set("/b", headers={"Cache-Control": "max-age=60"}, body="b")
    async with serve_app(origin.app()) as url, running_proxy(
        ProxyConfig(origin=url, port=0, redis=own_redis.url, admin=("127.0.0.1", 0), admin_token=TOKEN)
    ) as proxy:
        admin = {"Authorization": f"Bearer {TOKEN}"}
        async with aiohttp.ClientSession() as client:
            async with client.get(f"{proxy.url}/a") as resp:
                assert resp.status == 200
            metrics_url = f"http://127.0.0.1:{proxy.admin_port}/metrics"
            async with client.get(metrics_url, headers=admin) as resp:
                healthy = await resp.text()
            own_redis.stop()
            for _ in range(8):  # enough failures to open the breaker (threshold 5)
                async with client.get(f"{proxy.url}/b", headers={"Cache-Control": "no-cache"}) as resp:
                    assert resp.status == 200
            async with client.get(metrics_url, headers=admin) as resp:
                broken = await resp.text()
    assert sample(healthy, "edgeproxy_l2_duration_seconds_count", op="get") >= 1
    # A fill writes its object and releases its fleet lock in one pipelined write.
    assert sample(healthy, "edgeproxy_l2_duration_seconds_count", op="put_many") >= 1
    assert sample(healthy, "edgeproxy_l2_circuit_state") == 0
    failures = sum(
        sample(broken, "edgeproxy_l2_errors_total", op=op, kind=kind)
        for op in ("get", "set", "put_many") for kind in ("timeout", "connection", "circuit_open")
    )
    assert failures >= 8
    assert sample(broken, "edgeproxy_l2_circuit_state") == 2  # open

