#!/usr/bin/env python3
"""Scale benchmark: end-to-end scheduling throughput of the whole system against the emulator's own ceiling.

For each node count (default 1,000 and 5,000) and each workload:
  singles  10,000 single-pod jobs (bare Pods, gated by the webhook, bound one by one)
  gangs     1,000 eight-pod gangs (pod groups: 8,000 pods placed all at once per group)
  mixed     1,000 eight-pod gangs of two pod sets (a 4-CPU launcher and seven 1-CPU workers)
all submitted at once through the Kubernetes API (admission webhook included), we measure:
  - end-to-end pods/s: pods bound / (last bind - first create), from the watch stream;
  - the emulator's raw ceiling in the same run (simcluster's measure_ceiling: create + bind + run with no
    scheduler and no webhook), and the ratio end-to-end / ceiling — the figure that matters; also the same
    with the binds made by the cheapest scheduler outside the emulator (bench/null_scheduler.py, HTTPS);
  - webhook latency p50/p99 (the controller's fluxqueue_webhook_duration_seconds histogram);
  - RSS of each component (this process = API emulator + simulated cluster; controller; Fluxion; PostgreSQL).
The controller and Fluxion run as their own processes (as deployed), started from the chart's command lines.

Targets (issue 6, 2-core machine): >= 200 pods/s and >= half the ceiling at 1,000 nodes.

    python bench/scale_bench.py                      # 1,000 and 5,000 nodes, both workloads
    python bench/scale_bench.py --nodes 1000 --workloads singles --pods 2000   # quick look
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

from fluxqueue.kube import names  # noqa: E402
from fluxqueue.sim.harness.system import SimConfig, SimSystem  # noqa: E402
from fluxqueue.sim.report.stats import histogram_quantiles, percentile  # noqa: E402


def rss_of(pid: int) -> int:
    """Resident set size in bytes from /proc (0 when the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return 0
    return 0


def children_of(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            out.append(int(d.name))
    return out


def postgres_rss(system: SimSystem) -> int:
    datadir = getattr(system.postgres, "datadir", None)
    if datadir is None:
        return 0
    try:
        pid = int((Path(datadir) / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0
    return rss_of(pid) + sum(rss_of(c) for c in children_of(pid))


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_report(system: SimSystem) -> dict[str, float]:
    """CPU seconds used so far by each component (PostgreSQL: all its processes)."""
    cpu = {"harness (API emulator + simulated cluster)": cpu_seconds(os.getpid())}
    for name, proc in system.processes.items():
        cpu[name] = cpu_seconds(proc.pid)
    datadir = getattr(system.postgres, "datadir", None)
    if datadir is not None:
        try:
            pid = int((Path(datadir) / "postmaster.pid").read_text().split()[0])
            cpu["postgresql (all backends)"] = cpu_seconds(pid) + sum(
                cpu_seconds(c) for c in children_of(pid)
            )
        except (OSError, ValueError, IndexError):
            pass
    return cpu


def memory_report(system: SimSystem) -> dict[str, int]:
    mem = {"harness (API emulator + simulated cluster)": rss_of(os.getpid())}
    for name, proc in system.processes.items():
        mem[name] = rss_of(proc.pid)
    mem["postgresql (all backends)"] = postgres_rss(system)
    return mem


def pod_manifest(name: str, labels: dict[str, str], runtime: str, cpu: str = "1") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "bench",
            "labels": labels,
            "annotations": {names.SIM_RUNTIME: runtime},
        },
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "c",
                    "image": "busybox",
                    "resources": {"requests": {"cpu": cpu, "memory": "1Gi"}},
                }
            ],
        },
    }


