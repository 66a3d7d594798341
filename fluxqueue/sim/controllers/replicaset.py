"""The ReplicaSet controller (pkg/controller/replicaset): keep ``spec.replicas`` active pods, report status.

Pods belong to a ReplicaSet through their controller ownerReference (no adoption of orphans by selector).
Terminal pods are not active: the controller replaces them and leaves them for pod garbage collection.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from fluxqueue.sim.apiserver import APIError
from fluxqueue.sim.apiserver import resources as R

from ..clock import Timers
from .base import Informer, Obj, OwnerController
from .events import EventRecorder
from .podcontrol import create_pod
from .templates import deletion_rank, is_active, is_ready, pod_from_template


@dataclass
class ReplicaSetPlan:
    create: int = 0
    delete: list[Obj] = field(default_factory=list)
    status: Obj = field(default_factory=dict)


def plan_replicaset(rs: Obj, pods: list[Obj]) -> ReplicaSetPlan:
    """manageReplicas + calculateStatus, pure."""
    spec = rs.get("spec") or {}
    want = spec.get("replicas", 1)
    active = [p for p in pods if is_active(p)]
    plan = ReplicaSetPlan()
    if rs["metadata"].get("deletionTimestamp"):
        want = len(active)
    diff = len(active) - want
    if diff < 0:
        plan.create = -diff
    elif diff > 0:
        plan.delete = sorted(active, key=deletion_rank)[:diff]
    kept = [p for p in active if p not in plan.delete]
    ready = sum(1 for p in kept if is_ready(p))
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    fully = sum(
        1 for p in kept if all((p["metadata"].get("labels") or {}).get(k) == v for k, v in labels.items())
    )
    status = dict(rs.get("status") or {})
    status.update(
        {
            "replicas": len(kept) + plan.create,
            "fullyLabeledReplicas": fully,
            "readyReplicas": ready,
            "availableReplicas": ready,  # minReadySeconds not modelled: ready is available
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
    )
    plan.status = status
    return plan


class ReplicaSetController(OwnerController):
    name = "replicaset-controller"
    workers = 2
    owner_resource = R.REPLICASETS
    child_resource = R.PODS

    def __init__(self, client: Any, timers: Timers, sets: Informer, pods: Informer, events: EventRecorder):
        super().__init__(client, timers, sets, pods)
        self.sets, self.pods, self.events = sets, pods, events

    async def reconcile(self, key: tuple[str, str]) -> None:
        rs = self.sets.get(*key)
        if rs is None:
            return
        plan = plan_replicaset(rs, self.owned(rs))
        if plan.create:
            template = (rs.get("spec") or {}).get("template") or {}
            results = await asyncio.gather(
                *(
                    create_pod(
                        self.client, self.pods, self.events, rs, pod_from_template(rs, template), self.name
                    )
                    for _ in range(plan.create)
                ),
                return_exceptions=True,
            )
            for r in results:
                if isinstance(r, BaseException) and not isinstance(r, APIError):
                    raise r
            if any(isinstance(r, BaseException) for r in results):
                self.queue.add_rate_limited(key)
        for p in plan.delete:
            if await self.delete_child(p):
                await self.events.record(
                    rs, "Normal", "SuccessfulDelete", f"Deleted pod: {p['metadata']['name']}", self.name
                )
        await self.write_status(rs, plan.status)
