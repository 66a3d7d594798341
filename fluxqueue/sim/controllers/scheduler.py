"""A small stand-in for kube-scheduler: binds pods whose schedulerName is ``default-scheduler``.

A real cluster runs kube-scheduler beside fluxqueue, and pods fluxqueue does not manage (system pods,
Deployments, pods that skip the webhook) are placed by it and take node resources fluxqueue must account for.
This one filters nodes as the default plugins do (NodeUnschedulable, TaintToleration for NoSchedule and
NoExecute, NodeAffinity, NodeResourcesFit against the requests of every bound, non-terminal pod, whichever
scheduler bound it) and scores by least allocated CPU and memory. Unschedulable pods get PodScheduled=False
reason Unschedulable with a "0/N nodes are available: ..." message and are retried when pods finish or nodes
change. Not modelled: preemption, inter-pod affinity, topology spread, volume and port filters.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from fluxqueue.sim.apiserver import APIError
from fluxqueue.sim.apiserver import resources as R

from ..clock import Timers, rfc3339
from ..kubelet import fit_failure, node_affinity_matches, node_allocatable, pod_requests, tolerates
from .base import Controller, Informer, Obj
from .templates import TERMINAL

DEFAULT_SCHEDULER = "default-scheduler"
RETRY_S = 10.0  # podMaxBackoffDuration-like periodic retry of unschedulable pods (simulated seconds)


def wants_default_scheduler(pod: Obj) -> bool:
    spec = pod.get("spec") or {}
    return (
        (spec.get("schedulerName") or DEFAULT_SCHEDULER) == DEFAULT_SCHEDULER
        and not spec.get("nodeName")
        and not spec.get("schedulingGates")
        and not pod["metadata"].get("deletionTimestamp")
        and (pod.get("status") or {}).get("phase") not in TERMINAL
    )


def filter_reason(
    pod: Obj, node: Obj, requests: dict[str, int], used: dict[str, int], count: int
) -> str | None:
    """Why ``node`` cannot take ``pod`` in the scheduler's words, None when it can."""
    spec = node.get("spec") or {}
    if spec.get("unschedulable") and not tolerates(
        (pod.get("spec") or {}).get("tolerations") or [],
        {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},
    ):
        return "node(s) were unschedulable"
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    for taint in spec.get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(tolerations, taint):
            value = f": {taint['value']}" if taint.get("value") else ""
            return f"node(s) had untolerated taint {{{taint.get('key')}{value}}}"
    if not node_affinity_matches(pod, node):
        return "node(s) didn't match Pod's node affinity/selector"
    fail = fit_failure(requests, used, count, node_allocatable(node))
    if fail:
        resource = fail[0][len("OutOf") :]
        return "Too many pods" if resource == "pods" else f"Insufficient {resource}"
    return None


def score(requests: dict[str, int], used: dict[str, int], node: Obj) -> float:
    """NodeResourcesFit LeastAllocated: the mean free fraction of cpu and memory after placing the pod."""
    alloc = node_allocatable(node)
    total = 0.0
    for r in ("cpu", "memory"):
        cap = alloc.get(r, 0)
        if cap > 0:
            total += (cap - used.get(r, 0) - requests.get(r, 0)) / cap
    return total / 2


class DefaultScheduler(Controller):
    name = "default-scheduler"

    def __init__(self, client: Any, timers: Timers, pods: Informer, nodes: Informer):
        super().__init__(client, timers)
        self.pods, self.nodes = pods, nodes
        self.used: dict[str, dict[str, int]] = {}  # node -> requests of bound, non-terminal pods
        self.count: dict[str, int] = {}
        self._charged: dict[str, tuple[str, dict[str, int]]] = {}  # pod uid -> (node, requests)
        self._waiting: set[tuple[str, str]] = set()
        pods.add_handler(self._on_pod)
        nodes.add_handler(self._on_node)

    def _charge(self, uid: str, node: str, req: dict[str, int]) -> None:
        if uid in self._charged:
            return
        self._charged[uid] = (node, req)
        used = self.used.setdefault(node, {})
        for k, v in req.items():
            used[k] = used.get(k, 0) + v
        self.count[node] = self.count.get(node, 0) + 1

    def _release(self, uid: str) -> None:
        entry = self._charged.pop(uid, None)
        if entry is None:
            return
        node, req = entry
        used = self.used.setdefault(node, {})
        for k, v in req.items():
            used[k] = used.get(k, 0) - v
        self.count[node] = self.count.get(node, 0) - 1
        self._retry_waiting()

    def _on_pod(self, typ: str, old: Obj | None, new: Obj | None) -> None:
        if new is None:
            if old is not None:
                self._release(old["metadata"]["uid"])
            return
        uid = new["metadata"]["uid"]
        node = (new.get("spec") or {}).get("nodeName")
        if node and (new.get("status") or {}).get("phase") not in TERMINAL:
            if uid not in self._charged:
                self._charge(uid, node, pod_requests(new))
        elif node:
            self._release(uid)
        if wants_default_scheduler(new):
            self.queue.add((new["metadata"].get("namespace", ""), new["metadata"]["name"]))

    def _on_node(self, typ: str, old: Obj | None, new: Obj | None) -> None:
        self._retry_waiting()

    def _retry_waiting(self) -> None:
        if self._waiting:
            waiting, self._waiting = self._waiting, set()
            for key in waiting:
                self.queue.add(key)

    async def reconcile(self, key: tuple[str, str]) -> None:
        pod = self.pods.get(*key)
        if pod is None or not wants_default_scheduler(pod):
            return
        req = pod_requests(pod)
        best, best_score = None, -1e18
        reasons: Counter[str] = Counter()
        nodes = self.nodes.items()
        for node in nodes:
            name = node["metadata"]["name"]
            why = filter_reason(pod, node, req, self.used.get(name, {}), self.count.get(name, 0))
            if why:
                reasons[why] += 1
                continue
            s = score(req, self.used.get(name, {}), node)
            if s > best_score:
                best, best_score = name, s
        ns, name = key
        if best is None:
            detail = " ".join(f"{n} {why}." for why, n in sorted(reasons.items()))
            message = f"0/{len(nodes)} nodes are available: {detail}".rstrip()
            self._waiting.add(key)
            self.queue.add_after(key, RETRY_S)
            await self._unschedulable(pod, message)
            return
        try:
            await self.client.create(
                R.PODS,
                {
                    "apiVersion": "v1",
                    "kind": "Binding",
                    "metadata": {"name": name, "uid": pod["metadata"]["uid"]},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": best},
                },
                namespace=ns,
                subresource="binding",
            )
        except APIError as exc:
            if exc.code in (404, 409):
                return  # gone, bound by someone else, or gated meanwhile
            raise
        self._charge(pod["metadata"]["uid"], best, req)

    async def _unschedulable(self, pod: Obj, message: str) -> None:
        conds = [
            c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") != "PodScheduled"
        ]
        prev = next(
            (c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") == "PodScheduled"),
            None,
        )
        if prev and prev.get("reason") == "Unschedulable" and prev.get("message") == message:
            return
        conds.append(
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": message,
                "lastProbeTime": None,
                "lastTransitionTime": rfc3339(),
            }
        )
        try:
            out = await self.client.patch(
                R.PODS,
                pod["metadata"]["name"],
                {"status": {"conditions": conds}},
                namespace=pod["metadata"].get("namespace"),
                subresource="status",
            )
            self.pods.observe(out)
        except APIError as exc:
            if exc.code != 404:
                raise
