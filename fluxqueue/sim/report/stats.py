"""Statistics of a recorded run, as one JSON-ready dict (the schema of report.json)."""

from __future__ import annotations

import math
from typing import Any

from fluxqueue.sim.report.recorder import Recorder

SIZE_BUCKETS = ((1, 1, "1"), (2, 4, "2-4"), (5, 8, "5-8"), (9, 16, "9-16"), (17, math.inf, "17+"))


def size_bucket(size: int) -> str:
    for lo, hi, label in SIZE_BUCKETS:
        if lo <= size <= hi:
            return label
    return "17+"


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None for no values."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def distribution(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0, "mean": None, "p50": None, "p95": None, "max": None}
    return {
        "count": len(values),
        "mean": sum(values) / len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "max": max(values),
    }


def histogram_quantiles(
    buckets: list[tuple[float, float]], qs: tuple[float, ...] = (50, 99)
) -> dict[str, Any]:
    """Quantiles from cumulative Prometheus buckets ``[(le, count), ...]`` by linear interpolation inside the
    bucket (what PromQL's histogram_quantile does)."""
    buckets = sorted(buckets)
    total = buckets[-1][1] if buckets else 0
    out: dict[str, Any] = {"count": int(total)}
    for q in qs:
        if total <= 0:
            out[f"p{q:g}"] = None
            continue
        rank = q / 100.0 * total
        prev_le, prev_count = 0.0, 0.0
        value = None
        for le, count in buckets:
            if count >= rank:
                if math.isinf(le):
                    value = prev_le
                else:
                    span = count - prev_count
                    frac = (rank - prev_count) / span if span > 0 else 1.0
                    value = prev_le + (le - prev_le) * frac
                break
            prev_le, prev_count = le, count
        out[f"p{q:g}"] = value
    return out


def summarize(rec: Recorder, run: dict[str, Any] | None = None, extra: dict[str, Any] | None = None) -> dict:
    scale = rec.time_scale
    t0 = rec.t0 or 0.0
    t_end = rec.t_end if rec.t_end is not None else (rec._last_change or t0)
    units = list(rec.units.values())
    finished = [u for u in units if u.finished is not None]
    lost = [u for u in units if u.finished is None]
    first_submit = min((u.submitted for u in units), default=t0)
    last_finish = max((u.finished for u in finished if u.finished is not None), default=t_end)
    makespan = (last_finish - first_submit) * scale if units else 0.0

    waits_by: dict[str, list[float]] = {}
    all_waits: list[float] = []
    for u in units:
        if u.first_bound is None:
            continue
        w = max(0.0, (u.first_bound - u.submitted) * scale)
        all_waits.append(w)
        waits_by.setdefault(size_bucket(u.size), []).append(w)

    pods = list(rec.pods.values())
    binds = sorted(p.bound for p in pods if p.bound is not None)
    bind_span = binds[-1] - binds[0] if len(binds) > 1 else 0.0
    # Creation-to-bind latency per pod (wall seconds): the scheduler's own speed, independent of the queue.
    startup = [p.bound - p.created for p in pods if p.bound is not None]

    span_wall = max(1e-9, (last_finish - first_submit)) if units else 1e-9
    cpu_mean = rec._cpu_integral / (rec.total_cpu * span_wall) if rec.total_cpu else 0.0
    gpu_mean = rec._gpu_integral / (rec.total_gpu * span_wall) if rec.total_gpu else None

    partial = []
    for u in units:
        if u.size <= 1:
            continue
        if 0 < len(u.binds) < u.size:
            partial.append(
                {
                    "unit": u.key,
                    "bound": len(u.binds),
                    "size": u.size,
                    "reason": "only part of the gang was bound",
                }
            )
        elif len(u.binds) == u.size and (u.binds[-1] - u.binds[0]) > rec.gang_skew:
            partial.append(
                {
                    "unit": u.key,
                    "bound": len(u.binds),
                    "size": u.size,
                    "reason": f"members bound {u.binds[-1] - u.binds[0]:.1f} s apart (limit {rec.gang_skew:g} s)",
                }
            )
    violations = {
        "overcommit": rec.overcommits,
        "kubelet_rejections": rec.rejections,
        "partial_gang": partial,
        "unqueued": rec.unqueued,
        "lost": [
            {
                "unit": u.key,
                "size": u.size,
                "bound": len(u.binds),
                "state": "bound" if u.binds else "queued",
                "fluxjob": rec.fluxjob_phases.get(u.key),
            }
            for u in lost
        ],
    }
    series = {
        "t": [rec.sim_time(s.t) for s in rec.samples],
        "utilisation": [s.cpu_used / rec.total_cpu if rec.total_cpu else 0.0 for s in rec.samples],
        "gpu_utilisation": [s.gpu_used / rec.total_gpu if rec.total_gpu else 0.0 for s in rec.samples],
        "queue_length": [s.queued for s in rec.samples],
        "running": [s.running for s in rec.samples],
        "busy_nodes": [s.busy_nodes for s in rec.samples],
    }
    queue = series["queue_length"]
    report: dict[str, Any] = {
        "run": dict(run or {}),
        "units": {
            "submitted": len(units),
            "finished": len(finished),
            "failed": sum(1 for u in finished if u.failed),
            "lost": len(lost),
        },
        "pods": {
            "seen": len(pods),
            "bound": len(binds),
            "finished": sum(1 for p in pods if p.finished is not None),
        },
        "makespan_s": makespan,
        "wall_s": (t_end - t0),
        "utilisation": {"cpu_mean": cpu_mean, "gpu_mean": gpu_mean},
        "queue_length": {
            "mean": sum(queue) / len(queue) if queue else 0.0,
            "max": max(queue) if queue else 0,
        },
        "wait_s": {
            "all": distribution(all_waits),
            "by_size": {label: distribution(waits_by.get(label, [])) for _, _, label in SIZE_BUCKETS},
        },
        "throughput": {
            "pods_bound_per_s": (len(binds) - 1) / bind_span if bind_span > 0 else None,
            "units_per_min_sim": len(finished) / (makespan / 60.0) if makespan > 0 else None,
        },
        "pod_bind_latency_s": distribution(startup),
        "violations": violations,
        "violation_count": sum(len(v) for v in violations.values()),
        "series": series,
        "waits": waits_by,
    }
    for k, v in (extra or {}).items():
        report[k] = v
    return report
