"""The exhaustive walk's reuse of slot edge groups (Pool.slot_cache, see dfu.Select._one_pool_slots) and the
int introsort (dfu.cxx_sort), against a walk that builds every edge group afresh and sorts with the plain
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
from fluxqueue.fluxion.matcher import Matcher, dfu
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
    sort = dfu.cxx_sort

    def uncached(self, u, e, nslots):
        for p in u.pools:
            p.slot_cache = None
        return make(self, u, e, nslots)

    dfu.Select._one_pool_slots = uncached
    dfu.cxx_sort = reference_sort
    try:
        yield
    finally:
        dfu.Select._one_pool_slots = make
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
