#!/usr/bin/env python3
"""Multi-tenant benchmark: tenant queues under a demand well above capacity, node-aware admission (fluxqueue's
default) side by side with quota-only admission of the same engine (``--queue-admission quota``: a unit holds
its queue's quota as soon as the arithmetic allows, placeable or not, as Kueue admits).

Ten queues (team-0 .. team-9) share a simulated cluster; together their quotas guarantee 60% of its CPUs and
memory, the rest is borrowed, divided by weight (1 or 2). Each queue's workload comes from the sim generator
(its own seed; mixed pods, Jobs, pod groups, exclusive units, lognormal durations), sized in proportion to the
queue's entitlement (quota + weighted part of the rest) and submitted at a rate making the total demand
``--demand`` times the capacity. Reported per mode:

  - utilisation: CPU allocated over capacity, while work is being submitted (everyone backlogged) and overall;
  - each queue's share of the CPU-time during submission against its entitlement, the max deviation;
  - wait (submit -> first pod bound, simulated seconds) p50/p95 per queue;
  - preemptions (rows of fluxqueue.preemptions), how many victims were suspended and requeued (Jobs, JobSets,
    MPIJobs; migration 0010) rather than deleted, the most times one unit was a victim, and how long a requeued
    unit waited to be placed again (or whether it never was);
  - units admitted by their queue that Fluxion could not place (fluxqueue_queue_admitted_unplaced_total;
    node-aware admission never charges a unit before Fluxion placed it, so it must be 0);
  - scheduler-side CPU per pod bound (controller + Fluxion + PostgreSQL), as bench/scale_bench.py reports it.

    python bench/queues_bench.py             # 16 x 32-CPU nodes, 400 units, both modes, ~2.5 min
    python bench/queues_bench.py --full      # 32 x 32-CPU nodes, 2,000 units, both modes, ~7 min
    python bench/queues_bench.py --jobs 200 --nodes 8 --modes nodes     # quick look
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from scale_bench import cpu_report, scrape_metrics  # noqa: E402

from fluxqueue.sim.harness.run import Run, RunOptions  # noqa: E402
from fluxqueue.sim.harness.system import SimConfig, SimSystem  # noqa: E402
from fluxqueue.sim.report.stats import percentile  # noqa: E402
from fluxqueue.sim.workload import SETUP_KIND, GeneratorSpec, WorkloadItem, generate  # noqa: E402

GUARANTEED = 0.6  # of the cluster, all queues' quotas together
SCHEDULER = ("controller", "fluxion", "postgresql (all backends)")


def queue_plan(queues: int) -> list[dict[str, Any]]:
    """Per queue: quota fraction, weight and entitlement (quota + its weighted part of what is not
    guaranteed). Quotas are unequal (1, 2, 3 parts in turn), weights 1 or 2."""
    parts = [1 + (q % 3) for q in range(queues)]
    weights = [1 + (q % 2) for q in range(queues)]
    out = []
    for q in range(queues):
        quota = GUARANTEED * parts[q] / sum(parts)
        borrow = (1 - GUARANTEED) * weights[q] / sum(weights)
        out.append({"name": f"team-{q}", "quota": quota, "weight": weights[q], "entitled": quota + borrow})
    return out


def build_workload(args: argparse.Namespace) -> tuple[list[WorkloadItem], list[dict[str, Any]], float, float]:
    plan = queue_plan(args.queues)
    memory = 128 * 2**30
    capacity = args.nodes * args.cpus
    setup: list[WorkloadItem] = []
    units: list[WorkloadItem] = []
    for q, p in enumerate(plan):
        ns = p["name"]
        quota_cpu = max(1, round(p["quota"] * capacity))
        quota_mem = max(1, round(p["quota"] * args.nodes * memory / 2**30))
        manifests = [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
            {
                "apiVersion": "fluxqueue.io/v1alpha1",
                "kind": "Queue",
                "metadata": {"name": ns},
                "spec": {
                    "namespaces": [ns],
                    "quota": {"cpu": str(quota_cpu), "memory": f"{quota_mem}Gi"},
                    "weight": p["weight"],
                },
            },
        ]
        setup.append(WorkloadItem(SETUP_KIND, ns, ns, 0.0, manifests, pods=0))
        jobs = max(2, round(args.jobs * p["entitled"]))
        spec = GeneratorSpec(
            jobs=jobs,
            seed=args.seed + q,
            nodes=args.nodes,
            cpus=args.cpus,
            memory_bytes=memory,
            namespace=ns,
            mean_interarrival=1.0 / p["entitled"],  # every queue's arrivals span the same window
            median_duration=args.median_duration,
        )
        generated = generate(spec)
        p["asked"] = sum(u.pods * u.meta.get("cores", 1) * u.meta.get("runtime", 0.0) for u in generated)
        units.extend(generated)
    # Stretch submit times so that demand (CPU-seconds asked) is args.demand x capacity over the window.
    asked = sum(u.pods * u.meta.get("cores", 1) * u.meta.get("runtime", 0.0) for u in units)
    window = max(u.submit_at for u in units) or 1.0
    stretch = asked / (args.demand * capacity * window)
    for p in plan:
        p["asked"] /= asked  # the queue's part of all CPU-seconds asked
    for u in units:
        u.submit_at = round(u.submit_at * stretch, 3)
    units.sort(key=lambda u: u.submit_at)
    return setup + units, plan, window * stretch, asked


def queue_of(unit_key: str) -> str:
    return unit_key.split("/")[1]


def analyse(run: Run, plan: list[dict[str, Any]], window_sim: float, scale: float) -> dict[str, Any]:
    rec = run.recorder
    t0, t_end = rec.t0, rec.t_end
    window_end = t0 + window_sim / scale
    capacity = rec.total_cpu  # millicores
    cpu_in_window: dict[str, float] = {p["name"]: 0.0 for p in plan}
    cpu_total = 0.0
    for pod in rec.pods.values():
        if pod.bound is None:
            continue
        end = pod.finished if pod.finished is not None else t_end
        cpu_total += pod.request.cpu_milli * (end - pod.bound)
        lo, hi = pod.bound, min(end, window_end)
        if hi > lo:
            q = queue_of(pod.unit)
            cpu_in_window[q] = cpu_in_window.get(q, 0.0) + pod.request.cpu_milli * (hi - lo)
    used_window = sum(cpu_in_window.values())
    queues = []
    for p in plan:
        waits = [
            (u.first_bound - u.submitted) * scale
            for k, u in rec.units.items()
            if queue_of(k) == p["name"] and u.first_bound is not None
        ]
        share = cpu_in_window[p["name"]] / used_window if used_window else 0.0
        queues.append(
            {
                "queue": p["name"],
                "quota": p["quota"],
                "weight": p["weight"],
                "entitled": p["entitled"],
                "asked": p["asked"],
                "share": share,
                "deviation": share - p["entitled"],
                "wait_p50": percentile(waits, 50) if waits else None,
                "wait_p95": percentile(waits, 95) if waits else None,
                "units": sum(1 for k in rec.units if queue_of(k) == p["name"]),
                "started": len(waits),
            }
        )
    done = sum(1 for u in rec.units.values() if u.finished is not None)
    return {
        "utilisation_window": used_window / (capacity * (window_end - t0)) if capacity else 0.0,
        "utilisation_overall": cpu_total / (capacity * (t_end - t0)) if capacity else 0.0,
        "max_abs_deviation": max(abs(q["deviation"]) for q in queues),
        "max_rel_deviation": max(abs(q["deviation"]) / q["entitled"] for q in queues),
        "queues": queues,
        "units": len(rec.units),
        "finished": done,
        "pods_bound": sum(1 for pod in rec.pods.values() if pod.bound is not None),
        "makespan_sim_s": (t_end - t0) * scale,
        "overcommits": len(rec.overcommits),
        "timed_out": run.timed_out,
    }


async def preemptions(dsn: str, scale: float) -> dict[str, Any]:
    """Preemptions, and what became of their victims: requeued (suspended, Queued again with their submit
    time) or ended; the most times one unit was chosen (thrash); requeued units' wait to be placed again."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        total = int(await conn.fetchval("SELECT count(*) FROM fluxqueue.preemptions"))
        per_victim = await conn.fetch(
            "SELECT victim_id, count(*) AS n FROM fluxqueue.preemptions GROUP BY victim_id ORDER BY n DESC"
        )
        requeued = await conn.fetch(
            "SELECT u.id, u.namespace, u.name, u.kind, u.state, u.requeues, a.allocated_at, a.released_at,"
            " (SELECT max(p.released_at) FROM fluxqueue.past_allocations p WHERE p.unit_id = u.id) AS freed"
            " FROM fluxqueue.units u LEFT JOIN fluxqueue.allocations a ON a.unit_id = u.id"
            " WHERE u.requeues > 0"
        )
    finally:
        await conn.close()
    # wait from giving up the allocation to the next one (sim s); a unit requeued but never placed again
    # (still Queued at the end) has none
    again = [
        (r["allocated_at"] - r["freed"]).total_seconds() * scale
        for r in requeued
        if r["allocated_at"] is not None and r["freed"] is not None and r["allocated_at"] > r["freed"]
    ]
    return {
        "preemptions": total,
        "victims": len(per_victim),
        "max_per_victim": int(per_victim[0]["n"]) if per_victim else 0,
        "requeues": sum(int(r["requeues"]) for r in requeued),
        "requeued_units": len(requeued),
        "requeued_never_placed_again": len(requeued) - len(again),
        "requeued_not_finished": sum(1 for r in requeued if r["state"] not in ("Succeeded", "Failed")),
        "requeue_wait_p50": percentile(again, 50) if again else None,
        "requeue_wait_max": max(again) if again else None,
        "requeued_detail": [{k: str(v) for k, v in dict(r).items()} for r in requeued],
    }


