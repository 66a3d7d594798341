"""Between placement's SchedulingUnit (read from Kubernetes objects) and the queue's rows.

The row keeps what the jobspec is made from (``placement``), so the jobspec is regenerated against the
current graph at every match: node host lists in constraints follow nodes as they come and go.
"""

from __future__ import annotations

from fluxqueue.placement.resources import Resources
from fluxqueue.placement.units import KIND_POD_GROUP, SchedulingUnit
from fluxqueue.queue.store import QUEUED, Unit, UnitSubmission


def fluxjob_name(kind: str, name: str) -> str:
    """``<name>-job``, ``<name>-pod``, ``<group>-group``: readable, and a Pod and a Job of one name differ."""
    suffix = {"Job": "job", "Pod": "pod", KIND_POD_GROUP: "group"}[kind]
    return f"{name}-{suffix}"[:253]


def owner_key(unit: SchedulingUnit) -> str:
    if unit.kind == KIND_POD_GROUP:
        return f"group:{unit.namespace}/{unit.group_name}"
    return unit.uid


def submission_for(
    unit: SchedulingUnit, jobspec: dict, *, state: str = QUEUED, reason: str = ""
) -> UnitSubmission:
    return UnitSubmission(
        namespace=unit.namespace,
        name=fluxjob_name(unit.kind, unit.name),
        kind=unit.kind,
        object_name=unit.name,
        owner_uid=owner_key(unit),
        size=unit.size,
        jobspec=jobspec,
        duration_s=int(unit.duration),
        cpu_millis=unit.per_pod.cpu_milli,
        memory_bytes=unit.per_pod.memory,
        gpus=unit.per_pod.gpus,
        exclusive=unit.exclusive,
        priority=unit.priority,
        group_name=unit.group_name,
        queue=unit.queue,
        state=state,
        reason=reason,
        placement={
            "node_selector": unit.node_selector,
            "node_affinity_terms": unit.node_affinity_terms,
            "tolerations": unit.tolerations,
            "indexed": unit.indexed,
            "uid": unit.uid,
        },
    )


def scheduling_unit(row: Unit) -> SchedulingUnit:
    """The SchedulingUnit a queue row stands for (what jobspec_for and fits_ever take)."""
    p = row.placement or {}
    return SchedulingUnit(
        kind=row.kind,
        namespace=row.namespace,
        name=row.object_name,
        uid=p.get("uid", ""),
        size=row.size,
        per_pod=Resources(row.cpu_millis, row.memory_bytes, row.gpus, 1),
        duration=row.duration_s,
        priority=row.priority,
        exclusive=row.exclusive,
        queue=row.queue,
        group_name=row.group_name,
        group_size=row.size if row.kind == KIND_POD_GROUP else None,
        node_selector=dict(p.get("node_selector") or {}),
        node_affinity_terms=list(p.get("node_affinity_terms") or []),
        tolerations=list(p.get("tolerations") or []),
        indexed=bool(p.get("indexed")),
    )
