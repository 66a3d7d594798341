"""Pod sets: how a unit of different pods is asked of Fluxion and bound back (pure, no network)."""

from __future__ import annotations

from types import SimpleNamespace

from fluxqueue.placement.binding import assign_pod_sets, split_allocation
from fluxqueue.placement.jobspec import jobspec_for, slot_plan
from fluxqueue.placement.podsets import PodSet, add_member, describe_pod_sets
from fluxqueue.placement.resources import Resources
from fluxqueue.placement.units import SchedulingUnit

GI = 2**30


def unit(*sets: PodSet, exclusive: bool = False) -> SchedulingUnit:
    return SchedulingUnit(
        kind="PodGroup",
        namespace="ns",
        name="mpi",
        uid="",
        size=sum(s.count for s in sets),
        pod_sets=sets,
        duration=60,
        exclusive=exclusive,
    )


def share(cores: int, memory: int = 0, gpus: int = 0, slots: int = 0) -> SimpleNamespace:
    return SimpleNamespace(cores=cores, memory_bytes=memory, gpus=gpus, slots=slots)


def pod(name: str, node: str | None = None, phase: str = "Pending") -> dict:
    return {
        "metadata": {"name": name},
        "spec": {"nodeName": node} if node else {},
        "status": {"phase": phase},
    }


LAUNCHER = PodSet("launcher", 1, Resources(8000, GI, 0))
WORKERS = PodSet("worker", 8, Resources(1000, GI, 0))


def test_alike_sets_are_asked_one_pod_per_slot():
    plan = slot_plan(unit(PodSet("a", 2, Resources(2000, 0, 0)), PodSet("b", 3, Resources(2000, 0, 0))))
    assert [(s.slot.name, s.slot.count, s.per_slot) for s in plan] == [("a", 2, 1), ("b", 3, 1)]


def test_small_pods_share_slots_of_the_widest_shape():
    plan = slot_plan(unit(LAUNCHER, WORKERS))
    # An 8-core launcher and eight 1-core workers: two 8-core slots, not nine.
    assert [(s.slot.name, s.slot.count, s.per_slot) for s in plan] == [("launcher", 1, 1), ("worker", 1, 8)]
    assert plan[0].slot.per_pod == Resources(8000, 8 * GI, 0)  # room for the eight workers' memory
    spec = jobspec_for(
        unit(LAUNCHER, WORKERS),
        SimpleNamespace(memory_chunk_bytes=GI, node_views=list, tainted_node_views=list),
    )
    (slot,) = spec["resources"]
    assert slot["count"] == 2 and slot["with"][0] == {"type": "core", "count": 8}


def test_an_exclusive_unit_keeps_one_pod_per_node():
    plan = slot_plan(unit(LAUNCHER, WORKERS, exclusive=True))
    assert [(s.slot.count, s.per_slot) for s in plan] == [(1, 1), (8, 1)]


def test_the_allocation_splits_into_each_sets_slots_whatever_the_node_order():
    nodes = {"n2": share(8, 8 * GI), "n1": share(8, 8 * GI)}
    split = split_allocation(nodes, [s.slot for s in slot_plan(unit(LAUNCHER, WORKERS))], GI)
    assert sorted(name for counts in split.values() for name in counts) == ["launcher", "worker"]
    assert all(sum(counts.values()) == 1 for counts in split.values())
    assert split == split_allocation(
        dict(reversed(nodes.items())), [s.slot for s in slot_plan(unit(LAUNCHER, WORKERS))], GI
    )


def test_a_split_that_must_back_off_from_the_greedy_choice_is_found():
    small = PodSet("small", 2, Resources(2000, 0, 0))
    big = PodSet("big", 1, Resources(4000, 0, 0))
    # n1 holds 4 cores: greedily two smalls, but then big fits nowhere; the search puts big on n1.
    nodes = {"n1": share(4), "n2": share(4)}
    split = split_allocation(nodes, [big, small], GI)
    assert split == {"n1": {"big": 1}, "n2": {"small": 2}}


def test_each_pod_is_bound_to_a_slot_of_its_own_set_and_bound_pods_stay():
    room = {"n1": {"launcher": 1}, "n2": {"worker": 8}}
    pods = [pod("mpi-launcher"), *(pod(f"mpi-worker-{i}") for i in range(7)), pod("mpi-worker-7", node="n2")]
    plan = assign_pod_sets(
        room, pods, lambda p: "launcher" if "launcher" in p["metadata"]["name"] else "worker"
    )
    assert plan["mpi-launcher"] == "n1"
    assert {plan[f"mpi-worker-{i}"] for i in range(7)} == {"n2"} and "mpi-worker-7" not in plan


def test_members_join_the_set_of_their_shape_and_sets_read_well():
    sets: tuple[PodSet, ...] = ()
    for name, cpu in (("w", 1000), ("w", 1000), ("l", 8000)):
        sets = add_member(sets, PodSet(name, 1, Resources(cpu, 0, 0)))
    assert describe_pod_sets(sets) == "w 2 x 1 CPU, l 1 x 8 CPU"
