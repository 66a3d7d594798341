"""Flux jobspec (version 1, prior-art §7.5) for a scheduling unit: one slot per pod.

Shapes:

* shared nodes (default): ``slot(count=pods) -> {core, memory, gpu}`` with no node level, so Fluxion may
  pack several pods onto one node (what both fluences do);
* exclusive (``fluxqueue.io/exclusive: "true"``): ``node(count=pods, exclusive) -> slot(1) -> {...}``: every
  pod gets a whole node of its own.

A unit of pod sets of different shapes asks slots of the widest shape (:func:`slot_plan`); which pod of which
set goes where is derived from the allocation afterwards (:mod:`.binding`).

A slot asks ``ceil(cpu / 1000m)`` cores (at least 1: a pod always runs somewhere), ``ceil(memory / chunk)``
memory chunks expressed in the graph's memory unit (see :mod:`fluxqueue.placement.graph`), and its GPUs.
``attributes.system.duration`` is the unit's walltime; ``attributes.system.constraints`` keeps pods where
Kubernetes allows them (:mod:`fluxqueue.placement.constraints`). Exactly the four top-level keys flux-sched's
jobspec parser accepts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from fluxqueue.placement import constraints
from fluxqueue.placement.podsets import PodSet
from fluxqueue.placement.resources import Resources
from fluxqueue.placement.slots import memory_unit, slot_shape
from fluxqueue.placement.units import SchedulingUnit, UnitError

SLOT_LABEL = "task"


def _slot(
    label: str, cores: int, chunks: int, chunk_size: int, chunk_unit: str, gpus: int, count: int
) -> dict:
    inside: list[dict[str, Any]] = [{"type": "core", "count": cores}]
    if chunks:
        inside.append({"type": "memory", "count": chunks * chunk_size, "unit": chunk_unit})
    if gpus:
        inside.append({"type": "gpu", "count": gpus})
    return {"type": "slot", "count": count, "label": label, "with": inside}


@dataclass(frozen=True)
class SlotSet:
    """How one pod set is asked of Fluxion: ``slots`` slots of the unit's slot shape (``slot.per_pod``,
    ``slot.count``), each holding up to ``per_slot`` of the set's pods on its node."""

    slot: PodSet
    per_slot: int


def slot_plan(unit: SchedulingUnit, memory_chunk_bytes: int = 2**30) -> tuple[SlotSet, ...]:
    """The unit's pod sets as slots of one shape.

    flux-sched's traverser takes one request per resource type among siblings (``dfu_impl.cpp``
    ``dom_dfv`` refuses siblings of the same type, and a slot cannot hold a slot), so a jobspec cannot carry
    one slot shape per pod set. When the sets' pods differ, every slot has the per-resource maximum of the
    sets' shapes (cores, memory chunks, GPUs), and the smaller pods of a set share slots, as many as fit in
    one, on that slot's node: every pod still lands where its own request fits, all at once, and little more
    is reserved than the pods ask (an 8-CPU launcher and eight 1-CPU workers ask two 8-core slots, not nine).
    Alike sets are asked as they are, one pod per slot. Exclusive units keep one pod per node.
    """
    sets = unit.pod_sets
    shapes = [slot_shape(s.per_pod, memory_chunk_bytes) for s in sets]
    if all(shape == shapes[0] for shape in shapes[1:]):
        return tuple(SlotSet(s, 1) for s in sets)
    cores = max(c for c, _, _ in shapes)
    gpus = max(g for _, _, g in shapes)
    # How many pods of each set share a slot: as many as the widest pod's cores (and GPUs) hold; the slot's
    # memory and GPUs are then the most any slot's pods ask.
    per_slot = []
    for c, _, g in shapes:
        k = 1 if unit.exclusive else cores // c
        if g and not unit.exclusive:
            k = min(k, gpus // g)
        per_slot.append(max(1, k))
    chunks = max(m * k for (_, m, _), k in zip(shapes, per_slot, strict=True))
    gpus = max(g * k for (_, _, g), k in zip(shapes, per_slot, strict=True))
    shape = Resources(cores * 1000, chunks * memory_chunk_bytes, gpus)
    plan = [
        SlotSet(replace(pod_set, count=-(-pod_set.count // k), per_pod=shape), k)
        for pod_set, k in zip(sets, per_slot, strict=True)
    ]
    return tuple(plan)


def jobspec_for(unit: SchedulingUnit, graph: Any) -> dict[str, Any]:
    """The jobspec for ``unit`` against ``graph`` (a ClusterGraph: memory convention and host lists):
    one slot shape for the whole unit (:func:`slot_plan`), so one match places it all."""
    if unit.size <= 0 or not unit.pod_sets:
        raise UnitError(f"{unit.kind} {unit.namespace}/{unit.name} asks for 0 pods; nothing to place")
    chunk = graph.memory_chunk_bytes
    chunk_size, chunk_unit = memory_unit(chunk)
    plan = slot_plan(unit, chunk)
    cores, chunks, gpus = slot_shape(plan[0].slot.per_pod, chunk)
    count = sum(s.slot.count for s in plan)
    if unit.exclusive:
        slot = _slot(SLOT_LABEL, cores, chunks, chunk_size, chunk_unit, gpus, 1)
        resources = [{"type": "node", "count": count, "exclusive": True, "with": [slot]}]
    else:
        resources = [_slot(SLOT_LABEL, cores, chunks, chunk_size, chunk_unit, gpus, count)]
    tasks = [
        {
            "command": [unit.kind.lower(), unit.namespace, unit.name],
            "slot": SLOT_LABEL,
            "count": {"per_slot": 1},
        }
    ]
    system: dict[str, Any] = {"duration": int(unit.duration)}
    constraint = constraints.constraint_for_sets(
        unit.pod_sets, graph.node_views(), graph.tainted_node_views()
    )
    if constraint is not None:
        system["constraints"] = constraint
    return {"version": 1, "resources": resources, "attributes": {"system": system}, "tasks": tasks}
