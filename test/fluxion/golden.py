"""Replay of traces recorded from real flux-sched 0.54 (test/fluxion/golden/traces, see its README).

A trace is the exact Init (JGF text and options), then match/cancel calls with flux-sched's answers. A replay
compares, for every match: success; for a success, jobid, reserved, at and the allocated vertex set of R
(``{(paths.containment, size)}`` over R's vertices, size 1 when absent). Cancels of unknown ids are silent
(noent_ok), and a failed match consumes a jobid, as in flux-sched.

    python -m test.fluxion.golden [CASE ...]     # print the first difference of each trace
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

TRACES = Path(__file__).parent / "golden" / "traces"


@dataclass
class Answer:
    ok: bool
    jobid: int | None = None
    reserved: bool = False
    at: int | None = None
    r: str | None = None


def trace_files() -> list[Path]:
    return sorted(TRACES.glob("*.json"))


def load_trace(path: Path) -> dict:
    return json.loads(path.read_text())


def alloc_set(r: str) -> frozenset[tuple[str, int]]:
    nodes = json.loads(r)["graph"]["nodes"]
    return frozenset((v["metadata"]["paths"]["containment"], v["metadata"].get("size", 1)) for v in nodes)


def describe_difference(trace: dict, i: int, op: dict, got: Answer) -> str | None:
    """None when ``got`` is the answer flux-sched gave to op ``i``, else a message saying what differs."""
    e = op["expect"]
    where = f"{trace['case']} ({trace['policy']}) op {i} [{op.get('family', '?')}]"
    if got.ok != e["ok"]:
        said = "matched" if got.ok else "found no match"
        return f"{where}: we {said}, flux-sched {'matched' if e['ok'] else 'found no match'}; jobspec {op['jobspec']}"
    if not e["ok"]:
        return None
    for k, mine in (("jobid", got.jobid), ("reserved", got.reserved), ("at", got.at)):
        if mine != e[k]:
            return f"{where}: {k} {mine} != flux-sched's {e[k]}; jobspec {op['jobspec']}"
    want, have = alloc_set(e["R"]), alloc_set(got.r or '{"graph": {"nodes": []}}')
    if want != have:
        missing = sorted(want - have)
        extra = sorted(have - want)
        return (
            f"{where}: allocation differs; flux-sched also holds {missing[:12]}"
            f"{' ...' if len(missing) > 12 else ''}, we also hold {extra[:12]}{' ...' if len(extra) > 12 else ''}"
            f"; jobspec {op['jobspec']}"
        )
    return None


def replay(
    trace: dict,
    init: Callable[[str, str], None],
    match: Callable[[str, bool], Answer],
    cancel: Callable[[int], None],
) -> tuple[int, str | None]:
    """Run the trace's ops; returns (ops run, the first difference or None)."""
    init(trace["graph"]["jgf"], json.dumps(trace["options"]))
    for i, op in enumerate(trace["ops"]):
        if op["op"] == "cancel":
            cancel(op["jobid"])
            continue
        got = match(op["jobspec"], op["orelse_reserve"])
        diff = describe_difference(trace, i, op, got)
        if diff is not None:
            return i, diff
    return len(trace["ops"]), None


def replay_in_process(trace: dict) -> tuple[int, str | None]:
    from fluxqueue.fluxion.matcher import ALLOCATE, ALLOCATE_ORELSE_RESERVE, Matcher

    m = Matcher()

    def match(js: str, reserve: bool) -> Answer:
        out = m.match(js, ALLOCATE_ORELSE_RESERVE if reserve else ALLOCATE)
        if not out.ok:
            return Answer(False)
        return Answer(True, out.jobid, out.at > 0, out.at, out.r)

    return replay(trace, m.init, match, m.cancel)


def main(argv: list[str]) -> int:
    files = [p for p in trace_files() if not argv or p.stem in argv]
    bad = ops = 0
    for p in files:
        t = load_trace(p)
        n, diff = replay_in_process(t)
        ops += n
        if diff:
            bad += 1
            print(diff[:600])
        else:
            print(f"{t['case']}: identical ({n} ops)")
    print(
        f"{len(files) - bad}/{len(files)} traces identical; {ops} ops replayed before the first differences"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
