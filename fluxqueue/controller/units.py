"""Between placement's SchedulingUnit (read from Kubernetes objects) and the queue's rows.

The row keeps what the jobspec is made from (the pod sets and ``placement``), so the jobspec is regenerated
against the current graph at every match: node host lists in constraints follow nodes as they come and go.
"""

from __future__ import annotations

from fluxqueue.placement.podsets import pod_sets_from_json, pod_sets_json
from fluxqueue.placement.units import SchedulingUnit
from fluxqueue.queue.store import QUEUED, Unit, UnitSubmission
from fluxqueue.workloads.podgroup import PodGroupWorkload, group_key
from fluxqueue.workloads.registry import workload


def fluxjob_name(kind: str, name: str) -> str:
    """``<name>-job``, ``<name>-pod``, ``<group>-group``, ``<name>-jobset``: readable, and a Pod and a Job of
    one name differ."""
    return f"{name}-{workload(kind).fluxjob_suffix}"[:253]


def owner_key(unit: SchedulingUnit) -> str:
    if unit.kind == PodGroupWorkload.kind:
        return group_key(unit.namespace, unit.group_name or unit.name)
    return unit.uid


def submission_for(unit: SchedulingUnit, *, state: str = QUEUED, reason: str = "") -> UnitSubmission:
    return UnitSubmission(
        namespace=unit.namespace,
        name=fluxjob_name(unit.kind, unit.name),
        kind=unit.kind,
        object_name=unit.name,
        owner_uid=owner_key(unit),
        size=unit.size,
        pod_sets=pod_sets_json(unit.pod_sets),
        duration_s=int(unit.duration),
        exclusive=unit.exclusive,
        priority=unit.priority,
        group_name=unit.group_name,
        queue=unit.queue,
        state=state,
        reason=reason,
        placement={"indexed": unit.indexed, "uid": unit.uid},
        dependency=unit.dependency.text if unit.dependency else None,
        dependency_terms=tuple(unit.dependency.rows()) if unit.dependency else (),
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
        pod_sets=pod_sets_from_json(row.pod_sets),
        duration=row.duration_s,
        priority=row.priority,
        exclusive=row.exclusive,
        queue=row.queue,
        group_name=row.group_name,
        group_size=row.size if row.kind == PodGroupWorkload.kind else None,
        indexed=bool(p.get("indexed")),
    )
