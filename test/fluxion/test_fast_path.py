"""The one-slot walk (dfu.Select._select_one_slot) against the general traversal it stands in for.

Two matchers on the same random graph get the same random operations; one walks every request the general
way. After every operation both must answer alike (status, job id, start, R, nodes) and leave the same
errno (``dfu.ebusy``): a difference in which vertex is visited, in what order, or what is pruned shows up
in one of them sooner or later.
"""

from __future__ import annotations

import random
from contextlib import contextmanager

import pytest

from fluxqueue.fluxion.jgf import GraphBuilder
from fluxqueue.fluxion.matcher import JobspecError, Matcher, dfu
from fluxqueue.fluxion.matcher.core import ALLOCATE, ALLOCATE_ORELSE_RESERVE, SATISFIABILITY

POLICIES = [
    "first",
    "firstnodex",
    "policy=low stop_on_1_matches=true",
    "policy=high stop_on_1_matches=true",
    "policy=low node_centric=true stop_on_1_matches=true",
    "lonode",  # not stop_on_1: both walks are the general one
]


@contextmanager
def general_walk():
    saved = dfu.one_slot_shape
    dfu.one_slot_shape = lambda s, root: False
    try:
        yield
    finally:
        dfu.one_slot_shape = saved


def random_graph(rng: random.Random) -> tuple[str, list[str]]:
    """cluster -> rack? -> node -> socket? -> cores, gpus; memory; ids and properties drawn at random."""
    g = GraphBuilder()
    racks = rng.choice([0, 0, 1, 3])
    parents = [g.add(g.root, "rack", f"rack{i}", vid=rng.choice([i, 0])) for i in range(racks)] or [g.root]
    names = []
    for i in range(rng.randint(1, 9)):
        props = rng.choice([None, None, {"fast": "1"}, {"zone": rng.choice("ab")}])
        vid = rng.choice([i, i, i, rng.randint(0, 3), -2])  # repeated ids: ties; -2: a score of 0
        n = g.add(parents[rng.randrange(len(parents))], "node", f"n{i}", vid=vid, properties=props)
        names.append(f"n{i}")
        sockets = rng.choice([0, 0, 0, 2])
        for host in [g.add(n, "socket", f"socket{k}", vid=k) for k in range(sockets)] or [n]:
            g.add_many(host, "core", rng.randint(1, 8))
            if rng.random() < 0.3:
                g.add_many(host, "gpu", rng.randint(1, 2))
        if rng.random() < 0.6:
            g.add_many(n, "memory", rng.randint(1, 3), size=rng.choice([1, 4]), unit="GiB")
    return g.to_json(), names


def random_count(rng: random.Random, hi: int):
    lo = rng.randint(1, hi)
    if rng.random() < 0.7:
        return lo
    return {"min": lo, "max": lo + rng.randint(0, 3), "operator": "+", "operand": 1}


def random_jobspec(rng: random.Random, names: list[str]) -> dict:
    leaf = rng.choice(["core", "core", "core", "gpu", "memory"])
    inner = [{"type": leaf, "count": random_count(rng, 4)}]
    if rng.random() < 0.15:  # a second leaf type: the general walk either way
        inner.append({"type": "memory" if leaf != "memory" else "core", "count": 1})
    slot = {"type": "slot", "count": random_count(rng, 3), "label": "s", "with": inner}
    if rng.random() < 0.2:
        node = {"type": "node", "count": rng.randint(1, 2), "with": [slot]}
        if rng.random() < 0.5:
            node["exclusive"] = True
        resources = [node]
    else:
        resources = [slot]
    system: dict = {"duration": rng.choice([10, 20, 35, 0])}
    c = rng.random()
    if c < 0.1:
        system["constraints"] = {"properties": [rng.choice(["fast", "zone=a", "^fast"])]}
    elif c < 0.15:
        system["constraints"] = {"hostlist": [rng.choice(names)]}
    return {
        "version": 1,
        "resources": resources,
        "attributes": {"system": system},
        "tasks": [{"command": ["app"], "slot": "s", "count": {"per_slot": 1}}],
    }


