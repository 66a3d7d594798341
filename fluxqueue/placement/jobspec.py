"""Flux jobspec (version 1, prior-art §7.5) for a scheduling unit: one slot per pod.

Shapes:

* shared nodes (default): ``slot(count=pods) -> {core, memory, gpu}`` with no node level, so Fluxion may pack
  several pods onto one node (what both fluences do); the allocation's per-node slot count says how many
  pods go where;
* exclusive (``fluxqueue.io/exclusive: "true"``): ``node(count=pods, exclusive) -> slot(1) -> {...}``: every
  pod gets a whole node of its own.

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


def jobspec_for(unit: SchedulingUnit, graph: Any) -> dict[str, Any]:
    """The jobspec for ``unit`` against ``graph`` (a ClusterGraph: memory convention and host lists)."""
    if unit.size <= 0:
        raise UnitError(f"{unit.kind} {unit.namespace}/{unit.name} asks for 0 pods; nothing to place")
    chunk = graph.memory_chunk_bytes
    chunk_size, chunk_unit = memory_unit(chunk)
    cores, chunks, gpus = slot_shape(unit.per_pod, chunk)
    inside: list[dict[str, Any]] = [{"type": "core", "count": cores}]
    if chunks:
        inside.append({"type": "memory", "count": chunks * chunk_size, "unit": chunk_unit})
    if gpus:
        inside.append({"type": "gpu", "count": gpus})
    if unit.exclusive:
        slot = {"type": "slot", "count": 1, "label": SLOT_LABEL, "with": inside}
        resources = [{"type": "node", "count": unit.size, "exclusive": True, "with": [slot]}]
    else:
        resources = [{"type": "slot", "count": unit.size, "label": SLOT_LABEL, "with": inside}]
    system: dict[str, Any] = {"duration": int(unit.duration)}
    constraint = constraints.constraint_for(unit, graph.node_views(), graph.tainted_node_views())
    if constraint is not None:
        system["constraints"] = constraint
    return {
        "version": 1,
        "resources": resources,
        "attributes": {"system": system},
        "tasks": [
            {
                "command": [unit.kind.lower(), unit.namespace, unit.name],
                "slot": SLOT_LABEL,
                "count": {"per_slot": 1},
            }
        ],
    }
