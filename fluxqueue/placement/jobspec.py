"""Flux jobspec (version 1, prior-art §7.5) for a scheduling unit: one slot per pod.

Shapes:

* shared nodes (default): ``slot(count=pods) -> {core, memory, gpu}`` per pod set, with no node level, so
  Fluxion may pack several pods onto one node (what both fluences do);
* exclusive (``fluxqueue.io/exclusive: "true"``): ``node(count=pods, exclusive) -> slot(1) -> {...}`` per pod
  set: every pod gets a whole node of its own.

Which pod of which set goes where is derived from the allocation afterwards (:mod:`.binding`).

A slot asks ``ceil(cpu / 1000m)`` cores (at least 1: a pod always runs somewhere), ``ceil(memory / chunk)``
memory chunks expressed in the graph's memory unit (see :mod:`fluxqueue.placement.graph`), and its GPUs.
``attributes.system.duration`` is the unit's walltime; ``attributes.system.constraints`` keeps pods where
Kubernetes allows them (:mod:`fluxqueue.placement.constraints`). Exactly the four top-level keys flux-sched's
jobspec parser accepts.
"""

from __future__ import annotations

from typing import Any

from fluxqueue.placement import constraints
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


def slot_labels(unit: SchedulingUnit) -> list[str]:
    """One slot label per pod set: ``task`` for a unit of one set (what flux-sched users know), else
    ``task-<set>``."""
    if len(unit.pod_sets) == 1:
        return [SLOT_LABEL]
    return [f"{SLOT_LABEL}-{s.name}" for s in unit.pod_sets]


def jobspec_for(unit: SchedulingUnit, graph: Any) -> dict[str, Any]:
    """The jobspec for ``unit`` against ``graph`` (a ClusterGraph: memory convention and host lists).

    One slot resource per pod set, with the set's count and shape, so one match places the whole unit.
    """
    if unit.size <= 0 or not unit.pod_sets:
        raise UnitError(f"{unit.kind} {unit.namespace}/{unit.name} asks for 0 pods; nothing to place")
    chunk = graph.memory_chunk_bytes
    chunk_size, chunk_unit = memory_unit(chunk)
    resources = []
    tasks = []
    for pod_set, label in zip(unit.pod_sets, slot_labels(unit), strict=True):
        cores, chunks, gpus = slot_shape(pod_set.per_pod, chunk)
        if unit.exclusive:
            slot = _slot(label, cores, chunks, chunk_size, chunk_unit, gpus, 1)
            resources.append({"type": "node", "count": pod_set.count, "exclusive": True, "with": [slot]})
        else:
            resources.append(_slot(label, cores, chunks, chunk_size, chunk_unit, gpus, pod_set.count))
        tasks.append(
            {
                "command": [unit.kind.lower(), unit.namespace, unit.name],
                "slot": label,
                "count": {"per_slot": 1},
            }
        )
    system: dict[str, Any] = {"duration": int(unit.duration)}
    constraint = constraints.constraint_for_sets(
        unit.pod_sets, graph.node_views(), graph.tainted_node_views()
    )
    if constraint is not None:
        system["constraints"] = constraint
    return {"version": 1, "resources": resources, "attributes": {"system": system}, "tasks": tasks}
