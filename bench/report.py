"""Turn a results file into a markdown table and PNG plots an operator can read at a glance."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # files only, never a window: reports are made on headless machines
import matplotlib.pyplot as plt

RESULTS_DIR = Path(__file__).with_name("results")


def load(path: Path) -> dict[str, Any]:
    doc = json.loads(path.read_text())
    if doc.get("schema") != 1 or "legs" not in doc:
        raise ValueError(f"{path} is not a bench results file (schema 1 with 'legs'); make one with `python -m bench run`")
    return doc


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def _leg_bound(cfg: dict[str, Any]) -> str:
    """What ended each leg: its duration, or a request budget reached first."""
    budget = cfg.get("max_requests")
    return f"{cfg['duration_s']:g} s" if budget is None else f"{budget:,} requests (at most {cfg['duration_s']:g} s)"


def markdown(doc: dict[str, Any]) -> str:
    """The summary table (medians over rounds), the ratios, then every leg."""
    cfg, machine, git = doc["config"], doc["machine"], doc["git"]
    lines = [
        f"## {cfg['scenario']}: {cfg['summary']}",
        "",
        (
            f"{_leg_bound(cfg)} per leg, {cfg['connections']} connections, {cfg['server_workers']} server "
            f"worker(s), generator {doc['legs'][0]['generator'] if doc['legs'] else cfg['generator']}; "
            f"{machine['cpus']} CPUs ({machine['cpu_model']}), load average at start "
            f"{_fmt(machine['loadavg_at_start'][0], '.2f')}; commit {str(git['commit'])[:10]}"
            f"{' (dirty)' if git['dirty'] else ''}."
        ),
        "",
        "| target | rounds | req/s (median) | p50 ms | p99 ms | hit ratio | errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for target, s in doc["summary"]["targets"].items():
        lines.append(
            f"| {target} | {s['rounds']} | {_fmt(s['rps'], ',.0f')} | {_fmt(s['p50_ms'], '.2f')} | "
            f"{_fmt(s['p99_ms'], '.2f')} | {_fmt(s['hit_ratio'], '.1%')} | {s['errors']:,} |"
        )
    if doc["summary"]["ratios"]:
        lines += ["", "| ratio | throughput (> 1: edgeproxy serves more) | p99 latency (< 1: edgeproxy faster) |",
                  "|---|---:|---:|"]
        for name, r in doc["summary"]["ratios"].items():
            lines.append(f"| {name} | {_fmt(r['rps'], '.2f')}× | {_fmt(r['p99'], '.2f')}× |")
    lines += ["", "| leg | requests | req/s | p50 | p90 | p99 | p99.9 ms | hit ratio | errors | events |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for leg in doc["legs"]:
        lat = leg["latency_ms"]
        events = "; ".join(f"{e['what']} @ {e['t']:g}s" for e in leg["events"] if "purge" not in e["what"])
        purges = sum("purge" in e["what"] for e in leg["events"])
        if purges:
            events = "; ".join(filter(None, [events, f"{purges} purges"]))
        lines.append(
            f"| {leg['target']} #{leg['round']} | {leg['requests']:,} | {_fmt(leg['rps'], ',.0f')} | "
            + " | ".join(_fmt(lat.get(p), ".2f") for p in ("p50", "p90", "p99", "p99.9"))
            + f" | {_fmt(leg['hit_ratio'], '.1%')} | {leg['errors']:,} | {events} |"
        )
    return "\n".join(lines) + "\n"


def _leg_label(leg: dict[str, Any]) -> str:
    return f"{leg['target']} #{leg['round']}"


TARGET_COLORS = {"edgeproxy": "tab:blue", "nginx": "tab:green", "varnish": "tab:red", "external": "tab:purple"}
ROUND_STYLES = ("-", "--", ":", "-.")


def _leg_style(leg: dict[str, Any]) -> dict[str, Any]:
    """One colour per target, one line style per round: rounds of a target read as a family."""
    return {"color": TARGET_COLORS.get(leg["target"], "black"),
            "linestyle": ROUND_STYLES[(leg["round"] - 1) % len(ROUND_STYLES)]}


def _disruption_lines(ax: Any, doc: dict[str, Any]) -> None:
    """Mark a kill (origin, Redis) with a vertical line: the plots are read relative to it."""
    marked = set()
    for leg in doc["legs"]:
        for event in leg["events"]:
            if "killed" in event["what"] and event["what"] not in marked:
                ax.axvline(event["t"], color="grey", linestyle="--", linewidth=1)
                ax.annotate(event["what"], (event["t"], 0.98), xycoords=("data", "axes fraction"),
                            ha="left", va="top", fontsize=8, color="grey")
                marked.add(event["what"])


def plot_throughput(doc: dict[str, Any], out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(8, 4))
    errors_ax = None
    for leg in doc["legs"]:
        ax.plot(range(len(leg["timeline"])), [s["requests"] for s in leg["timeline"]], label=_leg_label(leg),
                **_leg_style(leg))
        errors = [s["errors"] for s in leg["timeline"]]
        if any(errors):
            # Errors are usually a few per second against thousands served: own scale, right axis.
            errors_ax = errors_ax or ax.twinx()
            errors_ax.plot(range(len(errors)), errors, marker="x", linewidth=0.8,
                           label=f"{_leg_label(leg)} errors/s", **_leg_style(leg))
    _disruption_lines(ax, doc)
    ax.set(title=f"{doc['config']['scenario']}: throughput over time", xlabel="second of run", ylabel="requests/s")
    ax.set_ylim(bottom=0)
    handles, labels = ax.get_legend_handles_labels()
    if errors_ax is not None:
        errors_ax.set_ylabel("errors/s (5xx and failures)")
        errors_ax.set_ylim(bottom=0)
        more = errors_ax.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    ax.legend(handles, labels, fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, out / "throughput.png")


def plot_latency_cdf(doc: dict[str, Any], out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(8, 4))
    for leg in doc["legs"]:
        if leg["latency_cdf_ms"]:
            xs, ys = zip(*leg["latency_cdf_ms"], strict=True)
            ax.step(xs, ys, where="post", label=_leg_label(leg), **_leg_style(leg))
    ax.set_xscale("log")
    ax.set(title=f"{doc['config']['scenario']}: latency CDF (client side)", xlabel="latency (ms, log)",
           ylabel="fraction of requests")
    ax.axhline(0.99, color="grey", linewidth=0.5)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return _save(fig, out / "latency_cdf.png")


def plot_hit_ratio(doc: dict[str, Any], out: Path) -> Path | None:
    fig, ax = plt.subplots(figsize=(8, 4))
    drawn = False
    for leg in doc["legs"]:
        ratios = [s["hits"] / (s["hits"] + s["misses"]) if s["hits"] + s["misses"] else math.nan
                  for s in leg["timeline"]]
        if not all(math.isnan(r) for r in ratios):
            ax.plot(range(len(ratios)), ratios, label=_leg_label(leg), **_leg_style(leg))
            drawn = True
    if not drawn:
        plt.close(fig)
        return None
    _disruption_lines(ax, doc)
    ax.set(title=f"{doc['config']['scenario']}: hit ratio over time (Cache-Status)", xlabel="second of run",
           ylabel="hit ratio", ylim=(0, 1.05))
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, out / "hit_ratio.png")


def latest_rank_cost(directory: Path = RESULTS_DIR) -> Path | None:
    """The newest ``rank-cost-*.json`` written by ``bench/rank_cost.py``, if any."""
    found = sorted(directory.glob("rank-cost-*.json"))
    return found[-1] if found else None


def rank_cost_series(doc: dict[str, Any]) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """``{method: {"p50_us"|"p99_us": [(candidates, µs), ...]}}`` from a rank-cost document
    (``results`` maps a candidate count to per-method percentile dicts)."""
    if doc.get("kind") != "rank-cost":
        raise ValueError("not a bench/rank_cost.py results file (kind != 'rank-cost')")
    series: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for size, methods in sorted(doc["results"].items(), key=lambda kv: int(kv[0])):
        for method, stats in methods.items():
            if isinstance(stats, dict):
                for pct in ("p50_us", "p99_us"):
                    if pct in stats:
                        series.setdefault(method, {}).setdefault(pct, []).append((int(size), float(stats[pct])))
    return series


def plot_rank_cost(rank_cost: Path | None, out: Path) -> Path | None:
    if rank_cost is None or not rank_cost.exists():
        return None
    series = rank_cost_series(json.loads(rank_cost.read_text()))
    fig, ax = plt.subplots(figsize=(8, 4))
    for method, by_pct in series.items():
        line = None
        for pct, points in by_pct.items():
            xs, ys = zip(*points, strict=True)
            style: dict[str, Any] = {"linestyle": "-" if pct == "p50_us" else "--", "marker": "o"}
            if line is not None:
                style["color"] = line.get_color()
            (line,) = ax.plot(xs, ys, label=f"{method} {pct.removesuffix('_us')}", **style)
    ax.set(title="personalization cost by candidate count", xlabel="candidates ranked per request (log)",
           ylabel="µs per request (log)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xticks(sorted({x for by_pct in series.values() for pts in by_pct.values() for x, _ in pts}))
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return _save(fig, out / "rank_cost.png")


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(results: Path, out: Path | None = None, rank_cost: Path | None = None) -> list[Path]:
    """Write ``report.md`` and the plots into ``out`` (default: a folder named after the results
    file); ``rank_cost`` defaults to the newest rank-cost file. Returns the files written."""
    doc = load(results)
    out = out or results.with_suffix("")
    out.mkdir(parents=True, exist_ok=True)
    table = out / "report.md"
    plots = [plot_throughput(doc, out), plot_latency_cdf(doc, out), plot_hit_ratio(doc, out),
             plot_rank_cost(rank_cost or latest_rank_cost(), out)]
    written = [p for p in plots if p is not None]
    images = "\n".join(f"![{p.stem}]({p.name})" for p in written)
    table.write_text(markdown(doc) + "\n" + images + "\n")
    return [table, *written]
