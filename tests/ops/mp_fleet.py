"""Run as a script: a supervisor that enables multiprocess metrics, forks two workers that record
traffic and exit, then prints the rendered exposition before and after reaping one worker.

Kept out of the pytest process because multiprocess mode is process-wide state."""

from __future__ import annotations

import json
import multiprocessing
import sys

from edgeproxy import metrics

SEPARATOR = "\n--- after mark_worker_dead ---\n"


def worker(hits: int, l1_bytes: int) -> None:
    m = metrics.ProxyMetrics()
    for _ in range(hits):
        m.record_request("hit", 200, 0.0002)
    m.record_request("miss", 200, 0.02)
    m.l2_circuit.set(metrics.CircuitState.OPEN if hits == 4 else metrics.CircuitState.CLOSED)
    m.add_store_source(lambda: metrics.StoreSample(l1_bytes, 1, 2))
    m.refresh()


def main(directory: str) -> None:
    metrics.enable_multiprocess(directory)
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=worker, args=args) for args in ((3, 1000), (4, 500))]
    for p in workers:
        p.start()
    for p in workers:
        p.join(timeout=20)
        assert p.exitcode == 0, f"worker {p.pid} exited with {p.exitcode}"
    renderer = metrics.ProxyMetrics()
    before = renderer.render().decode()
    metrics.mark_worker_dead(workers[1].pid)
    after = renderer.render().decode()
    print(json.dumps({"before": before, "after": after}))


if __name__ == "__main__":
    main(sys.argv[1])
