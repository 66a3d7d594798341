"""Every trace recorded from real flux-sched 0.54 (golden/traces) replays identically: same success or no-match,
same jobid, reserved and at, and the same allocated vertex set (see golden.py for the comparison)."""

from __future__ import annotations

import json

import pytest

from fluxqueue.fluxion.client import FluxionClient
from fluxqueue.fluxion.server import FluxionServer

from .golden import Answer, load_trace, replay, replay_in_process, trace_files

TRACES = trace_files()


def test_the_recorded_traces_are_all_here():
    assert len(TRACES) == 81
    assert sum(len(load_trace(p)["ops"]) for p in TRACES) == 8824


@pytest.mark.parametrize("path", TRACES, ids=[p.stem for p in TRACES])
def test_trace_replays_as_flux_sched_answered(path):
    trace = load_trace(path)
    ran, diff = replay_in_process(trace)
    assert diff is None, f"first difference after {ran} ops: {diff}"


@pytest.mark.parametrize("case", ["diff_high_16x8_s1", "socket_firstnodex", "props_lonode"])
async def test_trace_replays_through_the_grpc_service(case):
    trace = load_trace(next(p for p in TRACES if p.stem == case))
    srv = FluxionServer(port=0)
    await srv.start()
    client = FluxionClient(srv.address, timeout=30)
    try:
        await client.init(trace["graph"]["jgf"], policy=json.dumps(trace["options"]))
        answers = []
        for op in trace["ops"]:
            if op["op"] == "cancel":
                await client.cancel(op["jobid"])
                continue
            r = await client.match(op["jobspec"], reserve=op["orelse_reserve"])
            answers.append(Answer(True, r.jobid, r.at > 0, r.at, r.allocation) if r.ok else Answer(False))
    finally:
        await client.close()
        await srv.stop()
    it = iter(answers)
    ran, diff = replay(trace, lambda jgf, opts: None, lambda js, reserve: next(it), lambda jobid: None)
    assert diff is None, f"first difference after {ran} ops: {diff}"


@pytest.mark.parametrize(
    "case", ["pack_high_8x4", "gpu_mem_low", "hetero_hinodex", "socket_first", "mem_pools_lonode", "rack_low"]
)
def test_the_general_slot_path_replays_as_the_packed_one(case, monkeypatch):
    # Slots of leaves are packed straight from pool bitmasks; the general path (one edge group per leaf, as
    # flux-sched keeps them) serves every other shape and must place alike.
    from fluxqueue.fluxion.matcher.dfu import Select

    monkeypatch.setattr(Select, "_dom_slot_leaves", lambda self, u, shape, nslots, dfu: False)
    trace = load_trace(next(p for p in TRACES if p.stem == case))
    ran, diff = replay_in_process(trace)
    assert diff is None, f"first difference after {ran} ops: {diff}"
