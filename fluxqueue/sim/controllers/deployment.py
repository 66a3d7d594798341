"""The Deployment controller (pkg/controller/deployment), enough to run Deployments' pods.

A Deployment owns one ReplicaSet per pod template, named ``<deployment>-<pod-template-hash>`` with the
``pod-template-hash`` label on its selector and template. The ReplicaSet of the current template is scaled to
``spec.replicas`` and older ones to 0 at once (a rollout without maxSurge/maxUnavailable pacing: documented
simplification); old ReplicaSets beyond ``revisionHistoryLimit`` are deleted. Status and the Available /
Progressing conditions follow syncDeploymentStatus.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from fluxqueue.sim.apiserver import APIError
from fluxqueue.sim.apiserver import resources as R

from ..clock import Timers, rfc3339
from .base import Informer, Obj, OwnerController
from .events import EventRecorder
from .templates import owner_reference, template_hash

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"


def _template_without_hash(t: Obj) -> Obj:
    t = copy.deepcopy(t or {})
    (t.get("metadata") or {}).get("labels", {}).pop(HASH_LABEL, None)
    return t


@dataclass
class DeploymentPlan:
    create: Obj | None = None  # a new ReplicaSet
    scale: list[tuple[Obj, int]] = field(default_factory=list)
    delete: list[Obj] = field(default_factory=list)
    status: Obj = field(default_factory=dict)


def new_replicaset(deploy: Obj, revision: int) -> Obj:
    spec = deploy.get("spec") or {}
    template = copy.deepcopy(spec.get("template") or {})
    h = template_hash(template)
    tmd = template.setdefault("metadata", {})
    tmd.setdefault("labels", {})[HASH_LABEL] = h
    selector = copy.deepcopy(spec.get("selector") or {})
    selector.setdefault("matchLabels", {})[HASH_LABEL] = h
    md = deploy["metadata"]
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"{md['name']}-{h}",
            "namespace": md.get("namespace"),
            "labels": dict(tmd["labels"]),
            "annotations": {
                REVISION: str(revision),
                "deployment.kubernetes.io/desired-replicas": str(spec.get("replicas", 1)),
                "deployment.kubernetes.io/max-replicas": str(spec.get("replicas", 1)),
            },
            "ownerReferences": [owner_reference(deploy)],
        },
        "spec": {"replicas": spec.get("replicas", 1), "selector": selector, "template": template},
    }


def _cond(typ: str, ok: bool, reason: str, message: str, now: str, old: Obj) -> Obj:
    prev = next((c for c in old.get("conditions") or [] if c.get("type") == typ), None)
    status = "True" if ok else "False"
    since = prev["lastTransitionTime"] if prev and prev.get("status") == status else now
    return {
        "type": typ,
        "status": status,
        "reason": reason,
        "message": message,
        "lastUpdateTime": prev["lastUpdateTime"] if prev and prev.get("reason") == reason else now,
        "lastTransitionTime": since,
    }


def plan_deployment(deploy: Obj, sets: list[Obj], now: str) -> DeploymentPlan:
    spec = deploy.get("spec") or {}
    md = deploy["metadata"]
    want = spec.get("replicas", 1)
    current = _template_without_hash(spec.get("template") or {})
    plan = DeploymentPlan()
    new = next(
        (rs for rs in sets if _template_without_hash((rs.get("spec") or {}).get("template")) == current), None
    )
    revisions = [int(((rs["metadata"].get("annotations") or {}).get(REVISION)) or 0) for rs in sets]
    if new is None and not md.get("deletionTimestamp"):
        plan.create = new_replicaset(deploy, max(revisions, default=0) + 1)
    elif new is not None and (new.get("spec") or {}).get("replicas") != want:
        plan.scale.append((new, want))
    olds = [rs for rs in sets if rs is not new]
    for rs in olds:
        if (rs.get("spec") or {}).get("replicas", 0) != 0:
            plan.scale.append((rs, 0))
    limit = spec.get("revisionHistoryLimit", 10)
    idle = [rs for rs in olds if not (rs.get("status") or {}).get("replicas")]
    idle.sort(key=lambda rs: int(((rs["metadata"].get("annotations") or {}).get(REVISION)) or 0))
    if len(idle) > limit:
        plan.delete = idle[: len(idle) - limit]

    def st(rs: Obj | None, f: str) -> int:
        return ((rs or {}).get("status") or {}).get(f, 0) or 0

    replicas = sum(st(rs, "replicas") for rs in sets)
    available = sum(st(rs, "availableReplicas") for rs in sets)
    old = deploy.get("status") or {}
    name = (new or plan.create or {}).get("metadata", {}).get("name", "")
    available_ok = available >= want
    complete = new is not None and st(new, "availableReplicas") >= want and replicas == want
    plan.status = {
        **old,
        "observedGeneration": md.get("generation", 1),
        "replicas": replicas,
        "updatedReplicas": st(new, "replicas"),
        "readyReplicas": sum(st(rs, "readyReplicas") for rs in sets),
        "availableReplicas": available,
        "unavailableReplicas": max(0, want - available),
        "conditions": [
            _cond(
                "Available",
                available_ok,
                "MinimumReplicasAvailable" if available_ok else "MinimumReplicasUnavailable",
                "Deployment has minimum availability."
                if available_ok
                else "Deployment does not have minimum availability.",
                now,
                old,
            ),
            _cond(
                "Progressing",
                True,
                "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
                f'ReplicaSet "{name}" has successfully progressed.'
                if complete
                else f'ReplicaSet "{name}" is progressing.',
                now,
                old,
            ),
        ],
    }
    return plan


class DeploymentController(OwnerController):
    name = "deployment-controller"
    owner_resource = R.DEPLOYMENTS
    child_resource = R.REPLICASETS

    def __init__(self, client: Any, timers: Timers, deploys: Informer, sets: Informer, events: EventRecorder):
        super().__init__(client, timers, deploys, sets)
        self.deploys, self.sets, self.events = deploys, sets, events

    async def reconcile(self, key: tuple[str, str]) -> None:
        deploy = self.deploys.get(*key)
        if deploy is None:
            return
        ns = key[0]
        plan = plan_deployment(deploy, self.owned(deploy), rfc3339())
        if plan.create is not None:
            try:
                rs = await self.client.create(R.REPLICASETS, plan.create, namespace=ns)
                self.sets.observe(rs)
                await self.events.record(
                    deploy,
                    "Normal",
                    "ScalingReplicaSet",
                    f"Scaled up replica set {rs['metadata']['name']} from 0 to {rs['spec']['replicas']}",
                    self.name,
                )
            except APIError as exc:
                if exc.code != 409:
                    raise
        for rs, n in plan.scale:
            out = await self.client.patch(
                R.REPLICASETS, rs["metadata"]["name"], {"spec": {"replicas": n}}, namespace=ns
            )
            self.sets.observe(out)
            verb = "up" if n > (rs.get("spec") or {}).get("replicas", 0) else "down"
            await self.events.record(
                deploy,
                "Normal",
                "ScalingReplicaSet",
                f"Scaled {verb} replica set {rs['metadata']['name']} from {rs['spec'].get('replicas', 0)} to {n}",
                self.name,
            )
        for rs in plan.delete:
            await self.delete_child(rs)
        await self.write_status(deploy, plan.status)
