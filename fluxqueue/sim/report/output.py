"""Rendering a report: the terminal summary, report.json with PNG plots, and `sim compare`."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from fluxqueue.errors import ConfigError
from fluxqueue.sim.report.stats import SIZE_BUCKETS


def _fmt(value: Any, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isinf(value) or math.isnan(value):
            return str(value)
        return f"{value:,.{digits}f}{unit}"
    return f"{value:,}{unit}" if isinstance(value, int) else f"{value}{unit}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def summary_text(report: dict[str, Any]) -> str:
    run = report.get("run") or {}
    u = report["units"]
    lines = []
    title = ", ".join(
        f"{k} {run[k]}" for k in ("nodes", "strategy", "policy", "workload", "time_scale") if k in run
    )
    lines.append(f"fluxqueue sim report ({title})" if title else "fluxqueue sim report")
    rows = [
        ("jobs finished", f"{u['finished']}/{u['submitted']} ({u['failed']} failed, {u['lost']} lost)"),
        ("pods bound", f"{report['pods']['bound']}/{report['pods']['seen']}"),
        ("makespan (sim)", _fmt(report["makespan_s"], " s")),
        ("wall time", _fmt(report["wall_s"], " s")),
        ("utilisation (CPU, mean)", _pct(report["utilisation"]["cpu_mean"])),
    ]
    if report["utilisation"].get("gpu_mean") is not None:
        rows.append(("utilisation (GPU, mean)", _pct(report["utilisation"]["gpu_mean"])))
    rows += [
        (
            "queue length mean / max",
            f"{_fmt(report['queue_length']['mean'])} / {report['queue_length']['max']}",
        ),
        ("throughput (pods bound/s, wall)", _fmt(report["throughput"]["pods_bound_per_s"])),
        ("pod create->bind p50 / p95 (wall)", _latency(report.get("pod_bind_latency_s") or {})),
    ]
    match = report.get("match_latency_ms") or {}
    if match.get("p50") is not None:
        rows.append(
            (
                "Fluxion match p50 / p99",
                f"{_fmt(match.get('p50'), ' ms', 2)} / {_fmt(match.get('p99'), ' ms', 2)} "
                f"({match.get('count')} matches)",
            )
        )
    elif match.get("mean") is not None:
        rows.append(
            (
                "Fluxion match mean / max",
                f"{_fmt(match.get('mean'), ' ms', 2)} / {_fmt(match.get('max'), ' ms', 2)} "
                f"({match.get('count')} matches)",
            )
        )
    pre = report.get("preemptions") or {}
    if pre.get("count"):
        causes = ", ".join(f"{n} {cause}" for cause, n in sorted(pre["by_cause"].items()))
        rows.append(
            (
                "preemptions",
                f"{pre['count']} ({causes}): {pre['requeued']} requeued, {pre['deleted']} pods/groups deleted",
            )
        )
    width = max(len(r[0]) for r in rows)
    lines += [f"  {k:<{width}}  {v}" for k, v in rows]
    lines.append("  wait time by job size (sim s):")
    lines.append(f"    {'pods':>6} {'jobs':>6} {'mean':>9} {'p50':>9} {'p95':>9} {'max':>9}")
    for label, d in [("all", report["wait_s"]["all"])] + [
        (lbl, report["wait_s"]["by_size"].get(lbl) or {}) for _, _, lbl in SIZE_BUCKETS
    ]:
        if not d.get("count"):
            continue
        lines.append(
            f"    {label:>6} {d['count']:>6} {_fmt(d['mean']):>9} {_fmt(d['p50']):>9} "
            f"{_fmt(d['p95']):>9} {_fmt(d['max']):>9}"
        )
    dags = report.get("dags") or []
    if dags:
        lines.append("  workflows (fluxqueue.io/dependency DAGs; sim s):")
        lines.append(f"    {'units':>6} {'makespan':>9} {'critical':>9} {'stretch':>8}  critical path")
        for d in dags:
            stretch = f"{d['stretch']:.2f}" if d.get("stretch") is not None else "-"
            lines.append(
                f"    {d['units']:>6} {_fmt(d['makespan_s']):>9} {_fmt(d['critical_path_s']):>9} {stretch:>8}  "
                + " -> ".join(d["critical_path"])
            )
    v = report["violations"]
    if report["violation_count"] == 0:
        lines.append("  invariants: OK (no over-committed node, no partial gang, no lost or unqueued job)")
    else:
        lines.append(f"  INVARIANT VIOLATIONS: {report['violation_count']}")
        for kind, entries in v.items():
            for e in entries[:5]:
                lines.append(f"    {kind}: {json.dumps(e, sort_keys=True)}")
            if len(entries) > 5:
                lines.append(f"    {kind}: ... {len(entries) - 5} more")
    return "\n".join(lines)


def _latency(d: dict[str, Any]) -> str:
    if not d.get("count"):
        return "-"
    return f"{d['p50'] * 1000:.0f} ms / {d['p95'] * 1000:.0f} ms"


def write_report(report: dict[str, Any], directory: str | Path) -> list[Path]:
    """report.json plus PNG plots; returns the files written."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.json"
    path.write_text(json.dumps(report, indent=2, sort_keys=True, default=str) + "\n")
    return [path, *_plots(report, out)]


