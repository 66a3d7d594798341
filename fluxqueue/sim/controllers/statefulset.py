"""The StatefulSet controller (pkg/controller/statefulset), enough to run StatefulSets' pods.

Pods are named ``<set>-<ordinal>`` with hostname = pod name and subdomain = ``serviceName``, labelled
statefulset.kubernetes.io/pod-name, apps.kubernetes.io/pod-index and controller-revision-hash.
``OrderedReady`` (the default) creates ordinal i only once every lower ordinal is Running and Ready, replaces
a failed pod before going on, and scales down from the highest ordinal one pod at a time; ``Parallel``
creates and deletes all at once. A pod that failed is deleted and recreated under the same name.
Not modelled: volumeClaimTemplates/PVCs, ControllerRevision objects, rolling updates of the template
(existing pods keep their template), minReadySeconds, ordinals.start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fluxqueue.sim.apiserver import APIError
from fluxqueue.sim.apiserver import resources as R

from ..clock import Timers
from .base import Informer, Obj, OwnerController
from .events import EventRecorder
from .templates import is_ready, is_running_and_ready, phase, pod_from_template, template_hash

LABEL_POD_NAME = "statefulset.kubernetes.io/pod-name"
LABEL_POD_INDEX = "apps.kubernetes.io/pod-index"
LABEL_REVISION = "controller-revision-hash"


@dataclass
class StatefulSetPlan:
    create: list[int] = field(default_factory=list)
    delete: list[Obj] = field(default_factory=list)
    status: Obj = field(default_factory=dict)


def ordinal(sts_name: str, pod: Obj) -> int | None:
    name = pod["metadata"]["name"]
    prefix = sts_name + "-"
    if not name.startswith(prefix):
        return None
    tail = name[len(prefix) :]
    return int(tail) if tail.isdigit() else None


def plan_statefulset(sts: Obj, pods: list[Obj]) -> StatefulSetPlan:
    spec = sts.get("spec") or {}
    name = sts["metadata"]["name"]
    want = spec.get("replicas", 1)
    ordered = spec.get("podManagementPolicy", "OrderedReady") != "Parallel"
    by_ord: dict[int, Obj] = {}
    for p in pods:
        i = ordinal(name, p)
        if i is not None:
            by_ord[i] = p
    plan = StatefulSetPlan()
    deleting = bool(sts["metadata"].get("deletionTimestamp"))
    if not deleting:
        for i in range(want):
            p = by_ord.get(i)
            if p is None:
                plan.create.append(i)
                if ordered:
                    break
                continue
            if p["metadata"].get("deletionTimestamp"):
                if ordered:
                    break  # wait for the old pod to go before its name can be reused
                continue
            if phase(p) in ("Failed", "Succeeded"):
                plan.delete.append(p)  # recreated under the same name once gone
                if ordered:
                    break
                continue
            if ordered and not is_running_and_ready(p):
                break
        excess = sorted((i for i in by_ord if i >= want), reverse=True)
        if excess and not plan.create and not plan.delete:
            alive = [by_ord[i] for i in excess if not by_ord[i]["metadata"].get("deletionTimestamp")]
            if ordered:
                healthy = all(is_running_and_ready(by_ord[i]) for i in by_ord if i < want)
                if healthy and alive and len(alive) == len([i for i in excess]):
                    plan.delete.append(alive[0])
            else:
                plan.delete += alive
    present = [p for p in by_ord.values() if not p["metadata"].get("deletionTimestamp")]
    ready = sum(1 for p in present if is_ready(p) and phase(p) == "Running")
    revision = f"{name}-{template_hash(spec.get('template') or {})}"
    status = dict(sts.get("status") or {})
    status.update(
        {
            "observedGeneration": sts["metadata"].get("generation", 1),
            "replicas": len(present),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "currentReplicas": len(present),
            "updatedReplicas": len(present),
            "currentRevision": revision,
            "updateRevision": revision,
            "collisionCount": status.get("collisionCount", 0),
        }
    )
    plan.status = status
    return plan


def statefulset_pod(sts: Obj, i: int) -> Obj:
    spec = sts.get("spec") or {}
    name = f"{sts['metadata']['name']}-{i}"
    revision = f"{sts['metadata']['name']}-{template_hash(spec.get('template') or {})}"
    pod = pod_from_template(
        sts,
        spec.get("template") or {},
        name=name,
        extra_labels={LABEL_POD_NAME: name, LABEL_POD_INDEX: str(i), LABEL_REVISION: revision},
    )
    pod["spec"]["hostname"] = name
    if spec.get("serviceName"):
        pod["spec"]["subdomain"] = spec["serviceName"]
    return pod


class StatefulSetController(OwnerController):
    name = "statefulset-controller"
    owner_resource = R.STATEFULSETS
    child_resource = R.PODS

    def __init__(self, client: Any, timers: Timers, sets: Informer, pods: Informer, events: EventRecorder):
        super().__init__(client, timers, sets, pods)
        self.sets, self.pods, self.events = sets, pods, events

    async def reconcile(self, key: tuple[str, str]) -> None:
        sts = self.sets.get(*key)
        if sts is None:
            return
        ns = key[0]
        plan = plan_statefulset(sts, self.owned(sts))
        for i in plan.create:
            body = statefulset_pod(sts, i)
            try:
                self.pods.observe(await self.client.create(R.PODS, body, namespace=ns))
                await self.events.record(
                    sts,
                    "Normal",
                    "SuccessfulCreate",
                    f"create Pod {body['metadata']['name']} in StatefulSet {key[1]} successful",
                    self.name,
                )
            except APIError as exc:
                if exc.code == 409:
                    continue  # the previous pod of that name is still going away
                await self.events.record(sts, "Warning", "FailedCreate", str(exc), self.name)
                raise
        for p in plan.delete:
            if await self.delete_child(p):
                await self.events.record(
                    sts,
                    "Normal",
                    "SuccessfulDelete",
                    f"delete Pod {p['metadata']['name']} in StatefulSet {key[1]} successful",
                    self.name,
                )
        await self.write_status(sts, plan.status)