def workload(kind: str, pods: int) -> list[list[dict[str, Any]]]:
    """Units as lists of pod manifests. Pods run 1 h (simulated), so nothing finishes while we measure."""
    units = []
    if kind == "singles":
        for i in range(pods):
            units.append([pod_manifest(f"single-{i:05d}", {names.LABEL_DURATION: "3600"}, "1h")])
    elif kind == "mixed":
        # An MPI-style gang of two pod sets: one 4-CPU launcher, then seven 1-CPU workers (the launcher last,
        # so the group's sets are built from members in the harder order).
        for g in range(pods // 8):
            labels = {
                names.LABEL_GROUP_NAME: f"mpi-{g:04d}",
                names.LABEL_GROUP_SIZE: "8",
                names.LABEL_DURATION: "3600",
            }
            members = [pod_manifest(f"mpi-{g:04d}-worker-{j}", labels, "1h") for j in range(7)]
            members.append(pod_manifest(f"mpi-{g:04d}-launcher", labels, "1h", cpu="4"))
            units.append(members)
    else:
        for g in range(pods // 8):
            labels = {
                names.LABEL_GROUP_NAME: f"gang-{g:04d}",
                names.LABEL_GROUP_SIZE: "8",
                names.LABEL_DURATION: "3600",
            }
            units.append([pod_manifest(f"gang-{g:04d}-{j}", labels, "1h") for j in range(8)])
    return units


def time_webhook_calls(system: SimSystem, samples: list[float]) -> None:
    """Time each admission webhook call as the API server makes it (TLS round trip, queueing included)."""
    admission = system.api.engine.admission
    inner = admission._call

    async def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await inner(*args, **kwargs)
        finally:
            samples.append(time.perf_counter() - started)

    admission._call = timed


def count_api_calls(system: SimSystem) -> dict[str, int]:
    """Count every API call the emulator serves, by verb and resource (HTTP and in-process alike), so the
    report can say how many API round trips one pod costs end to end versus in the ceiling."""
    counts: dict[str, int] = {}
    engine = system.api.engine

    def wrap(verb: str) -> None:
        inner = getattr(engine, verb)

        async def counted(key: Any, *args: Any, **kwargs: Any) -> Any:
            rt = (
                key
                if isinstance(key, tuple)
                else (getattr(key, "group", ""), "", getattr(key, "plural", "?"))
            )
            sub = kwargs.get("subresource") or (
                args[2] if verb in ("create", "update") and len(args) > 2 else None
            )
            name = f"{verb} {rt[2]}" + (f"/{sub}" if isinstance(sub, str) else "")
            counts[name] = counts.get(name, 0) + 1
            return await inner(key, *args, **kwargs)

        setattr(engine, verb, counted)

    for verb in ("get", "list", "create", "update", "patch", "delete"):
        wrap(verb)
    return counts


async def scrape_metrics(port: int) -> str:
    import aiohttp

    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/metrics") as r:
        return await r.text()


def histogram_from_text(text: str, name: str) -> list[tuple[float, float]]:
    from prometheus_client.parser import text_string_to_metric_families

    buckets: dict[float, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name + "_bucket":
                le = float(s.labels["le"])
                buckets[le] = buckets.get(le, 0.0) + s.value
    return sorted(buckets.items())


async def scheduler_running(system: SimSystem, limit: float = 300.0) -> None:
    """Wait until the controller leads and has run its first pass (caches listed, Fluxion loaded): its start-up
    is reported apart (startup_s), not counted in the end-to-end rate."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if system.processes:
            text = await scrape_metrics(system.metrics_port)
            done = histogram_from_text(text, "fluxqueue_scheduling_pass_duration_seconds")
            if done and done[-1][1] >= 1:
                return
        elif system.controller is not None and system.controller.leading.is_set():
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the controller did not start scheduling within {limit:.0f} s")


async def measure_end_to_end(
    system: SimSystem, units: list[list[dict]], concurrency: int, limit: float
) -> dict:
    from fluxqueue.sim.apiserver import APIError
    from fluxqueue.sim.apiserver import resources as R

    client = system.api.client
    total = sum(len(u) for u in units)
    created: dict[str, float] = {}
    bound: dict[str, float] = {}
    errors: list[str] = []
    bypassed: list[str] = []
    listing = await client.list(R.PODS, namespace="bench")
    rv = listing["metadata"]["resourceVersion"]
    done = asyncio.Event()

    async def watch() -> None:
        # The stored objects themselves (read only): the measuring watch should not cost the emulator a deep
        # copy of every pod event (7% of its CPU), which no system under test would pay.
        async for ev in client.watch(R.PODS, namespace="bench", resource_version=rv, copy_objects=False):
            obj = ev["object"]
            name = obj["metadata"].get("name")
            if ev["type"] == "BOOKMARK" or name in bound:
                continue
            if (obj.get("spec") or {}).get("nodeName"):
                bound[name] = time.monotonic()
                if len(bound) >= total:
                    done.set()
                    return

    watcher = asyncio.create_task(watch())
    queue: asyncio.Queue = asyncio.Queue()
    for u in units:
        queue.put_nowait(u)

    async def worker() -> None:
        while True:
            try:
                unit = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            for pod in unit:
                name = pod["metadata"]["name"]
                created[name] = time.monotonic()
                try:
                    out = await client.create(R.PODS, pod, namespace="bench")
                except APIError as exc:
                    errors.append(f"{name}: {exc}")
                    continue
                # failurePolicy Ignore: a webhook that does not answer in time lets the pod through unqueued.
                if (out.get("spec") or {}).get("schedulerName") != names.SCHEDULER_NAME:
                    bypassed.append(name)

    t0 = time.monotonic()
    workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
    await asyncio.gather(*workers)
    t_created = time.monotonic()
    try:
        await asyncio.wait_for(done.wait(), limit)
    except TimeoutError:
        pass
    watcher.cancel()
    t_end = max(bound.values(), default=time.monotonic())
    lat = [bound[n] - created[n] for n in bound if n in created]
    return {
        "pods": total,
        "bound": len(bound),
        "create_errors": len(errors),
        "bypassed_webhook": len(bypassed),
        "first_errors": errors[:3],
        "create_s": t_created - t0,
        "wall_s": t_end - t0,
        "pods_per_s": len(bound) / (t_end - t0) if t_end > t0 else None,
        "create_to_bound_p50_s": percentile(lat, 50),
        "create_to_bound_p99_s": percentile(lat, 99),
    }


async def measure_ceiling_for(system: SimSystem, pods: int) -> dict:
    try:
        from emulator_ceiling import measure_ceiling
    except ImportError as exc:
        return {"error": f"bench/emulator_ceiling.py not available: {exc}"}
    out = {"pods_per_s": float(await measure_ceiling(system.api, system.cluster, pods))}
    # The same, bound by the cheapest scheduler outside the emulator (bench/null_scheduler.py, over HTTPS):
    # shows how much of the in-process ceiling any out-of-process scheduler can reach at all.
    out["null_scheduler_pods_per_s"] = float(
        await measure_ceiling(system.api, system.cluster, pods, via="process")
    )
    return out


async def one_case(nodes: int, kind: str, pods: int, args: argparse.Namespace) -> dict:
    from fluxqueue.sim.apiserver import resources as R

    config = SimConfig(
        nodes=nodes,
        cpus=32,
        memory="128Gi",
        racks=max(1, nodes // 50),
        time_scale=1.0,
        processes=not args.in_process,
        log_level=args.log_level,
        workdir=Path(args.workdir) if args.workdir else None,
        # The emulator is the API server here and the ceiling has no client-side limit either; the chart's
        # production default (300/s) would cap the controller at ~40 pods/s (about 8 requests per pod).
        controller_qps=args.qps,
        controller_burst=int(args.qps),
    )
    ceiling: dict[str, Any] = {}

    async def measure(system: SimSystem) -> None:
        # Same emulator, same nodes and kubelets, same process; no webhook and no scheduler yet.
        ceiling.update(await measure_ceiling_for(system, min(pods, args.ceiling_pods)))

    webhook_calls: list[float] = []
    started = time.monotonic()
    async with SimSystem(config, before_scheduler=measure) as system:
        time_webhook_calls(system, webhook_calls)
        await scheduler_running(system)
        startup = time.monotonic() - started - system.timings.get("before scheduler", 0.0)
        await system.api.client.create(
            R.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}}
        )
        api_calls = count_api_calls(system)
        cpu_before = cpu_report(system)
        e2e = await measure_end_to_end(system, workload(kind, pods), args.concurrency, args.limit)
        cpu_after = cpu_report(system)
        # CPU milliseconds per pod bound, by component: what bounds the rate on a 2-core machine (and
        # steadier than the rate itself when other work shares the machine).
        cpu_ms_per_pod = {
            k: (cpu_after.get(k, 0.0) - v) * 1000 / max(1, e2e["bound"]) for k, v in cpu_before.items()
        }
        webhook: dict[str, Any] = {}
        match: dict[str, Any] = {}
        if system.processes:
            text = await scrape_metrics(system.metrics_port)
            webhook = histogram_quantiles(
                histogram_from_text(text, "fluxqueue_webhook_request_duration_seconds")
            )
            match = histogram_quantiles(histogram_from_text(text, "fluxqueue_fluxion_match_duration_seconds"))
        elif system.controller is not None and getattr(system.controller, "metrics", None) is not None:
            from fluxqueue.sim.harness.run import _histogram_ms

            webhook = _histogram_ms(system.controller.metrics.webhook_duration)
            match = _histogram_ms(system.controller.metrics.match_duration)
        for q in (webhook, match):
            for k in ("p50", "p99"):
                if system.processes and q.get(k) is not None:
                    q[k] = q[k] * 1000  # seconds -> ms
        mem = memory_report(system)
    api_side = {
        "count": len(webhook_calls),
        "p50": (percentile(webhook_calls, 50) or 0) * 1000,
        "p99": (percentile(webhook_calls, 99) or 0) * 1000,
        "max": max(webhook_calls, default=0) * 1000,
    }
    ratio = None
    if e2e.get("pods_per_s") and ceiling.get("pods_per_s"):
        ratio = e2e["pods_per_s"] / ceiling["pods_per_s"]
    return {
        "nodes": nodes,
        "workload": kind,
        "startup_s": startup,
        "end_to_end": e2e,
        "ceiling": ceiling,
        "ratio": ratio,
        "webhook_ms": webhook,
        "webhook_api_side_ms": api_side,
        "api_calls": dict(sorted(api_calls.items(), key=lambda kv: -kv[1])),
        "api_calls_per_pod": sum(api_calls.values()) / max(1, pods),
        "match_ms": match,
        "rss_bytes": mem,
        "cpu_ms_per_pod": cpu_ms_per_pod,
    }


def print_case(r: dict) -> None:
    e = r["end_to_end"]
    c = r["ceiling"]
    print(f"\n== {r['nodes']} nodes, {r['workload']}: {e['pods']} pods (startup {r['startup_s']:.1f} s)")
    print(
        f"  end-to-end      {e['pods_per_s'] or 0:8.1f} pods/s  ({e['bound']}/{e['pods']} bound in {e['wall_s']:.1f} s;"
        f" all created after {e['create_s']:.1f} s)"
    )
    if c.get("pods_per_s"):
        print(f"  emulator ceiling{c['pods_per_s']:8.1f} pods/s  ratio {r['ratio']:.2f}")
        if c.get("null_scheduler_pods_per_s"):
            print(
                f"  null scheduler  {c['null_scheduler_pods_per_s']:8.1f} pods/s  (binds over HTTPS from its own"
                f" process; ratio {e['pods_per_s'] / c['null_scheduler_pods_per_s']:.2f})"
            )
    else:
        print(f"  emulator ceiling  n/a ({c.get('error')})")
    if e.get("create_to_bound_p50_s") is not None:
        print(
            f"  create->bound   p50 {e['create_to_bound_p50_s']:.2f} s  p99 {e['create_to_bound_p99_s']:.2f} s"
        )
    w = r["webhook_ms"]
    if w.get("count"):
        print(f"  webhook (server) p50 {w['p50']:.2f} ms  p99 {w['p99']:.2f} ms  ({w['count']} admissions)")
    w = r["webhook_api_side_ms"]
    if w.get("count"):
        print(
            f"  webhook (API side, TLS round trip) p50 {w['p50']:.2f} ms  p99 {w['p99']:.2f} ms  "
            f"max {w['max']:.0f} ms ({w['count']} calls)"
        )
    m = r["match_ms"]
    if m.get("count"):
        print(f"  Fluxion match   p50 {m['p50']:.2f} ms  p99 {m['p99']:.2f} ms  ({m['count']} matches)")
    top = ", ".join(f"{k} {v / e['pods']:.1f}" for k, v in list(r["api_calls"].items())[:8])
    print(f"  API calls/pod   {r['api_calls_per_pod']:.1f} ({top})")
    cpu = r.get("cpu_ms_per_pod") or {}
    if cpu:
        parts = ", ".join(f"{k.split(' ')[0]} {v:.1f}" for k, v in cpu.items())
        print(f"  CPU ms/pod      {sum(cpu.values()):.1f} ({parts})")
        if e.get("pods_per_s"):
            # Cores kept busy on average: near the machine's count, the rate is bound by CPU, not latency.
            busy = sum(cpu.values()) * e["pods_per_s"] / 1000
            print(f"  cores busy      {busy:.2f} of {os.cpu_count()} (CPU ms/pod x pods/s)")
    for k, v in r["rss_bytes"].items():
        print(f"  RSS {k:<45} {v / 2**20:8.0f} MiB")
    if e.get("bypassed_webhook"):
        print(
            f"  INVALID: {e['bypassed_webhook']} pods passed admission without the webhook (it did not answer "
            "in time; failurePolicy Ignore) and were not scheduled by fluxqueue"
        )
    if e["create_errors"]:
        print(f"  create errors: {e['create_errors']} e.g. {e['first_errors']}")


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nodes", default="1000,5000", help="comma-separated node counts")
    p.add_argument("--workloads", default="singles,gangs,mixed", help="singles,gangs,mixed")
    p.add_argument(
        "--pods", type=int, default=None, help="pods per case (default 10,000 singles / 8,000 gangs)"
    )
    p.add_argument("--ceiling-pods", type=int, default=5000, help="pods for the emulator ceiling measurement")
    p.add_argument("--concurrency", type=int, default=64, help="API creates in flight")
    p.add_argument("--limit", type=float, default=900.0, help="wall seconds to wait for all binds")
    p.add_argument("--qps", type=float, default=5000.0, help="controller API client requests/s (and burst)")
    p.add_argument("--in-process", action="store_true", help="controller and Fluxion inside this process")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--log-level", default="warning", help="the controller's and Fluxion's log level")
    p.add_argument("--workdir", default=None, help="keep component logs and data here (default: a temp dir)")
    args = p.parse_args()
    from fluxqueue.log import setup_logging

    setup_logging("warning")
    results = []
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{platform.platform()}"
    )
    for nodes in (int(n) for n in args.nodes.split(",")):
        for kind in args.workloads.split(","):
            pods = args.pods or (10_000 if kind == "singles" else 8_000)
            r = await one_case(nodes, kind, pods, args)
            print_case(r)
            results.append(r)
    if args.json:
        text = json.dumps({"machine_cpus": os.cpu_count(), "results": results}, indent=2)
        await asyncio.to_thread(Path(args.json).write_text, text)
    return 0


if __name__ == "__main__":
    from fluxqueue.runtime import run

    sys.exit(run(main()))