def _plots(report: dict[str, Any], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    s = report["series"]
    t = s["t"]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot(t, [100 * x for x in s["utilisation"]], label="CPU requested")
    nodes = (report.get("run") or {}).get("nodes")
    if nodes and s.get("busy_nodes"):
        ax.plot(t, [100 * b / nodes for b in s["busy_nodes"]], label="nodes in use", alpha=0.6)
    if any(s.get("gpu_utilisation") or []):
        ax.plot(t, [100 * x for x in s["gpu_utilisation"]], label="GPU")
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("allocated (%)")
    ax.set_ylim(0, 105)
    ax.set_title("Utilisation over time")
    ax.legend(loc="lower right")
    fig.tight_layout()
    written.append(out / "utilisation.png")
    fig.savefig(written[-1], dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot(t, s["queue_length"], label="queued jobs")
    ax.plot(t, s["running"], label="running jobs")
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("jobs")
    ax.set_title("Queue length over time")
    ax.legend(loc="upper right")
    fig.tight_layout()
    written.append(out / "queue_length.png")
    fig.savefig(written[-1], dpi=100)
    plt.close(fig)

    waits = report.get("waits") or {}
    labels = [lbl for _, _, lbl in SIZE_BUCKETS if waits.get(lbl)]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    if labels:
        ax.boxplot([waits[lbl] for lbl in labels], showfliers=True)
        ax.set_xticks(range(1, len(labels) + 1), labels)
    ax.set_xlabel("job size (pods)")
    ax.set_ylabel("wait (simulated s)")
    ax.set_title("Wait time by job size")
    fig.tight_layout()
    written.append(out / "wait_times.png")
    fig.savefig(written[-1], dpi=100)
    plt.close(fig)
    return written


# --- compare ---------------------------------------------------------------------------------------------

# (label, path into the report, lower is better)
COMPARE_ROWS: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("jobs finished", ("units", "finished"), False),
    ("jobs lost", ("units", "lost"), True),
    ("makespan (sim s)", ("makespan_s",), True),
    ("utilisation CPU mean", ("utilisation", "cpu_mean"), False),
    ("queue length mean", ("queue_length", "mean"), True),
    ("wait mean (sim s)", ("wait_s", "all", "mean"), True),
    ("wait p50 (sim s)", ("wait_s", "all", "p50"), True),
    ("wait p95 (sim s)", ("wait_s", "all", "p95"), True),
    ("wait max (sim s)", ("wait_s", "all", "max"), True),
    *(
        (f"wait mean, {lbl} pods", ("wait_s", "by_size", lbl, "mean"), True)
        for lbl in ("1", "2-4", "5-8", "9-16", "17+")
    ),
    ("pods bound/s (wall)", ("throughput", "pods_bound_per_s"), False),
    ("match p50 (ms)", ("match_latency_ms", "p50"), True),
    ("match p99 (ms)", ("match_latency_ms", "p99"), True),
    ("invariant violations", ("violation_count",), True),
)


def _get(report: dict[str, Any], path: tuple[str, ...]) -> Any:
    cur: Any = report
    for key in path:
        if not isinstance(cur, dict) or key not in cur:
            return None
        cur = cur[key]
    return cur


def load_report(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if p.is_dir():
        p = p / "report.json"
    try:
        return json.loads(p.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read report {p}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{p} is not a report.json: {exc}") from None


def compare_text(a: dict[str, Any], b: dict[str, Any], name_a: str = "A", name_b: str = "B") -> str:
    """Side by side with the ratio B/A; a trailing + marks where B is better, - where worse."""
    rows = [("metric", name_a, name_b, "B/A")]
    for label, path, lower_better in COMPARE_ROWS:
        va, vb = _get(a, path), _get(b, path)
        if va is None and vb is None:
            continue
        ratio = ""
        if isinstance(va, int | float) and isinstance(vb, int | float) and va != 0:
            r = vb / va
            mark = ""
            if r != 1:
                mark = " +" if (r < 1) == lower_better else " -"
            ratio = f"{r:.2f}{mark}"
        fmt = _pct if label.startswith("utilisation") else _fmt
        rows.append((label, fmt(va), fmt(vb), ratio))
    for label, key in (("strategy", "strategy"), ("policy", "policy"), ("workload", "workload")):
        ra, rb = (a.get("run") or {}).get(key), (b.get("run") or {}).get(key)
        if ra is not None or rb is not None:
            rows.insert(1, (label, str(ra), str(rb), ""))
    widths = [max(len(str(r[i])) for r in rows) for i in range(4)]
    out = []
    for i, r in enumerate(rows):
        out.append(
            f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]:>{widths[3]}}".rstrip()
        )
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)
