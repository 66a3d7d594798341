"""Random graphs and random match/reserve/cancel sequences against an independent model of the state."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fluxqueue.fluxion.jgf import GraphBuilder
from fluxqueue.fluxion.matcher import JobspecError, Matcher
from fluxqueue.fluxion.matcher.core import ALLOCATE, ALLOCATE_ORELSE_RESERVE

from .helpers import jobspec

MEM_CHUNK = 2


@st.composite
def graphs(draw):
    """cluster -> rack? -> node -> socket? -> cores, memory chunks (under the node); returns (jgf, nodes)."""
    racks = draw(st.integers(0, 2))
    sockets = draw(st.sampled_from([0, 0, 2]))
    g = GraphBuilder()
    parents = [g.add(g.root, "rack", f"rack{i}") for i in range(racks)] or [g.root]
    nodes = {}
    for i in range(draw(st.integers(1, 5))):
        n = g.add(parents[i % len(parents)], "node", f"n{i}", vid=i)
        cores = draw(st.integers(1, 4))
        chunks = draw(st.integers(0, 2))
        if sockets:
            for k in range(sockets):
                sock = g.add(n, "socket", f"socket{k}", vid=k)
                g.add_many(sock, "core", cores)
        else:
            g.add_many(n, "core", cores)
        if chunks:
            g.add_many(n, "memory", chunks, size=MEM_CHUNK, unit="GiB")
        nodes[f"n{i}"] = (cores, chunks)
    return g.to_jgf(), nodes


requests = st.fixed_dictionaries(
    {
        "nodes": st.one_of(st.none(), st.integers(1, 3)),
        "slots": st.integers(1, 3),
        "cores": st.integers(1, 3),
        "memory": st.sampled_from([0, 0, 1, 3]),
        "exclusive": st.sampled_from([None, True]),
        "duration": st.sampled_from([10, 20, 35]),
    }
)
ops = st.lists(
    st.one_of(
        st.tuples(st.just("match"), requests, st.booleans()),
        st.tuples(st.just("cancel"), st.integers(0, 12)),
    ),
    min_size=1,
    max_size=14,
)


class Model:
    """What each live job holds, read back from its R only."""

    def __init__(self, nodes):
        self.nodes = nodes
        self.jobs = {}  # jobid -> (start, end, {leaf uid}, {node: exclusive})

    def add(self, jobid, start, duration, r):
        leaves, held = set(), {}
        for v in json.loads(r)["graph"]["nodes"]:
            md = v["metadata"]
            if md["type"] in ("core", "memory"):
                leaves.add(v["id"])
            elif md["type"] == "node":
                held[md.get("name") or f"node{md['id']}"] = bool(md.get("exclusive"))
        self.jobs[jobid] = (start, start + duration, leaves, held)

    def check_no_overlap(self):
        items = list(self.jobs.items())
        for i, (ja, (sa, ea, la, ha)) in enumerate(items):
            for jb, (sb, eb, lb, hb) in items[i + 1 :]:
                if sa < eb and sb < ea:
                    assert not (la & lb), f"jobs {ja} and {jb} overlap in time and share {la & lb}"
                    for n in set(ha) & set(hb):
                        assert not (ha[n] or hb[n]), (
                            f"node {n} exclusive to one of {ja}, {jb} but used by both"
                        )

    def feasible_at(self, t, req, duration, leaf_uids, ignore_jobs=False, whole_nodes=False):
        """Brute force: can the request be placed in [t, t + duration) given what is held?"""
        busy_leaves, used_nodes, excl_nodes = set(), set(), set()
        for start, end, leaves, held in () if ignore_jobs else self.jobs.values():
            if start < t + duration and end > t:
                busy_leaves |= leaves
                used_nodes |= set(held)
                excl_nodes |= {n for n, x in held.items() if x}
        per_slot_chunks = -(-req["memory"] // MEM_CHUNK) if req["memory"] else 0
        slots_on = {}
        for name in leaf_uids:
            if name in excl_nodes:
                slots_on[name] = 0
                continue
            info = leaf_uids[name]
            free_m = sum(1 for u in info["memory"] if u not in busy_leaves)
            # A slot forms at a vertex with direct children of every type it holds (dfu_impl slot_match):
            # the node when cores hang off it, else each socket, and never one holding memory under sockets.
            if info["sockets"] and per_slot_chunks:
                n = 0
            else:
                n = sum(
                    sum(1 for u in host if u not in busy_leaves) // req["cores"] for host in info["hosts"]
                )
                if per_slot_chunks:
                    n = min(n, free_m // per_slot_chunks)
            slots_on[name] = n
        if whole_nodes:  # a *nodex policy: every node the job touches is its own
            slots_on = {n: s for n, s in slots_on.items() if n not in used_nodes}
        if req["nodes"] is None:
            return sum(slots_on.values()) >= req["slots"]
        ok = [
            n
            for n, s in slots_on.items()
            if s >= req["slots"] and (req["exclusive"] is not True or n not in used_nodes)
        ]
        return len(ok) >= req["nodes"]


def leaf_uids_by_node(jgf):
    """{node: {"hosts": [[core uids directly under one vertex]], "memory": [uids], "sockets": bool}}."""
    by_id = {v["id"]: v["metadata"] for v in jgf["graph"]["nodes"]}
    parent = {e["target"]: e["source"] for e in jgf["graph"]["edges"]}
    out = {
        vid: {"hosts": {}, "memory": [], "sockets": False}
        for vid, md in by_id.items()
        if md["type"] == "node"
    }
    for vid, md in by_id.items():
        if md["type"] not in ("core", "memory"):
            continue
        host = parent[vid]
        node = host if by_id[host]["type"] == "node" else parent[host]
        if md["type"] == "memory":
            out[node]["memory"].append(vid)
        else:
            out[node]["hosts"].setdefault(host, []).append(vid)
            out[node]["sockets"] |= host != node
    return {by_id[n]["name"]: {**e, "hosts": list(e["hosts"].values())} for n, e in out.items()}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs(), ops, st.sampled_from(["first", "low", "hinodex", "locality"]))
def test_random_sequences_never_over_allocate_and_free_what_they_took(graph, operations, policy):
    jgf, nodes = graph
    m = Matcher()
    m.init(jgf, policy)
    model = Model(nodes)
    uids = leaf_uids_by_node(jgf)
    issued = []
    for op in operations:
        if op[0] == "cancel":
            if issued:
                jobid = issued[op[1] % len(issued)]
                assert m.cancel(jobid) is (jobid in model.jobs)
                model.jobs.pop(jobid, None)
            continue
        _, req, reserve = op
        spec = jobspec(
            nodes=req["nodes"], slots=req["slots"], cores=req["cores"], memory=req["memory"],
            exclusive=req["exclusive"], duration=req["duration"],
        )  # fmt: skip
        whole = policy == "hinodex"
        if whole and req["nodes"]:
            req = {**req, "exclusive": True}
        d = req["duration"]
        expected_now = model.feasible_at(0, req, d, uids, whole_nodes=whole)
        ever = model.feasible_at(0, req, d, uids, ignore_jobs=True, whole_nodes=whole)
        candidates = sorted({end for _s, end, _l, _h in model.jobs.values()})
        earliest = next(
            (t for t in candidates if model.feasible_at(t, req, d, uids, whole_nodes=whole)), None
        )
        if req["memory"] and not any(chunks for _cores, chunks in nodes.values()):
            # memory is not a type flux-sched knows before a graph has it: refused, no job id used
            with pytest.raises(JobspecError):
                m.match(spec, ALLOCATE_ORELSE_RESERVE if reserve else ALLOCATE)
            continue
        if req["nodes"] and any(info["sockets"] for info in uids.values()):
            # node -> slot -> core where cores hang under sockets: flux-sched's slot sits at node level, so
            # what it chooses is not reachable from the node (a refusal, or a no-match, or only the nodes
            # whose cores hang off them). Only the bookkeeping is checked.
            try:
                out = m.match(spec, ALLOCATE_ORELSE_RESERVE if reserve else ALLOCATE)
            except JobspecError:
                continue
            issued.append(out.jobid)
            if out.ok:
                model.add(out.jobid, out.at, req["duration"], out.r)
                model.check_no_overlap()
            continue
        out = m.match(spec, ALLOCATE_ORELSE_RESERVE if reserve else ALLOCATE)
        issued.append(out.jobid)
        if out.status in ("allocated", "reserved"):
            model.add(out.jobid, out.at, req["duration"], out.r)
            model.check_no_overlap()
            leaves = model.jobs[out.jobid][2]
            held = model.jobs[out.jobid][3]
            if whole or (req["exclusive"] is True and req["nodes"]):
                # a node held exclusively is taken with everything below it (R lists it all)
                assert all(held.values())
                expect = sum(nodes[n][0] * max(1, len(uids[n]["hosts"])) + nodes[n][1] for n in held)
                assert len(leaves) == expect
            else:
                per_slot = req["cores"] + (-(-req["memory"] // MEM_CHUNK) if req["memory"] else 0)
                assert len(leaves) == per_slot * req["slots"] * (req["nodes"] or 1)
        # allocate succeeds now iff a placement exists now (brute force)
        assert (out.status == "allocated") == expected_now, (out.status, req, out.message)
        if reserve and not expected_now:
            # the earliest start at which a brute force finds room (ends of what is held are the candidates)
            assert out.status == ("reserved" if earliest is not None else "busy" if ever else "unsatisfiable")
            if earliest is not None:
                assert out.at == earliest
        if out.status in ("busy", "unsatisfiable"):
            assert out.status == ("busy" if ever else "unsatisfiable")
        if out.status in ("busy", "unsatisfiable"):
            assert out.r == ""
        for v in m.graph.vertices():  # the "children with something free" masks agree with the counts
            for t in v.cap:
                expect = sum(1 << c.index for c in v.children if c.free.get(t, 0) > 0)
                assert v.nonzero.get(t, 0) == expect
    # everything cancelled: the matcher is back to pristine
    for jobid in list(m.jobs):
        assert m.cancel(jobid)
    g = m.graph
    for v in g.vertices():
        assert not v.spans and v.n_now == 0 and not v.x_now and v.n_res == 0 and v.n_excl == 0
        assert v.free == v.cap
        for p in v.pools:
            assert p.now_mask == 0 and not p.spans and p.n_res == 0
