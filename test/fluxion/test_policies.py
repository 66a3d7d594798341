"""Match policies as flux-sched names and parses them, and the sort that orders equal scores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fluxqueue.fluxion.allocation import nodes_from_allocation
from fluxqueue.fluxion.jgf import GraphBuilder, synthetic_cluster
from fluxqueue.fluxion.matcher import Matcher, PolicyError
from fluxqueue.fluxion.matcher.dfu import Egroup, cxx_sort
from fluxqueue.fluxion.matcher.policy import NAMED, parse_policy

from .golden import load_trace, replay_in_process, trace_files
from .helpers import jobspec


def _cores(out) -> list[tuple[str, int]]:
    return sorted((n, a.cores) for n, a in nodes_from_allocation(out.r).items())


@pytest.mark.parametrize("name", [n for n, spec in NAMED.items() if spec])
def test_a_named_policy_is_its_custom_string(name):
    assert parse_policy(NAMED[name]) == parse_policy(name).__class__(NAMED[name], **_flags(name))


def _flags(name):
    p = parse_policy(name)
    return {k: getattr(p, k) for k in ("high", "node_centric", "node_exclusive", "stop_on_1")}


def test_a_custom_policy_string_replays_the_trace_of_the_named_policy():
    # flux-sched defines first as exactly this string: the pack trace recorded with "first" must replay
    trace = load_trace(next(p for p in trace_files() if p.stem == "pack_first_8x4"))
    trace["options"] = {
        **trace["options"],
        "matcher_policy": "policy=high node_centric=true stop_on_1_matches=true",
    }
    assert replay_in_process(trace)[1] is None
    trace = load_trace(next(p for p in trace_files() if p.stem == "pack_lonodex_8x4"))
    trace["options"]["matcher_policy"] = "node_exclusive=true policy=low node_centric=true"
    assert replay_in_process(trace)[1] is None


@pytest.mark.parametrize(
    "text",
    [
        "policy=medium",
        "policy=high node_centric=yes",
        "policy=high colour=true",
        "node_centric=true",
        "lowest",
    ],
)
def test_a_bad_policy_string_is_refused_at_init(text):
    m = Matcher()
    with pytest.raises(PolicyError):
        m.init(synthetic_cluster(2, cores=2).to_json(), text)
    with pytest.raises(PolicyError):
        m.init(synthetic_cluster(2, cores=2).to_json(), json.dumps({"matcher_policy": text}))


def test_node_exclusive_applies_without_a_node_level():
    # t30 in flux-sched: a *nodex policy gives each one-core slot-only job a whole node
    for policy in ("hinodex", "lonodex", "firstnodex", "policy=low node_exclusive=true"):
        m = Matcher()
        m.init(synthetic_cluster(2, cores=4).to_json(), policy)
        outs = [m.match(jobspec(slots=1, cores=1)) for _ in range(3)]
        assert [o.status for o in outs] == ["allocated", "allocated", "busy"], policy
        assert all(sum(a.cores for a in nodes_from_allocation(o.r).values()) == 4 for o in outs[:2])


def test_locality_and_variation_are_accepted_and_place():
    g = synthetic_cluster(4, cores=4)
    for policy in ("locality", "variation"):
        m = Matcher()
        m.init(g.to_json(), policy)
        out = m.match(jobspec(slots=2, cores=2))
        assert out.status == "allocated" and sum(c for _, c in _cores(out)) == 4


def test_variation_prefers_the_best_performance_class():
    # var_aware_t: lower perf_class scores better; absent is the worst class (9999)
    g = GraphBuilder()
    for i, pc in enumerate(["3", None, "1", "2"]):
        n = g.add(g.root, "node", f"node{i}", vid=i, properties={"perf_class": pc} if pc else None)
        g.add_many(n, "core", 2)
    m = Matcher()
    m.init(g.to_jgf(), "variation")
    assert m.match(jobspec(nodes=1, cores=2)).nodes == ["node2"]
    assert m.match(jobspec(nodes=1, cores=2)).nodes == ["node3"]
    assert m.match(jobspec(nodes=1, cores=2)).nodes == ["node0"]
    assert m.match(jobspec(nodes=1, cores=2)).nodes == ["node1"]


def test_equal_scores_come_out_in_libstdcxx_sort_order():
    # orders recorded from g++'s std::sort (introsort: not stable beyond 16 elements)
    doc = json.loads((Path(__file__).parent / "golden" / "cxx_sort.json").read_text())
    assert len(doc["cases"]) == 60
    for case in doc["cases"]:
        egs = [Egroup(s, 1, False, [(i, 1, False)]) for i, s in enumerate(case["scores"])]
        cxx_sort(egs, "greater" if case["greater"] else "less")
        assert [e.edges[0][0] for e in egs] == case["order"], case
        # choose_best_k reads only the first k: those come out the same when only they are sorted
        for k in {1, 2, len(egs) // 3 or 1, len(egs) - 1 or 1}:
            egs = [Egroup(s, 1, False, [(i, 1, False)]) for i, s in enumerate(case["scores"])]
            cxx_sort(egs, "greater" if case["greater"] else "less", k)
            assert [e.edges[0][0] for e in egs][:k] == case["order"][:k], (case, k)


async def test_init_over_grpc_takes_a_custom_policy_string_and_refuses_a_bad_one():
    from fluxqueue.fluxion.client import FluxionClient, FluxionError
    from fluxqueue.fluxion.server import FluxionServer

    srv = FluxionServer(port=0)
    await srv.start()
    client = FluxionClient(srv.address, timeout=10)
    try:
        jgf = synthetic_cluster(4, cores=2).to_json()
        await client.init(jgf, policy=json.dumps({"matcher_policy": "policy=low node_centric=true"}))
        assert (await client.stats())["policy"] == "policy=low node_centric=true"
        r = await client.match(jobspec(slots=1, cores=1))
        assert list(r.nodes) == ["node0"]  # lonode packs from the bottom
        with pytest.raises(FluxionError, match="invalid policy option"):
            await client.init(jgf, policy="policy=low colour=blue")
    finally:
        await client.close()
        await srv.stop()
