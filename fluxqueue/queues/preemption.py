"""Which running units to evict so that a waiting one becomes placeable on real nodes (pure).

Rules (issue 16; Kueue's preemption with node awareness Kueue lacks, kueue#5243):

* who may preempt: a unit within its queue's quota takes back what other queues borrowed (``reclaim``);
  inside a queue with ``withinQueue: LowerPriority``, a unit evicts lower-priority units of its own queue;
* whole units only (a gang is evicted whole);
* the victims must make the waiting unit placeable *on the nodes*: what they free is added to each node's free
  capacity and the unit's pods are packed onto eligible nodes, slot by slot as Fluxion counts them
  (:func:`fluxqueue.placement.slots.slot_shape`). Freeing 8 GPUs scattered over four nodes does not place an
  8-GPU pod, so such a set is never chosen; the controller then asks Fluxion itself before evicting;
* the fewest victims, and among equally few the most recently started (they lose the least work): each node
  holding candidates is tried as the place to free first, victims are added most recent first until the unit
  fits, then every victim it can do without is dropped (oldest first); the smallest set wins;
* never evict for nothing: no set that makes it fit means no eviction.

The packing is first fit over nodes: it can refuse a set Fluxion would accept (then nothing is evicted this
pass), and Fluxion has the last word on a set it accepts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fluxqueue.placement import constraints
from fluxqueue.placement.podsets import PodSet
from fluxqueue.placement.slots import slot_shape

Slots = tuple[int, int, int]  # cores, memory chunks, GPUs (a node's free capacity or a share of it)

MAX_SEEDS = 64  # nodes tried as the one to free first (bounds the work on a large cluster)


@dataclass(frozen=True)
class Node:
    name: str
    capacity: Slots  # what fluxqueue may use on it (after foreign pods)
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: Sequence[Mapping[str, Any]] = ()


@dataclass(frozen=True)
class Holder:
    """A unit holding an allocation: what it holds on each node, and what decides whether it goes first."""

    unit_id: int
    key: str
    started_at: float  # when it was placed (epoch seconds)
    shares: Mapping[str, Slots]  # node -> what it holds there


def free_slots(nodes: Iterable[Node], holders: Iterable[Holder]) -> dict[str, list[int]]:
    """Each node's free cores, memory chunks and GPUs once every holder's share is taken out."""
    free = {n.name: list(n.capacity) for n in nodes}
    for h in holders:
        for node, share in h.shares.items():
            if node in free:
                for i in range(3):
                    free[node][i] -= share[i]
    return free


def placeable(
    pod_sets: Sequence[PodSet],
    exclusive: bool,
    nodes: Sequence[Node],
    free: Mapping[str, Sequence[int]],
    memory_chunk: int = 2**30,
) -> bool:
    """Whether every pod of the unit finds a slot: first fit over eligible nodes, largest pods first."""
    left = {name: list(v) for name, v in free.items()}
    by_name = {n.name: n for n in nodes}
    sets = sorted(pod_sets, key=lambda s: slot_shape(s.per_pod, memory_chunk), reverse=True)
    for ps in sets:
        need = slot_shape(ps.per_pod, memory_chunk)
        count = ps.count
        for name in sorted(left):
            if count <= 0:
                break
            node = by_name[name]
            if not constraints.node_allows(ps, node.name, node.labels, node.taints):
                continue
            have = left[name]
            if exclusive:
                if tuple(have) != tuple(node.capacity) or any(have[i] < need[i] for i in range(3)):
                    continue
                left[name] = [0, 0, 0]  # the whole node is the pod's
                count -= 1
                continue
            fit = min(have[i] // need[i] for i in range(3) if need[i] > 0) if any(need) else count
            take = min(fit, count)
            if take > 0:
                for i in range(3):
                    have[i] -= need[i] * take
                count -= take
        if count > 0:
            return False
    return True


def choose_victims(
    pod_sets: Sequence[PodSet],
    exclusive: bool,
    nodes: Sequence[Node],
    holders: Sequence[Holder],
    candidates: Sequence[Holder],
    memory_chunk: int = 2**30,
    enough: Callable[[Sequence[Holder]], bool] | None = None,
) -> list[Holder] | None:
    """The fewest ``candidates`` (a subset of ``holders``) whose eviction makes the unit placeable (and, with
    ``enough``, satisfies it too: its queue's quota once they are gone); ``[]`` when it is placeable already
    and needs nobody evicted; None when no set of candidates would do."""
    free = free_slots(nodes, holders)

    def works(victims: Sequence[Holder]) -> bool:
        return (enough is None or enough(victims)) and placeable(
            pod_sets, exclusive, nodes, _freed(free, victims), memory_chunk
        )

    if works([]):
        return []
    recent_first = sorted(candidates, key=lambda h: (-h.started_at, h.unit_id))
    if not works(recent_first):
        return None  # even evicting every candidate would not do
    seeds: list[str | None] = [None]
    for h in recent_first:
        for node in h.shares:
            if node not in seeds and len(seeds) <= MAX_SEEDS:
                seeds.append(node)
    best: list[Holder] | None = None
    for seed in seeds:
        order = (
            [h for h in recent_first if seed in h.shares] + [h for h in recent_first if seed not in h.shares]
            if seed is not None
            else recent_first
        )
        chosen: list[Holder] = []
        for h in order:
            chosen.append(h)
            if works(chosen):
                break
        # Drop every victim the unit can do without, the oldest first (recent ones are cheaper to lose).
        for h in sorted(chosen, key=lambda h: (h.started_at, h.unit_id)):
            rest = [c for c in chosen if c is not h]
            if works(rest):
                chosen = rest
        if best is None or _better(chosen, best):
            best = chosen
    return best


def _freed(free: Mapping[str, Sequence[int]], victims: Iterable[Holder]) -> dict[str, list[int]]:
    out = {name: list(v) for name, v in free.items()}
    for h in victims:
        for node, share in h.shares.items():
            if node in out:
                for i in range(3):
                    out[node][i] += share[i]
    return out


def _better(a: list[Holder], b: list[Holder]) -> bool:
    """Fewer victims; among as few, the more recently started (less work lost)."""
    if len(a) != len(b):
        return len(a) < len(b)
    return sum(h.started_at for h in a) > sum(h.started_at for h in b)
