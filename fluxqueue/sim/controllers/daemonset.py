"""The DaemonSet controller (pkg/controller/daemon): one pod per eligible node.

A node is eligible when the pod template's nodeSelector / required node affinity match it and its NoSchedule
and NoExecute taints are tolerated (with the tolerations the controller adds to every daemon pod:
not-ready/unreachable NoExecute, disk/memory/pid-pressure and unschedulable NoSchedule). Each pod is pinned
with required node affinity ``matchFields metadata.name In [node]`` and left to the default scheduler to bind,
as since Kubernetes 1.12 (ScheduleDaemonSetPods). Failed pods are replaced; pods on nodes no longer eligible
are deleted. Not modelled: rolling updates of the template (existing pods keep theirs), maxSurge.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from fluxqueue.sim.apiserver import resources as R

from ..clock import Timers
from ..kubelet import node_affinity_matches, tolerates
from .base import Informer, Obj, OwnerController
from .events import EventRecorder
from .podcontrol import create_pod
from .templates import is_active, is_ready, phase, pod_from_template, template_hash

# daemon/util AddOrUpdateDaemonPodTolerations
DAEMON_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
]


@dataclass
class DaemonSetPlan:
    create: list[str] = field(default_factory=list)  # node names
    delete: list[Obj] = field(default_factory=list)
    status: Obj = field(default_factory=dict)


def daemon_pod(ds: Obj, node: str) -> Obj:
    spec = ds.get("spec") or {}
    template = copy.deepcopy(spec.get("template") or {})
    gen = ds["metadata"].get("generation", 1)
    pod = pod_from_template(
        ds,
        template,
        generate_name=ds["metadata"]["name"] + "-",
        extra_labels={
            "controller-revision-hash": template_hash(spec.get("template") or {}),
            "pod-template-generation": str(gen),
        },
    )
    pspec = pod["spec"]
    tols = list(pspec.get("tolerations") or [])
    for t in DAEMON_TOLERATIONS:
        if not any(x.get("key") == t["key"] and x.get("effect") == t["effect"] for x in tols):
            tols.append(dict(t))
    pspec["tolerations"] = tols
    # daemon/util ReplaceDaemonSetPodNodeNameNodeAffinity
    affinity = pspec.setdefault("affinity", {})
    affinity["nodeAffinity"] = {
        **(affinity.get("nodeAffinity") or {}),
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
            ]
        },
    }
    return pod


def pod_node(pod: Obj) -> str | None:
    if (pod.get("spec") or {}).get("nodeName"):
        return pod["spec"]["nodeName"]
    req = (((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for term in req.get("nodeSelectorTerms") or []:
        for f in term.get("matchFields") or []:
            if f.get("key") == "metadata.name" and f.get("values"):
                return f["values"][0]
    return None


def eligible(ds: Obj, node: Obj) -> bool:
    template = (ds.get("spec") or {}).get("template") or {}
    probe = {"metadata": {"name": "probe"}, "spec": template.get("spec") or {}}
    if not node_affinity_matches(probe, node):
        return False
    tols = list((template.get("spec") or {}).get("tolerations") or []) + DAEMON_TOLERATIONS
    return all(
        tolerates(tols, t)
        for t in (node.get("spec") or {}).get("taints") or []
        if t.get("effect") in ("NoSchedule", "NoExecute")
    )


def plan_daemonset(ds: Obj, pods: list[Obj], nodes: list[Obj]) -> DaemonSetPlan:
    plan = DaemonSetPlan()
    wanted = {n["metadata"]["name"] for n in nodes if eligible(ds, n)}
    by_node: dict[str, list[Obj]] = {}
    for p in pods:
        if p["metadata"].get("deletionTimestamp"):
            continue
        by_node.setdefault(pod_node(p) or "", []).append(p)
    if not ds["metadata"].get("deletionTimestamp"):
        for name in sorted(wanted):
            running = [p for p in by_node.get(name, []) if is_active(p)]
            failed = [p for p in by_node.get(name, []) if phase(p) == "Failed"]
            plan.delete += failed
            if not running:
                plan.create.append(name)
            else:
                plan.delete += sorted(running, key=lambda p: p["metadata"].get("creationTimestamp") or "")[1:]
    misscheduled = 0
    for name, ps in by_node.items():
        if name not in wanted:
            misscheduled += sum(1 for p in ps if is_active(p))
            plan.delete += [p for p in ps if p not in plan.delete]
    current = [p for n in wanted for p in by_node.get(n, []) if is_active(p)]
    ready = sum(1 for p in current if is_ready(p))
    status = dict(ds.get("status") or {})
    status.update(
        {
            "desiredNumberScheduled": len(wanted),
            "currentNumberScheduled": len({pod_node(p) for p in current}),
            "numberMisscheduled": misscheduled,
            "numberReady": ready,
            "numberAvailable": ready,
            "numberUnavailable": max(0, len(wanted) - ready),
            "updatedNumberScheduled": len({pod_node(p) for p in current}),
            "observedGeneration": ds["metadata"].get("generation", 1),
        }
    )
    if not ready:
        status.pop("numberAvailable", None)
    plan.status = status
    return plan


class DaemonSetController(OwnerController):
    name = "daemonset-controller"
    owner_resource = R.DAEMONSETS
    child_resource = R.PODS

    def __init__(
        self,
        client: Any,
        timers: Timers,
        sets: Informer,
        pods: Informer,
        nodes: Informer,
        events: EventRecorder,
    ):
        super().__init__(client, timers, sets, pods)
        self.sets, self.pods, self.nodes, self.events = sets, pods, nodes, events
        nodes.add_handler(self._on_node)

    def _on_node(self, typ: str, old: Obj | None, new: Obj | None) -> None:
        if old is not None and new is not None:
            o, n = old.get("spec") or {}, new.get("spec") or {}
            if o.get("taints") == n.get("taints") and old["metadata"].get("labels") == new["metadata"].get(
                "labels"
            ):
                return  # heartbeats and status changes do not change eligibility
        for key in self._by_uid.values():
            self.queue.add(key)

    async def reconcile(self, key: tuple[str, str]) -> None:
        ds = self.sets.get(*key)
        if ds is None:
            return
        plan = plan_daemonset(ds, self.owned(ds), self.nodes.items())
        for node in plan.create:
            await create_pod(self.client, self.pods, self.events, ds, daemon_pod(ds, node), self.name)
        for p in plan.delete:
            await self.delete_child(p)
        await self.write_status(ds, plan.status)
