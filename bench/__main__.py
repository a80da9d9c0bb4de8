"""``python -m bench run|compare|report|cachesim``: one command, numbers you can trust, plots.

Examples::

    python -m bench run --scenario hit-2k --duration 20 --connections 64
    python -m bench compare --scenario hit-2k --peers nginx,varnish --rounds 2
    python -m bench report bench/results/compare-hit-2k-20261128-001500.json
    python -m bench cachesim --trace scan-mix --size 1%
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from bench import cachesim, report, results
from bench.peers import Peer
from bench.procs import terminate_as_interrupt
from bench.runner import Generator, Leg, RunConfig, Target, run_leg
from bench.scenarios import SCENARIOS, get_scenario


def _run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scenario", required=True, choices=list(SCENARIOS),
                   help="; ".join(f"{s.name}: {s.summary}" for s in SCENARIOS.values()).replace("%", "%%"))
    p.add_argument("--duration", type=float, default=20.0, help="seconds of load per leg (default 20)")
    p.add_argument("--connections", type=int, default=64, help="concurrent connections (default 64)")
    p.add_argument("--workers", type=int, default=1, help="server worker processes (default 1)")
    p.add_argument("--processes", type=int, default=max(1, (os.cpu_count() or 2) // 2),
                   help="load generator processes or wrk threads (default: half the CPUs)")
    p.add_argument("--max-requests", type=int, default=None,
                   help="stop a leg after this many requests (a disruption due later then never happens)")
    p.add_argument("--generator", choices=["auto", "wrk", "builtin"], default="auto",
                   help="wrk where installed (auto), else the built-in async client")
    p.add_argument("--alpha", type=float, default=None, help="Zipf exponent for zipf-based scenarios")
    p.add_argument("--seed", type=int, default=1, help="workload seed: same seed, same requests")
    p.add_argument("--cache-size", default="256MB", help="cache budget of every target: edgeproxy L1, nginx, Varnish (default 256MB)")
    p.add_argument("--out", type=Path, default=None, help="results directory (default bench/results)")
    p.add_argument("--no-report", action="store_true", help="skip the markdown table and plots")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="one scenario against edgeproxy (or a peer, or --target URL)")
    _run_args(run)
    run.add_argument("--target", default=None, help="benchmark this running server instead of starting one")
    run.add_argument("--server", choices=[t.value for t in Target if t is not Target.EXTERNAL], default="edgeproxy",
                     help="what to start in front of the demo origin (default edgeproxy)")
    run.set_defaults(func=cmd_run)

    compare = sub.add_parser("compare", help="edgeproxy and peers, alternating rounds, ratios as headline")
    _run_args(compare)
    compare.add_argument("--peers", default="nginx,varnish", help=f"comma-separated: {', '.join(p.value for p in Peer)} "
                         "(relay: a Python relay that caches nothing, the floor of a miss)")
    compare.add_argument("--rounds", type=int, default=2, help="rounds, order reversed every other one (default 2)")
    compare.set_defaults(func=cmd_compare)

    report = sub.add_parser("report", help="markdown table and PNG plots from a results file")
    report.add_argument("results", type=Path)
    report.add_argument("--out", type=Path, default=None, help="output folder (default: beside the file)")
    report.add_argument("--rank-cost", type=Path, default=None, help="bench/rank_cost.py results to plot (default: the newest bench/results/rank-cost-*.json)")
    report.set_defaults(func=cmd_report)

    sim = sub.add_parser("cachesim", help="hit ratios of S3-FIFO, LRU and Belady on a key trace")
    sim.add_argument("--trace", default="zipf", help="zipf, scan-mix, or a CSV file of key,size rows")
    sim.add_argument("--size", default="1%", help="capacity: a share of unique bytes (1%%) or bytes (64MB)")
    sim.add_argument("--objects", type=int, default=100_000, help="catalog size of synthetic traces")
    sim.add_argument("--length", type=int, default=1_000_000, help="requests in synthetic traces")
    sim.add_argument("--alpha", type=float, default=0.9, help="Zipf exponent of synthetic traces")
    sim.add_argument("--seed", type=int, default=1)
    sim.set_defaults(func=cmd_cachesim)
    return parser


def _config(args: argparse.Namespace, target_url: str | None = None) -> RunConfig:
    return RunConfig(
        scenario=get_scenario(args.scenario, alpha=args.alpha), duration=args.duration,
        connections=args.connections, workers=args.workers, processes=args.processes, seed=args.seed,
        generator=Generator(args.generator), cache_bytes=cachesim.parse_size(args.cache_size),
        max_requests=args.max_requests, target_url=target_url,
    )


def _finish(args: argparse.Namespace, config: RunConfig, legs: list[Leg], command: str) -> int:
    doc = results.document(config, legs, command)
    path = results.write(doc, args.out or results.RESULTS_DIR)
    print(f"results: {path}")
    if not args.no_report:
        written = report.write_report(path)
        print(report.markdown(report.load(path)))
        print("report: " + ", ".join(str(p) for p in written))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    target = Target.EXTERNAL if args.target else Target(args.server)
    if target.peer is not None and (reason := target.peer.missing()):
        print(reason, file=sys.stderr)
        return 2
    config = _config(args, args.target)
    with terminate_as_interrupt():
        leg = run_leg(config, target)
    return _finish(args, config, [leg], "run")


def cmd_compare(args: argparse.Namespace) -> int:
    config = _config(args)
    if not config.scenario.peers:
        print(f"scenario {config.scenario.name} has no peer equivalent (personalization, admin API or Redis);"
              " use `run` instead", file=sys.stderr)
        return 2
    targets = [Target.EDGEPROXY]
    for name in filter(None, (n.strip() for n in args.peers.split(","))):
        peer = Peer(name)
        if (reason := peer.missing()) is not None:
            print(reason, file=sys.stderr)
        else:
            targets.append(Target(peer.value))
    legs = []
    with terminate_as_interrupt():
        for round_no in range(1, args.rounds + 1):
            # A B, then B A: alternating the order cancels a linear drift in machine load.
            for target in targets if round_no % 2 else targets[::-1]:
                print(f"round {round_no}/{args.rounds}: {target.value}", file=sys.stderr)
                legs.append(run_leg(config, target, round_no))
    return _finish(args, config, legs, "compare")


def cmd_report(args: argparse.Namespace) -> int:
    written = report.write_report(args.results, args.out, args.rank_cost)
    print(report.markdown(report.load(args.results)))
    print("report: " + ", ".join(str(p) for p in written))
    return 0


def cmd_cachesim(args: argparse.Namespace) -> int:
    if args.trace in ("zipf", "scan-mix"):
        trace = cachesim.synthetic_trace(args.trace, objects=args.objects, length=args.length,
                                         alpha=args.alpha, seed=args.seed)
    else:
        trace = cachesim.read_csv_trace(Path(args.trace))
    capacity = cachesim.capacity_bytes(trace, args.size)
    print(cachesim.format_table(trace, capacity, cachesim.run_all(trace, capacity)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("interrupted: every server this run started has been stopped", file=sys.stderr)
        return 130
    except (RuntimeError, ValueError, OSError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
