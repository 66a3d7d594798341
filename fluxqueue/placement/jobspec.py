"""Flux jobspec (version 1, prior-art §7.5) for a scheduling unit: one slot per pod.

Shapes:

* shared nodes (default): ``slot(count=pods) -> {core, memory, gpu}`` with no node level, so Fluxion may
  pack several pods onto one node (what both fluences do);
* exclusive (``fluxqueue.io/exclusive: "true"``): ``node(count=pods, exclusive) -> slot(1) -> {...}``: every
  pod gets a whole node of its own.

A unit of pod sets of different shapes asks slots of the widest shape (:func:`slot_sets`); which pod of which
set goes where is derived from the allocation afterwards (:mod:`.binding`).

A slot asks ``ceil(cpu / 1000m)`` cores (at least 1: a pod always runs somewhere), ``ceil(memory / chunk)``
memory chunks expressed in the graph's memory unit (see :mod:`fluxqueue.placement.graph`), and its GPUs.
``attributes.system.duration`` is the unit's walltime; ``attributes.system.constraints`` keeps pods where
Kubernetes allows them (:mod:`fluxqueue.placement.constraints`). Exactly the four top-level keys flux-sched's
jobspec parser accepts.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fluxqueue.placement import constraints
from fluxqueue.placement.podsets import PodSet
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


def slot_sets(unit: SchedulingUnit) -> tuple[PodSet, ...]:
    """The pod sets as Fluxion is asked for them: as they are when they are alike, else every set with the
    per-resource maximum of all sets' requests.

    flux-sched's traverser takes one request per resource type among siblings (``dfu_impl.cpp`` ``dom_dfv``
    refuses siblings of the same type, and a slot cannot hold a slot), so a jobspec cannot carry one slot
    shape per set. A slot big enough for any pod of the unit keeps the promise that matters (every pod lands
    where its own request fits, all at once); it over-reserves the smaller pods' difference.
    """
    sets = unit.pod_sets
    if all(slot_shape(s.per_pod) == slot_shape(sets[0].per_pod) for s in sets[1:]):
        return sets
    widest = unit.per_pod
    return tuple(replace(s, per_pod=widest) for s in sets)


def jobspec_for(unit: SchedulingUnit, graph: Any) -> dict[str, Any]:
    """The jobspec for ``unit`` against ``graph`` (a ClusterGraph: memory convention and host lists):
    one slot shape for the whole unit (:func:`slot_sets`), so one match places it all."""
    if unit.size <= 0 or not unit.pod_sets:
        raise UnitError(f"{unit.kind} {unit.namespace}/{unit.name} asks for 0 pods; nothing to place")
    chunk = graph.memory_chunk_bytes
    chunk_size, chunk_unit = memory_unit(chunk)
    cores, chunks, gpus = slot_shape(slot_sets(unit)[0].per_pod, chunk)
    count = sum(s.count for s in unit.pod_sets)
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
