"""The Docker stack: the compose file resolves, wires two PoPs to one Redis, and Prometheus
scrapes exactly those PoPs with the bearer token. No Docker engine runs here, so only
``docker-compose config`` (which needs no daemon) is checked."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = shutil.which("docker-compose")
NO_COMPOSE = "docker-compose not installed (apt-get install -y docker-compose)"
needs_compose = pytest.mark.skipif(COMPOSE is None, reason=NO_COMPOSE)


def compose_config(token: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "EDGEPROXY_ADMIN_TOKEN"}
    if token is not None:
        env["EDGEPROXY_ADMIN_TOKEN"] = token
    return subprocess.run(
        [str(COMPOSE), "-f", str(ROOT / "docker-compose.yml"), "config"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    if COMPOSE is None:
        pytest.skip(NO_COMPOSE)
    result = compose_config("compose-test-token")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)["services"]


@needs_compose
def test_compose_refuses_to_start_without_an_admin_token() -> None:
    result = compose_config(None)
    assert result.returncode != 0
    assert "set EDGEPROXY_ADMIN_TOKEN" in result.stderr


def test_two_pops_share_redis_and_sit_in_front_of_the_origin(stack: dict[str, Any]) -> None:
    assert set(stack) == {"redis", "origin", "pop-a", "pop-b", "prometheus"}
    for name in ("pop-a", "pop-b"):
        pop = stack[name]
        args = pop["command"]
        assert args[0] == "serve"
        assert args[args.index("--redis") + 1] == "redis://redis:6379/0"
        assert args[args.index("--origin") + 1] == "http://origin:8000"
        assert args[args.index("--admin") + 1] == "0.0.0.0:9090"
        assert "--admin-token" not in args, "the token travels in the environment, not in `ps` output"
        assert pop["environment"]["EDGEPROXY_ADMIN_TOKEN"] == "compose-test-token"
        assert pop["depends_on"] == {"redis": {"condition": "service_healthy"},
                                     "origin": {"condition": "service_healthy"}}
        admin_ports = [p for p in pop["ports"] if isinstance(p, str) and p.endswith(":9090/tcp")]
        assert admin_ports and all(p.startswith("127.0.0.1:") for p in admin_ports), "admin published on loopback only"
    assert stack["origin"]["command"] == ["demo-origin", "--listen", "0.0.0.0:8000"]
    assert stack["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


def test_prometheus_scrapes_every_pop_with_the_bearer_token(stack: dict[str, Any]) -> None:
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    [job] = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["authorization"]["type"] == "Bearer"
    token_file = job["authorization"]["credentials_file"]
    targets = {t for group in job["static_configs"] for t in group["targets"]}
    assert targets == {"pop-a:9090", "pop-b:9090"}
    prometheus = stack["prometheus"]
    assert token_file in " ".join(prometheus["entrypoint"]), "the entrypoint writes the token file Prometheus reads"
    assert prometheus["volumes"] == [f"{ROOT}/deploy/prometheus.yml:/etc/prometheus/prometheus.yml:ro"]
    assert "healthcheck" in prometheus


def test_image_runs_as_non_root_with_a_healthcheck_and_the_origin_overrides_its_url(stack: dict[str, Any]) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    lines = [line.strip() for line in dockerfile.splitlines()]
    assert any(line.startswith("FROM python:") and "slim" in line for line in lines)
    assert "USER edgeproxy" in lines
    assert any(line.startswith("EXPOSE") and "8080" in line and "9090" in line for line in lines)
    assert any(line.startswith("HEALTHCHECK") for line in lines)
    assert stack["origin"]["environment"]["EDGEPROXY_HEALTH_URL"].endswith(":8000/_control/stats")
