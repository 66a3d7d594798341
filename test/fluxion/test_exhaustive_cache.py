"""The exhaustive walk's reuse of slot edge groups (Pool.slot_cache, see dfu.Select._one_pool_slots, and
Vertex.slot_cache, see dfu.Select.dom_slot) and the int introsort (dfu.cxx_sort), against a walk that builds every edge group afresh and sorts with the plain
replay of std::sort.

Two matchers on the same random graph get the same random operations (matches of every kind, cancels, node
status changes); after each, both must answer alike (status, job id, start, R, nodes) and leave the same
errno, as in test_fast_path.py.
"""

from __future__ import annotations

import random
from contextlib import contextmanager

import pytest

from fluxqueue.fluxion.jgf import GraphBuilder
from fluxqueue.fluxion.matcher import Matcher, dfu, parse_jobspec
from fluxqueue.fluxion.matcher.core import ALLOCATE, ALLOCATE_ORELSE_RESERVE, SATISFIABILITY

from .test_cxx_sort import reference_sort
from .test_fast_path import answer, random_graph, random_jobspec

POLICIES = [
    "high",
    "low",
    "hinode",
    "lonode",
    "hinodex",
    "lonodex",
    "locality",
    "variation",
    "policy=low node_centric=true",
    "first",
]


@contextmanager
def fresh_walk():
    """Every slot edge group built anew, every sort the reference one."""
    make = dfu.Select._one_pool_slots
    slots = dfu.Select.dom_slot
    sort = dfu.cxx_sort

    def uncached(self, u, e, nslots):
        for p in u.pools:
            p.slot_cache = None
        return make(self, u, e, nslots)

    def walked(self, u, shape, nslots, pristine, scoring):
        u.slot_cache = None
        return slots(self, u, shape, nslots, pristine, scoring)

    dfu.Select._one_pool_slots = uncached
    dfu.Select.dom_slot = walked
    dfu.cxx_sort = reference_sort
    try:
        yield
    finally:
        dfu.Select._one_pool_slots = make
        dfu.Select.dom_slot = slots
        dfu.cxx_sort = sort


def lockstep(text: str, names: list[str], policy: str, rng: random.Random, steps: int, jobspec) -> None:
    fast, slow = Matcher(), Matcher()
    fast.init(text, policy)
    with fresh_walk():
        slow.init(text, policy)
    jobs: list[int] = []
    for step in range(steps):
        r = rng.random()
        if r < 0.6 or not jobs:
            js = jobspec(rng, names)
            op = rng.choice([ALLOCATE, ALLOCATE, ALLOCATE_ORELSE_RESERVE, SATISFIABILITY])
            got = answer(lambda: fast.match(js, op))  # noqa: B023
            with fresh_walk():
                want = answer(lambda: slow.match(js, op))  # noqa: B023
            if want and want[0] in ("allocated", "reserved"):
                jobs.append(want[1])
        elif r < 0.85:
            j = jobs.pop(rng.randrange(len(jobs)))
            got = answer(lambda: fast.cancel(j))  # noqa: B023
            with fresh_walk():
                want = answer(lambda: slow.cancel(j))  # noqa: B023
        else:
            node, status = rng.choice(names), rng.choice(["down", "drain", "up", "up"])
            got = fast.set_node_status([node], status)
            with fresh_walk():
                want = slow.set_node_status([node], status)
        assert got == want, f"{policy!r} step {step}"
        assert fast.dfu.ebusy == slow.dfu.ebusy, f"{policy!r} step {step}: errno differs"


@pytest.mark.parametrize("policy", POLICIES)
def test_reused_slot_groups_answer_as_fresh_ones(policy):
    for seed in range(12):
        rng = random.Random(seed)
        text, names = random_graph(rng)
        lockstep(text, names, policy, rng, 40, random_jobspec)


def wide_jobspec(rng: random.Random, names: list[str]) -> dict:
    """What a wide cluster sees most: a few slots of a few cores, a node exclusive, a small gang."""
    cores = rng.choice([1, 1, 1, 2, 3, 4])
    slot = {
        "type": "slot",
        "count": rng.choice([1, 1, 2, 5]),
        "label": "s",
        "with": [{"type": "core", "count": cores}],
    }
    resources = [slot]
    if rng.random() < 0.3:
        resources = [{"type": "node", "count": rng.choice([1, 1, 3]), "exclusive": True, "with": [slot]}]
    return {
        "version": 1,
        "resources": resources,
        "attributes": {"system": {"duration": rng.choice([10, 3600])}},
        "tasks": [{"command": ["app"], "slot": "s", "count": {"per_slot": 1}}],
    }


@pytest.mark.parametrize("policy", POLICIES[:5])
def test_reused_slot_groups_on_a_wide_cluster(policy):
    """Many nodes of equal core ids: long runs of tied scores at the root, as jobs land, leave and fill."""
    g = GraphBuilder()
    for i in range(40):
        n = g.add(g.root, "node", f"n{i}", vid=i % 7)
        g.add_many(n, "core", 8)
        g.add_many(n, "memory", 2, size=4, unit="GiB")
    lockstep(g.to_json(), [f"n{i}" for i in range(40)], policy, random.Random(3), 80, wide_jobspec)


def two_leaf_jobspec(rng: random.Random, names: list[str]) -> dict:
    """Slots of cores and memory: the general slot walk (Vertex.slot_cache) under every policy."""
    js = wide_jobspec(rng, names)
    slot = js["resources"][0] if js["resources"][0]["type"] == "slot" else js["resources"][0]["with"][0]
    if rng.random() < 0.7:
        slot["with"].append({"type": "memory", "count": rng.choice([1, 4, 5])})
    return js


@pytest.mark.parametrize("policy", ["variation", "locality", "high", "lonode", "first"])
def test_reused_node_slots_on_a_wide_cluster_of_performance_classes(policy):
    """variation scores a leaf by its perf_class only, so every core of a node ties: the general slot walk,
    whose outcome Vertex.slot_cache keeps, on nodes of three classes (and none) as jobs land, leave and fill."""
    g = GraphBuilder()
    for i in range(40):
        props = {"perf_class": str(i % 3 + 1)} if i % 4 else None
        n = g.add(g.root, "node", f"n{i}", vid=i % 7, properties=props)
        g.add_many(n, "core", 8)
        g.add_many(n, "memory", 2, size=4, unit="GiB")
    names = [f"n{i}" for i in range(40)]
    for seed in range(3):
        lockstep(g.to_json(), names, policy, random.Random(seed), 80, two_leaf_jobspec)


def test_a_reused_node_slot_leaves_errno_as_its_walk_did():
    """A node whose cores are partly held sets EBUSY in the walk (by_avail on a held leaf); handing out its
    last slots again must set it too, or a later failed update would refuse where flux-sched says busy."""
    g = GraphBuilder()
    g.add_many(g.add(g.root, "node", "n0", vid=0), "core", 4)
    m = Matcher()
    m.init(g.to_json(), "variation")
    js = wide_jobspec(random.Random(0), ["n0"])
    js["resources"] = [{"type": "slot", "count": 1, "label": "s", "with": [{"type": "core", "count": 1}]}]
    assert m.match(js).status == "allocated"
    node = m.graph.nodes["n0"]
    shape = parse_jobspec(js).resources[0].with_
    for walk in ("made", "reused"):
        m.dfu.ebusy = False
        made = dfu.Scoring()
        dfu.Select(m.dfu, dfu.Window(0, 10, True), None).dom_slot(node, shape, 1, False, made)
        assert m.dfu.ebusy, walk
        assert len(made.types["slot"].groups) == 3, walk
        assert node.slot_cache is not None