def admitted_unplaced(text: str) -> int:
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == "fluxqueue_queue_admitted_unplaced_total":
                total += s.value
    return int(total)


async def one_mode(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    items, plan, window_sim, asked = build_workload(args)
    os.environ["FLUXQUEUE_QUEUE_ADMISSION"] = mode
    # fair-share memory in the controller's (wall) seconds: a tenth of the submission window
    os.environ["FLUXQUEUE_QUEUE_HALF_LIFE"] = str(max(1.0, window_sim / args.time_scale / 10))
    config = SimConfig(
        nodes=args.nodes,
        cpus=args.cpus,
        memory="128Gi",
        racks=4,
        time_scale=args.time_scale,
        processes=True,
        pass_interval=1.0,
    )
    started = time.monotonic()
    async with SimSystem(config) as system:
        startup = time.monotonic() - started
        before = cpu_report(system)
        run = Run(system, items, RunOptions(timeout=args.timeout, progress=False))
        await run.execute()
        after = cpu_report(system)
        result = analyse(run, plan, window_sim, args.time_scale)
        result.update(await preemptions(system.dsn, args.time_scale))
        result["admitted_unplaced"] = admitted_unplaced(await scrape_metrics(system.metrics_port))
    pods = max(1, result["pods_bound"])
    cpu = {k: (after.get(k, 0.0) - v) * 1000 / pods for k, v in before.items()}
    result.update(
        mode=mode,
        startup_s=startup,
        wall_s=time.monotonic() - started,
        demand_over_capacity=asked / (args.nodes * args.cpus * window_sim),
        window_sim_s=window_sim,
        cpu_ms_per_pod=cpu,
        scheduler_cpu_ms_per_pod=sum(cpu.get(k, 0.0) for k in SCHEDULER),
        submission_errors=len(run.errors),
    )
    return result


def print_results(results: list[dict[str, Any]]) -> None:
    modes = [r["mode"] for r in results]
    print("\n| | " + " | ".join(f"{m} admission" for m in modes) + " |")
    print("|---|" + "---|" * len(modes))

    def row(label: str, fmt) -> None:
        print(f"| {label} | " + " | ".join(fmt(r) for r in results) + " |")

    row("units / pods bound", lambda r: f"{r['units']:,} / {r['pods_bound']:,}")
    row("demand / capacity", lambda r: f"{r['demand_over_capacity']:.2f}")
    row("utilisation while submitting", lambda r: f"{r['utilisation_window']:.1%}")
    row("utilisation overall (to the last end)", lambda r: f"{r['utilisation_overall']:.1%}")
    row("makespan (sim s)", lambda r: f"{r['makespan_sim_s']:,.0f}")
    row("max share deviation (points / relative)", lambda r: f"{r['max_abs_deviation'] * 100:.1f} / "
        f"{r['max_rel_deviation']:.0%}")  # fmt: skip
    row("preemptions (requeues; units requeued)", lambda r: f"{r['preemptions']} ({r['requeues']}; "
        f"{r['requeued_units']})")  # fmt: skip
    row("most preemptions of one unit", lambda r: str(r["max_per_victim"]))
    row("requeued: wait to be placed again p50/max (sim s)", lambda r: "-" if r["requeue_wait_p50"] is None
        else f"{r['requeue_wait_p50']:.0f}/{r['requeue_wait_max']:.0f}")  # fmt: skip
    row("requeued, never placed again / not finished", lambda r: f"{r['requeued_never_placed_again']} / "
        f"{r['requeued_not_finished']}")  # fmt: skip
    row("admitted but not placeable", lambda r: str(r["admitted_unplaced"]))
    row("overcommitted nodes", lambda r: str(r["overcommits"]))
    row("scheduler CPU ms/pod (ctl+fluxion+pg)", lambda r: f"{r['scheduler_cpu_ms_per_pod']:.1f} ("
        + ", ".join(f"{r['cpu_ms_per_pod'].get(k, 0):.1f}" for k in SCHEDULER) + ")")  # fmt: skip
    row("wall s (start-up)", lambda r: f"{r['wall_s']:.0f} ({r['startup_s']:.0f})")
    print("\nper queue: share of CPU-time while submitting vs entitled (quota + weighted borrow) and vs its "
          "part of the CPU-seconds asked; wait p50/p95 (sim s)")  # fmt: skip
    print(
        "\n| queue | quota | weight | entitled | asked | "
        + " | ".join(f"{m}: share, wait p50/p95" for m in modes)
        + " |"
    )
    print("|---|---|---|---|---|" + "---|" * len(modes))
    for i, q in enumerate(results[0]["queues"]):
        cells = []
        for r in results:
            x = r["queues"][i]
            p50 = "-" if x["wait_p50"] is None else f"{x['wait_p50']:.0f}"
            p95 = "-" if x["wait_p95"] is None else f"{x['wait_p95']:.0f}"
            cells.append(f"{x['share']:.1%}, {p50}/{p95}")
        print(
            f"| {q['queue']} | {q['quota']:.1%} | {q['weight']} | {q['entitled']:.1%} | {q['asked']:.1%} | "
            + " | ".join(cells)
            + " |"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--full", action="store_true", help="the full size: 32 nodes, 2,000 units, median 240 s (~7 min)"
    )
    p.add_argument("--nodes", type=int, help="16 (32 with --full)")
    p.add_argument("--cpus", type=int, default=32)
    p.add_argument("--queues", type=int, default=10)
    p.add_argument("--jobs", type=int, help="units in all, split by entitlement: 400 (2,000 with --full)")
    p.add_argument("--demand", type=float, default=2.5, help="CPU-seconds asked over capacity x window")
    p.add_argument("--median-duration", type=float, help="simulated seconds (240)")
    p.add_argument("--time-scale", type=float, default=60.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--timeout", type=float, default=600.0, help="wall seconds to drain after submission")
    p.add_argument("--modes", nargs="+", default=["nodes", "quota"], choices=["nodes", "quota"])
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    args = p.parse_args(argv)
    # The default is a smaller run of the same shape (~2.5 min on 2 cores): half the nodes and a fifth of
    # the units make the submission window about 0.4 x the full one's at half its pod rate.
    for name, small, full in (("nodes", 16, 32), ("jobs", 400, 2000), ("median_duration", 240.0, 240.0)):
        if getattr(args, name) is None:
            setattr(args, name, full if args.full else small)
    return args


async def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"{args.nodes} nodes x {args.cpus} CPUs, {args.queues} queues, {args.jobs} units, "
        f"median {args.median_duration:g} s, time scale {args.time_scale:g}",
        flush=True,
    )
    results = []
    for mode in args.modes:
        r = await one_mode(mode, args)
        print(f"{mode}: done in {r['wall_s']:.0f} s", flush=True)
        results.append(r)
    print_results(results)
    if args.out:
        args.out.write_text(json.dumps({"machine_cpus": os.cpu_count(), "results": results}, indent=2))
    return results


if __name__ == "__main__":
    asyncio.run(main())
