"""Every match policy on flux-sched's own benchmark shapes (not part of pytest), to set beside the flux-sched 0.54
figures in ../shared/reference/flux-sched-behaviour.md ("Benchmark set-up"):

graph N x (32 cores + 4 GPUs + 16 memory chunks of 16 GB); jobspecs 1node_1core, 4nodes_excl (4 exclusive
nodes), 16cores_any (a top-level slot of count 16 with one core each), 1node_4c_1g_16m; "fill" = K matches
without cancel, then cancel all; "churn" = K x (match, cancel). Reported: the median per match of the process
CPU time (``time.process_time``), which a busy machine inflates less than wall time; on an idle machine the two
agree within a few percent.

    python bench/fluxion_policies.py                          # N=4096, every policy, K=20
    python bench/fluxion_policies.py --nodes 1024 --policies high lonode --reps 100
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fluxqueue.fluxion.jgf import synthetic_cluster
from fluxqueue.fluxion.matcher import Matcher, parse_jobspec
from fluxqueue.fluxion.matcher.policy import NAMED

CORE = {"type": "core", "count": 1}


def _jobspec(resources: list) -> object:
    return parse_jobspec(
        {
            "version": 9999,
            "resources": resources,
            "attributes": {"system": {"duration": 3600}},
            "tasks": [{"command": ["app"], "slot": "default", "count": {"per_slot": 1}}],
        }
    )


def _slot(count: int, with_: list) -> dict:
    return {"type": "slot", "count": count, "label": "default", "with": with_}


JOBS = {
    "1node_1core": _jobspec([{"type": "node", "count": 1, "with": [_slot(1, [CORE])]}]),
    "4nodes_excl": _jobspec([{"type": "node", "count": 4, "exclusive": True, "with": [_slot(1, [CORE])]}]),
    "16cores_any": _jobspec([_slot(16, [CORE])]),
    "1node_4c_1g_16m": _jobspec(
        [
            {
                "type": "node",
                "count": 1,
                "with": [
                    _slot(
                        1,
                        [
                            {"type": "core", "count": 4},
                            {"type": "gpu", "count": 1},
                            {"type": "memory", "count": 16},
                        ],
                    )
                ],
            }
        ]
    ),
}


def _median_ms(xs: list[float]) -> float:
    xs = sorted(xs)
    return round(xs[len(xs) // 2] * 1e3, 3)


def run(text: str, policy: str, reps: int) -> dict:
    clock = time.process_time
    m = Matcher()
    m.init(text, policy)  # (Init is fluxion_bench.py's to time: here each policy's load follows the last's)
    out: dict = {"policy": policy, "jobs": {}}
    for name, js in JOBS.items():
        lat, ids = [], []
        for _ in range(reps):
            t = clock()
            got = m.match(js)
            lat.append(clock() - t)
            assert got.status == "allocated", (policy, name, got)
            ids.append(got.jobid)
        for j in ids:
            m.cancel(j)
        fill = _median_ms(lat)
        lat = []
        for _ in range(reps):
            t = clock()
            got = m.match(js)
            lat.append(clock() - t)
            m.cancel(got.jobid)
        out["jobs"][name] = {"fill_ms": fill, "churn_ms": _median_ms(lat)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=4096)
    ap.add_argument("--policies", nargs="*", default=list(NAMED))
    ap.add_argument("--reps", type=int, default=20, help="K: matches per fill and per churn")
    ap.add_argument("--out", help="write the results as JSON here too")
    args = ap.parse_args()
    text = synthetic_cluster(args.nodes, 32, 4, 16, 16).to_json()
    results = []
    print(f"N={args.nodes}: process CPU ms per match, median, fill / churn (K={args.reps})")
    print("| policy | " + " | ".join(JOBS) + " |")
    print("|---" * (len(JOBS) + 1) + "|")
    for policy in args.policies:
        res = run(text, policy, args.reps)
        gc.collect()
        results.append(res)
        cells = [f"{j['fill_ms']:g} / {j['churn_ms']:g}" for j in res["jobs"].values()]
        print(f"| `{policy}` | " + " | ".join(cells) + " |", flush=True)
    if args.out:
        Path(args.out).write_text(
            json.dumps({"nodes": args.nodes, "reps": args.reps, "results": results}, indent=1)
        )


if __name__ == "__main__":
    main()