def answer(fn):
    try:
        out = fn()
    except JobspecError as exc:
        return ("refused", str(exc))
    if isinstance(out, tuple | list | dict | bool) or out is None:
        return out
    return (out.status, out.jobid, out.at, out.r, out.nodes, out.message)


def run_case(seed: int, policy: str, steps: int = 40) -> int:
    """Returns how many matches the one-slot walk served."""
    rng = random.Random(seed)
    text, names = random_graph(rng)
    fast, slow = Matcher(), Matcher()
    fast.init(text, policy)
    with general_walk():
        slow.init(text, policy)
    served = 0
    orig = dfu.Select._select_one_slot

    def counting(self, *a):
        nonlocal served
        served += 1
        return orig(self, *a)

    jobs: list[int] = []
    for step in range(steps):
        r = rng.random()
        if r < 0.6 or not jobs:
            js = random_jobspec(rng, names)
            op = rng.choice([ALLOCATE, ALLOCATE, ALLOCATE_ORELSE_RESERVE, SATISFIABILITY])
            dfu.Select._select_one_slot = counting
            try:
                got = answer(lambda: fast.match(js, op))  # noqa: B023
            finally:
                dfu.Select._select_one_slot = orig
            with general_walk():
                want = answer(lambda: slow.match(js, op))  # noqa: B023
            if want and want[0] in ("allocated", "reserved"):
                jobs.append(want[1])
        elif r < 0.85:
            j = jobs.pop(rng.randrange(len(jobs)))
            got, want = answer(lambda: fast.cancel(j)), answer(lambda: slow.cancel(j))  # noqa: B023
        else:
            node, status = rng.choice(names), rng.choice(["down", "drain", "up", "up"])
            got = fast.set_node_status([node], status)
            want = slow.set_node_status([node], status)
        assert got == want, f"seed {seed} {policy!r} step {step}"
        assert fast.dfu.ebusy == slow.dfu.ebusy, f"seed {seed} {policy!r} step {step}: errno differs"
    return served


@pytest.mark.parametrize("policy", POLICIES)
def test_the_one_slot_walk_answers_as_the_general_one(policy):
    served = sum(run_case(seed, policy) for seed in range(60))
    if "stop_on_1" in policy or policy.startswith("first"):
        assert served > 500  # the walk was taken, not bypassed
    else:
        assert served == 0


def test_the_one_slot_walk_on_a_wide_cluster():
    """Many nodes below one vertex: the by_outedges order as jobs land, leave and fill nodes."""
    g = GraphBuilder()
    for i in range(40):
        n = g.add(g.root, "node", f"n{i}", vid=i % 7)
        g.add_many(n, "core", 4)
        g.add_many(n, "memory", 2, size=4, unit="GiB")
    text = g.to_json()
    rng = random.Random(7)
    for policy in POLICIES[:3]:
        fast, slow = Matcher(), Matcher()
        fast.init(text, policy)
        slow.init(text, policy)
        live = []
        for step in range(400):
            if live and rng.random() < 0.4:
                j = live.pop(rng.randrange(len(live)))
                fast.cancel(j)
                slow.cancel(j)
                continue
            cores = rng.choice([1, 1, 1, 2, 3, 4])
            js = {
                "version": 1,
                "resources": [
                    {"type": "slot", "count": 1, "label": "s", "with": [{"type": "core", "count": cores}]}
                ],
                "attributes": {"system": {"duration": 3600}},
                "tasks": [{"command": ["app"], "slot": "s", "count": {"per_slot": 1}}],
            }
            got = answer(lambda: fast.match(js))  # noqa: B023
            with general_walk():
                want = answer(lambda: slow.match(js))  # noqa: B023
            assert got == want, f"{policy!r} step {step}"
            assert fast.dfu.ebusy == slow.dfu.ebusy
            if want[0] == "allocated":
                live.append(want[1])
