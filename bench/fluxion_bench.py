"""Benchmark of our Fluxion matcher (not part of pytest): Init, match latency, memory, growth with N.

Graphs: N nodes x 64 cores + 16 memory chunks of 16 GiB (+ 8 GPUs for the "g" variants), built with
GraphBuilder and loaded from the JGF string, as Init receives it. Each graph size runs in its own process so
peak RSS is that size's own. Jobspecs: 1 core; 1 whole node exclusive; 16 slots of 4 cores anywhere; a
256-node exclusive gang; allocate_orelse_reserve of 1 core and of the gang on a full cluster.
Latency: wall time around Matcher.match (includes writing R as JGF), churn = match then cancel.

    python bench/fluxion_bench.py                       # 128, 1024, 4096, 16384 (+ GPU variants)
    python bench/fluxion_bench.py --sizes 128 1024 --out /tmp/fluxion.json
    python bench/fluxion_bench.py --sizes 128 1024 --gpu-sizes --grpc-sizes --policy high
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fluxqueue.fluxion.jgf import synthetic_cluster
from fluxqueue.fluxion.matcher import Matcher, parse_jobspec
from fluxqueue.fluxion.matcher.core import ALLOCATE_ORELSE_RESERVE

CORES = 64


def spec(nodes=None, slots=1, cores=1, exclusive=None, duration=3600):
    slot = {"type": "slot", "count": slots, "label": "s", "with": [{"type": "core", "count": cores}]}
    if nodes:
        node = {"type": "node", "count": nodes, "with": [slot]}
        if exclusive:
            node["exclusive"] = True
        res = [node]
    else:
        res = [slot]
    return parse_jobspec(
        {
            "version": 1,
            "resources": res,
            "attributes": {"system": {"duration": duration}},
            "tasks": [{"command": ["app"], "slot": "s", "count": {"per_slot": 1}}],
        }
    )


JOBS = {
    "1core": spec(slots=1, cores=1),
    "1node_excl": spec(nodes=1, cores=CORES, exclusive=True),
    "16slots_4cores_any": spec(slots=16, cores=4),
    "gang256_excl": spec(nodes=256, cores=CORES, exclusive=True),
}


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def churn(m: Matcher, js, reps: int) -> dict:
    lat, canc = [], []
    for _ in range(reps):
        t = time.perf_counter()
        out = m.match(js)
        lat.append(time.perf_counter() - t)
        assert out.status == "allocated", out
        t = time.perf_counter()
        m.cancel(out.jobid)
        canc.append(time.perf_counter() - t)
    return {
        "match_p50_ms": pct(lat, 50) * 1e3,
        "match_p99_ms": pct(lat, 99) * 1e3,
        "cancel_p50_ms": pct(canc, 50) * 1e3,
        "reps": reps,
    }


def fill(m: Matcher, js, reps: int) -> dict:
    lat, ok = [], 0
    ids = []
    for _ in range(reps):
        t = time.perf_counter()
        out = m.match(js)
        lat.append(time.perf_counter() - t)
        if out.status == "allocated":
            ok += 1
            ids.append(out.jobid)
    for j in ids:
        m.cancel(j)
    return {"match_p50_ms": pct(lat, 50) * 1e3, "match_p99_ms": pct(lat, 99) * 1e3, "ok": ok, "reps": reps}


def one(n: int, gpus: int, grpc_too: bool = False, policy: str = "first") -> dict:
    t = time.perf_counter()
    text = synthetic_cluster(n, CORES, gpus, 16, 16).to_json()
    gen = time.perf_counter() - t
    gc.collect()
    base = rss_mb()
    m = Matcher()
    t = time.perf_counter()
    m.init(text, policy)
    init_s = time.perf_counter() - t
    jgf_mb = len(text) / 1e6
    rss_after = rss_mb() - base
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # The model's own size: a second load under tracemalloc (slower, so not the timed one), counting only
    # what stays allocated once the parsed JSON is gone.
    m2 = Matcher()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    m2.init(text)
    model_mb = (tracemalloc.get_traced_memory()[0] - before) / 2**20
    traced_peak_mb = (tracemalloc.get_traced_memory()[1] - before) / 2**20
    tracemalloc.stop()
    del m2, text
    gc.collect()
    st = m.stats()
    res = {
        "nodes": n,
        "cores_per_node": CORES,
        "gpus_per_node": gpus,
        "vertices": st["vertices"],
        "jgf_mb": round(jgf_mb, 1),
        "generate_s": round(gen, 2),
        "init_s": round(init_s, 3),
        "model_mb": round(model_mb, 1),
        "model_kb_per_node": round(model_mb * 1024 / n, 2),
        "init_traced_peak_mb": round(traced_peak_mb, 1),
        "rss_growth_mb": round(rss_after, 1),
        "peak_rss_mb": round(peak_mb, 1),
        "jobs": {},
    }
    small_reps = 300 if n <= 4096 else 150
    res["jobs"]["1core/churn"] = churn(m, JOBS["1core"], small_reps)
    res["jobs"]["1core/fill"] = fill(m, JOBS["1core"], small_reps)
    res["jobs"]["1node_excl/churn"] = churn(m, JOBS["1node_excl"], small_reps)
    res["jobs"]["16slots_4cores_any/churn"] = churn(m, JOBS["16slots_4cores_any"], small_reps)
    if n >= 256:
        res["jobs"]["gang256_excl/churn"] = churn(m, JOBS["gang256_excl"], 30)
    # Full cluster: every node held by a 1-node exclusive job with durations 100, 200, ...
    ids = []
    for i in range(n):
        out = m.match(spec(nodes=1, cores=CORES, exclusive=True, duration=100 * (1 + i % 50)))
        ids.append(out.jobid)
    for name, js in (
        ("reserve_1core_full", spec(slots=1, cores=1, duration=100)),
        ("reserve_gang256_full", spec(nodes=min(256, n), cores=CORES, exclusive=True, duration=100)),
    ):
        lat = []
        for _ in range(5 if n >= 4096 else 20):
            t = time.perf_counter()
            out = m.match(js, ALLOCATE_ORELSE_RESERVE)
            lat.append(time.perf_counter() - t)
            assert out.status == "reserved", out
            m.cancel(out.jobid)
        res["jobs"][name] = {
            "match_p50_ms": pct(lat, 50) * 1e3,
            "match_p99_ms": pct(lat, 99) * 1e3,
            "at": out.at,
            "reps": len(lat),
        }
    t = time.perf_counter()
    for j in ids:
        m.cancel(j)
    res["cancel_all_s"] = round(time.perf_counter() - t, 3)
    if grpc_too:
        del m
        gc.collect()
        res["grpc"] = asyncio.run(grpc_round_trips(n, gpus))
    return res


async def grpc_round_trips(n: int, gpus: int) -> dict:
    """The same service over gRPC on loopback: Init with the JGF string, then 1-core match + cancel."""
    from fluxqueue.fluxion.client import FluxionClient
    from fluxqueue.fluxion.server import FluxionServer

    text = synthetic_cluster(n, CORES, gpus, 16, 16).to_json()
    srv = FluxionServer(port=0)
    await srv.start()
    client = FluxionClient(srv.address, timeout=120)
    try:
        t = time.perf_counter()
        await client.init(text)
        init_s = time.perf_counter() - t
        del text
        one = {
            "version": 1,
            "resources": [{"type": "slot", "count": 1, "label": "s", "with": [{"type": "core", "count": 1}]}],
            "attributes": {"system": {"duration": 3600}},
            "tasks": [{"command": ["app"], "slot": "s", "count": {"per_slot": 1}}],
        }
        lat, canc = [], []
        for _ in range(200):
            t = time.perf_counter()
            r = await client.match(one)
            lat.append(time.perf_counter() - t)
            t = time.perf_counter()
            await client.cancel(r.jobid)
            canc.append(time.perf_counter() - t)
        return {
            "init_s": round(init_s, 3),
            "match_p50_ms": pct(lat, 50) * 1e3,
            "match_p99_ms": pct(lat, 99) * 1e3,
            "cancel_p50_ms": pct(canc, 50) * 1e3,
        }
    finally:
        await client.close()
        await srv.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="*", default=[128, 1024, 4096, 16384])
    ap.add_argument(
        "--gpu-sizes", type=int, nargs="*", default=[1024, 4096], help="sizes also run with 8 GPUs"
    )
    ap.add_argument(
        "--grpc-sizes", type=int, nargs="*", default=[1024, 16384], help="sizes also timed over gRPC"
    )
    ap.add_argument("--out", default="fluxion_bench_results.json")
    ap.add_argument("--policy", default="first", help="match policy (a name or a custom policy string)")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--gpus", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--grpc", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.gpus, args.grpc, args.policy)))
        return
    runs = [(n, 0) for n in args.sizes] + [(n, 8) for n in args.gpu_sizes]
    results = []
    for n, g in runs:
        print(f"... N={n} gpus={g}", file=sys.stderr, flush=True)
        cmd = [sys.executable, __file__, "--one", str(n), "--gpus", str(g), "--policy", args.policy]
        if g == 0 and n in args.grpc_sizes:
            cmd.append("--grpc")
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    doc = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}, "results": results}
    Path(args.out).write_text(json.dumps(doc, indent=1))
    print_table(results)
    print(f"\nwritten {args.out}")


def print_table(results) -> None:
    print(
        f"{'N':>6} {'gpu':>3} {'vertices':>9} {'JGF MB':>7} {'init s':>7} {'model MB':>8} {'KB/node':>8} "
        f"{'init peak MB':>12} {'peak RSS MB':>11}"
    )
    for r in results:
        print(
            f"{r['nodes']:>6} {r['gpus_per_node']:>3} {r['vertices']:>9} {r['jgf_mb']:>7} {r['init_s']:>7} "
            f"{r['model_mb']:>8} {r['model_kb_per_node']:>8} {r['init_traced_peak_mb']:>12} {r['peak_rss_mb']:>11}"
        )
    names = sorted({k for r in results for k in r["jobs"]})
    print(
        f"\n{'job':<28}"
        + "".join(f"{str(r['nodes']) + ('g' if r['gpus_per_node'] else ''):>18}" for r in results)
    )
    for name in names:
        cells = []
        for r in results:
            j = r["jobs"].get(name)
            cells.append(f"{j['match_p50_ms']:.3f}/{j['match_p99_ms']:.3f}" if j else "-")
        print(f"{name:<28}" + "".join(f"{c:>18}" for c in cells))
    print("(cells: match p50/p99 ms)")
    for r in results:
        if "grpc" in r:
            g = r["grpc"]
            print(
                f"gRPC N={r['nodes']}: Init {g['init_s']} s; 1-core match p50/p99 "
                f"{g['match_p50_ms']:.3f}/{g['match_p99_ms']:.3f} ms; cancel p50 {g['cancel_p50_ms']:.3f} ms"
            )


if __name__ == "__main__":
    main()
