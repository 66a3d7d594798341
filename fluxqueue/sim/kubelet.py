"""Simulated kubelets: Node objects, admission of bound pods, pod lifecycles, graceful deletion, heartbeats.

One :class:`NodeAgent` per node holds what that node's kubelet knows (admitted pods and their requests);
one :class:`Kubelets` dispatcher feeds them from a single pod informer and drives every pod's transitions
from the cluster's timer heap, so thousands of nodes cost no task each.

What a pod bound to a node goes through (after pkg/kubelet):
- Admission (kubelet.go canAdmitPod -> lifecycle/predicate.go generalFilter): the pod must fit the node's
  allocatable minus the requests of the pods already admitted and not terminal, in the order of
  noderesources.Fits (pods, cpu, memory, ephemeral-storage, extended resources); then NodeAffinity
  (nodeSelector / required node affinity) and NoExecute taints. A rejected pod gets phase Failed, reason
  ``OutOf<resource>`` (or the predicate name) and message ``Pod was rejected: <why>`` (kubelet.go rejectPod),
  a Warning Event, and an entry in ``rejections``: that is how a scheduler's over-commitment is caught.
- Running after ``pod_start_delay`` simulated seconds (conditions PodReadyToStartContainers, Initialized,
  ContainersReady, Ready, PodScheduled; containerStatuses; podIP from the node's podCIDR).
- The container "runs" for ``sim.fluxqueue.io/runtime`` (default 10 s) and exits 0, or 1 when
  ``sim.fluxqueue.io/fail: "true"``. restartPolicy Never: the pod ends Succeeded/Failed. OnFailure: a
  success ends the pod, a failure restarts the container (restartCount + 1) after CrashLoopBackOff (10 s
  doubling, capped at 300 s) and the pod stays Running. Always: a pod without the runtime annotation runs
  until deleted (a server); with it, the container restarts after every exit, like a real kubelet.
- Deleted while running: containers get SIGTERM and exit after ``pod_stop_seconds`` (None: they ignore it
  and are killed when the grace period ends; either way at most the pod's
  deletionGracePeriodSeconds); the kubelet writes the terminal status (exit 143) and then deletes the object
  with grace 0 and a uid precondition, as its status manager does. Terminal or never-started pods being
  deleted go at once.
- spec.activeDeadlineSeconds (counted from admission): the pod is killed and fails with reason
  DeadlineExceeded (kubelet pastActiveDeadline).
- Status writes go through the pods/status subresource, as the kubelet's status manager does.
Documented simplifications: no image pulls, probes or volumes; readiness is immediate; init containers are
reported completed at start.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fluxqueue.kube import names
from fluxqueue.kube.quantity import QuantityError, cpu_millis, format_bytes, to_int_ceil
from fluxqueue.log import get_logger
from fluxqueue.sim.apiserver import APIError
from fluxqueue.sim.apiserver import resources as R

from .clock import SimClock, Timers, parse_duration, rfc3339, rfc3339_micro
from .controllers.events import EventRecorder

log = get_logger(__name__)

Obj = dict[str, Any]

DEFAULT_RUNTIME_S = 10.0
KUBELET_VERSION = "v1.35.0"
GPU = "nvidia.com/gpu"
TAINT_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
NODE_LEASE_NAMESPACE = "kube-node-lease"
CRASHLOOP_BASE_S, CRASHLOOP_MAX_S = 10.0, 300.0  # kubelet container restart backoff
TERMINAL = ("Succeeded", "Failed")

# noderesources.Fits checks pods first, then these in this order, then extended resources by name.
_FIT_ORDER = ("cpu", "memory", "ephemeral-storage")


# ----------------------------------------------------------------------------------------- pure logic
def _quantity(name: str, value: Any) -> int:
    return cpu_millis(value) if name == "cpu" else to_int_ceil(value)


def pod_requests(pod: Obj) -> dict[str, int]:
    """What a pod requests (k8s.io/component-helpers resource.PodRequests): cpu in millicores, rest in units.

    The sum over containers, raised to the largest regular init container (which run one at a time, each
    alongside the restartable "sidecar" init containers started before it), plus sidecars, plus overhead.
    """
    spec = pod.get("spec") or {}
    total: dict[str, int] = {}

    def reqs(c: Obj) -> dict[str, int]:
        res = c.get("resources") or {}
        r = dict(res.get("limits") or {})
        r.update(res.get("requests") or {})  # requests default to limits (core/v1 defaults)
        out = {}
        for k, v in r.items():
            try:
                out[k] = _quantity(k, v)
            except QuantityError:
                continue
        return out

    for c in spec.get("containers") or []:
        for k, v in reqs(c).items():
            total[k] = total.get(k, 0) + v
    sidecars: dict[str, int] = {}
    init_max: dict[str, int] = {}
    for c in spec.get("initContainers") or []:
        r = reqs(c)
        if c.get("restartPolicy") == "Always":
            for k, v in r.items():
                sidecars[k] = sidecars.get(k, 0) + v
            for k, v in sidecars.items():
                init_max[k] = max(init_max.get(k, 0), v)
        else:
            for k in set(r) | set(sidecars):
                init_max[k] = max(init_max.get(k, 0), r.get(k, 0) + sidecars.get(k, 0))
    for k, v in sidecars.items():
        total[k] = total.get(k, 0) + v
    for k, v in init_max.items():
        total[k] = max(total.get(k, 0), v)
    for k, v in (spec.get("overhead") or {}).items():
        try:
            total[k] = total.get(k, 0) + _quantity(k, v)
        except QuantityError:
            continue
    return {k: v for k, v in total.items() if v}


def node_allocatable(node: Obj) -> dict[str, int]:
    out = {}
    for k, v in ((node.get("status") or {}).get("allocatable") or {}).items():
        try:
            out[k] = _quantity(k, v)
        except QuantityError:
            continue
    return out


def fit_failure(
    requests: dict[str, int], used: dict[str, int], pods_used: int, allocatable: dict[str, int]
) -> tuple[str, str] | None:
    """(reason, message) when the pod does not fit, after lifecycle/predicate.go and noderesources.Fits."""
    pods_cap = allocatable.get("pods", 0)
    if pods_used + 1 > pods_cap:
        return ("OutOfpods", _insufficient("pods", 1, pods_used, pods_cap))
    extended = sorted(k for k in requests if k not in _FIT_ORDER and k != "pods")
    for name in (*_FIT_ORDER, *extended):
        want = requests.get(name, 0)
        if want <= 0:
            continue  # Fits skips resources the pod does not request
        cap, have = allocatable.get(name, 0), used.get(name, 0)
        if want > cap - have:
            return (f"OutOf{name}", _insufficient(name, want, have, cap))
    return None


def _insufficient(name: str, requested: int, used: int, capacity: int) -> str:
    # predicate.go InsufficientResourceError.Error(); cpu in millicores, the rest in base units.
    return f"Node didn't have enough resource: {name}, requested: {requested}, used: {used}, capacity: {capacity}"


def _match_expression(expr: Obj, labels: dict[str, str]) -> bool:
    key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
    has = key in labels
    val = labels.get(key)
    if op == "In":
        return has and val in values
    if op == "NotIn":
        return not has or val not in values
    if op == "Exists":
        return has
    if op == "DoesNotExist":
        return not has
    if op in ("Gt", "Lt") and has and values:
        try:
            a, b = int(val), int(values[0])  # type: ignore[arg-type]
        except ValueError:
            return False
        return a > b if op == "Gt" else a < b
    return False


def node_affinity_matches(pod: Obj, node: Obj) -> bool:
    """nodeSelector and requiredDuringSchedulingIgnoredDuringExecution (component-helpers nodeaffinity)."""
    spec = pod.get("spec") or {}
    labels = node["metadata"].get("labels") or {}
    for k, v in (spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False
    req = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = req.get("nodeSelectorTerms")
    if not terms:
        return True
    name = node["metadata"]["name"]
    for term in terms:  # terms are ORed, expressions within a term ANDed
        exprs = term.get("matchExpressions") or []
        fields = term.get("matchFields") or []
        if not exprs and not fields:
            continue
        if all(_match_expression(e, labels) for e in exprs) and all(
            _match_expression(f, {"metadata.name": name}) for f in fields
        ):
            return True
    return False


def tolerates(tolerations: list[Obj], taint: Obj) -> bool:
    for t in tolerations:
        if t.get("effect") and t["effect"] != taint.get("effect"):
            continue
        op = t.get("operator") or "Equal"
        if not t.get("key"):
            if op == "Exists":
                return True
            continue
        if t["key"] != taint.get("key"):
            continue
        if op == "Exists" or t.get("value", "") == taint.get("value", ""):
            return True
    return False


def admission_failure(
    pod: Obj, node: Obj, requests: dict[str, int], used: dict[str, int], pods_used: int
) -> tuple[str, str] | None:
    """The kubelet's admission verdict for a pod bound to this node; None when admitted."""
    fail = fit_failure(requests, used, pods_used, node_allocatable(node))
    if fail:
        return fail
    if not node_affinity_matches(pod, node):
        return ("NodeAffinity", "Predicate NodeAffinity failed")
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") == "NoExecute" and not tolerates(tolerations, taint):
            return ("TaintToleration", "Predicate TaintToleration failed")
    return None


def pod_runtime(pod: Obj, default: float = DEFAULT_RUNTIME_S) -> float:
    ann = pod["metadata"].get("annotations") or {}
    text = ann.get(names.SIM_RUNTIME)
    if text is None:
        return default
    try:
        return parse_duration(text)
    except ValueError:
        return default


def pod_fails(pod: Obj) -> bool:
    ann = pod["metadata"].get("annotations") or {}
    return str(ann.get(names.SIM_FAIL, "")).lower() == "true"


def _condition(typ: str, status: bool, now: str, reason: str | None = None) -> Obj:
    c: Obj = {
        "type": typ,
        "status": "True" if status else "False",
        "lastProbeTime": None,
        "lastTransitionTime": now,
    }
    if reason:
        c["reason"] = reason
    return c


def _container_id(uid: str, name: str, restart: int) -> str:
    return "containerd://" + hashlib.sha256(f"{uid}/{name}/{restart}".encode()).hexdigest()


def _image_id(image: str) -> str:
    return f"docker.io/library/{image}@sha256:" + hashlib.sha256(image.encode()).hexdigest()


def running_status(
    pod: Obj, host_ip: str, pod_ip: str, started: str, restart_count: int = 0, last_exit: int | None = None
) -> Obj:
    """The pod status a kubelet reports once its containers run."""
    spec = pod.get("spec") or {}
    uid = pod["metadata"]["uid"]
    scheduled = next(
        (c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") == "PodScheduled"),
        _condition("PodScheduled", True, started),
    )
    conditions = [
        _condition("PodReadyToStartContainers", True, started),
        _condition("Initialized", True, started),
        _condition("Ready", True, started),
        _condition("ContainersReady", True, started),
        scheduled,
    ]
    statuses = []
    for c in spec.get("containers") or []:
        st: Obj = {
            "name": c["name"],
            "state": {"running": {"startedAt": started}},
            "lastState": {},
            "ready": True,
            "restartCount": restart_count,
            "image": c.get("image", ""),
            "imageID": _image_id(c.get("image", "")),
            "containerID": _container_id(uid, c["name"], restart_count),
            "started": True,
        }
        if last_exit is not None:
            st["lastState"] = {
                "terminated": {
                    "exitCode": last_exit,
                    "reason": "Completed" if last_exit == 0 else "Error",
                    "startedAt": started,
                    "finishedAt": started,
                    "containerID": _container_id(uid, c["name"], restart_count - 1),
                }
            }
        statuses.append(st)
    status: Obj = {
        "phase": "Running",
        "conditions": conditions,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": (pod.get("status") or {}).get("startTime") or started,
        "containerStatuses": statuses,
        "qosClass": (pod.get("status") or {}).get("qosClass", "BestEffort"),
    }
    inits = spec.get("initContainers") or []
    if inits:
        status["initContainerStatuses"] = [
            {
                "name": c["name"],
                "state": {
                    "terminated": {
                        "exitCode": 0,
                        "reason": "Completed",
                        "startedAt": started,
                        "finishedAt": started,
                        "containerID": _container_id(uid, c["name"], 0),
                    }
                },
                "lastState": {},
                "ready": True,
                "restartCount": 0,
                "image": c.get("image", ""),
                "imageID": _image_id(c.get("image", "")),
                "containerID": _container_id(uid, c["name"], 0),
                "started": False,
            }
            for c in inits
        ]
    return status


def terminated_status(pod: Obj, exit_code: int, finished: str, restart_count: int = 0) -> Obj:
    """The final status of a pod whose containers exited (phase Succeeded when all exited 0)."""
    cur = pod.get("status") or {}
    uid = pod["metadata"]["uid"]
    started = cur.get("startTime") or finished
    phase = "Succeeded" if exit_code == 0 else "Failed"
    reason = "PodCompleted" if phase == "Succeeded" else "PodFailed"
    conditions = [
        _condition("PodReadyToStartContainers", False, finished),
        _condition("Initialized", True, started, "PodCompleted" if phase == "Succeeded" else None),
        _condition("Ready", False, finished, reason),
        _condition("ContainersReady", False, finished, reason),
    ]
    conditions += [c for c in cur.get("conditions") or [] if c.get("type") == "PodScheduled"]
    statuses = []
    for c in (pod.get("spec") or {}).get("containers") or []:
        running_since = started
        for s in cur.get("containerStatuses") or []:
            if s.get("name") == c["name"]:
                running_since = ((s.get("state") or {}).get("running") or {}).get("startedAt", started)
        cid = _container_id(uid, c["name"], restart_count)
        statuses.append(
            {
                "name": c["name"],
                "state": {
                    "terminated": {
                        "exitCode": exit_code,
                        "reason": "Completed" if exit_code == 0 else "Error",
                        "startedAt": running_since,
                        "finishedAt": finished,
                        "containerID": cid,
                    }
                },
                "lastState": {},
                "ready": False,
                "restartCount": restart_count,
                "image": c.get("image", ""),
                "imageID": _image_id(c.get("image", "")),
                "containerID": cid,
                "started": False,
            }
        )
    status = {k: v for k, v in cur.items() if k in ("hostIP", "hostIPs", "podIP", "podIPs", "qosClass")}
    status.update(
        {"phase": phase, "conditions": conditions, "startTime": started, "containerStatuses": statuses}
    )
    if "initContainerStatuses" in cur:
        status["initContainerStatuses"] = cur["initContainerStatuses"]
    return status


def rejected_status(pod: Obj, reason: str, message: str) -> Obj:
    """kubelet.go rejectPod: phase Failed, the short reason, "Pod was rejected: " + message."""
    cur = pod.get("status") or {}
    status = {
        "phase": "Failed",
        "reason": reason,
        "message": "Pod was rejected: " + message,
        "startTime": cur.get("startTime") or rfc3339(),
    }
    if "qosClass" in cur:
        status["qosClass"] = cur["qosClass"]
    if cur.get("conditions"):
        status["conditions"] = cur["conditions"]
    return status


# ----------------------------------------------------------------------------------------- node objects
@dataclass
class NodeShape:
    """What one simulated node offers and how it is labelled."""

    name: str
    cpus: int | str = 32
    memory: str = "128Gi"
    gpus: int = 0
    pods: int = 110
    ephemeral_storage: str = "100Gi"
    zone: str = "zone-0"
    rack: str = "rack-0"
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[Obj] = field(default_factory=list)
    index: int = 0  # for addresses and podCIDR


def node_object(shape: NodeShape) -> Obj:
    """The Node a registering kubelet creates (kubelet_node_status.go initialNode + the first status)."""
    i = shape.index
    now = rfc3339()
    mem = shape.memory if isinstance(shape.memory, str) else format_bytes(int(shape.memory))
    resources = {
        "cpu": str(shape.cpus),
        "memory": mem,
        "pods": str(shape.pods),
        "ephemeral-storage": shape.ephemeral_storage,
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
    }
    if shape.gpus:
        resources[GPU] = str(shape.gpus)
    labels = {
        "kubernetes.io/hostname": shape.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": "fluxqueue-sim",
        names.LABEL_ZONE: shape.zone,
        names.LABEL_RACK: shape.rack,
        **shape.labels,
    }
    spec: Obj = {
        "podCIDR": pod_cidr(i),
        "podCIDRs": [pod_cidr(i)],
        "providerID": f"fluxqueue-sim://{shape.name}",
    }
    if shape.taints:
        spec["taints"] = list(shape.taints)
    boot = hashlib.md5(f"{shape.name}/{time.time()}".encode()).hexdigest()
    ident = hashlib.md5(shape.name.encode()).hexdigest()
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": shape.name,
            "labels": labels,
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": spec,
        "status": {
            "capacity": dict(resources),
            "allocatable": dict(resources),
            "conditions": node_conditions(True, now, now),
            "addresses": [
                {"type": "InternalIP", "address": host_ip(i)},
                {"type": "Hostname", "address": shape.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": ident,
                "systemUUID": f"{ident[:8]}-{ident[8:12]}-{ident[12:16]}-{ident[16:20]}-{ident[20:32]}",
                "bootID": f"{boot[:8]}-{boot[8:12]}-{boot[12:16]}-{boot[16:20]}-{boot[20:32]}",
                "kernelVersion": "6.8.0-fluxqueue-sim",
                "osImage": "fluxqueue simulated node",
                "containerRuntimeVersion": "containerd://2.1.0",
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        },
    }


def node_conditions(ready: bool, heartbeat: str, transition: str, reason: str | None = None) -> list[Obj]:
    def cond(typ: str, status: str, why: str, message: str, since: str = transition) -> Obj:
        return {
            "type": typ,
            "status": status,
            "lastHeartbeatTime": heartbeat,
            "lastTransitionTime": since,
            "reason": why,
            "message": message,
        }

    return [
        cond(
            "MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"
        ),
        cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        cond("Ready", "True", "KubeletReady", "kubelet is posting ready status")
        if ready
        else cond("Ready", "False", reason or "KubeletNotReady", "container runtime network not ready"),
    ]


def host_ip(i: int) -> str:
    return f"10.0.{(i // 250) % 256}.{i % 250 + 2}"


def pod_cidr(i: int) -> str:
    return f"10.{64 + (i // 256) % 190}.{i % 256}.0/24"


def lease_object(node: str, node_uid: str | None, renew: str, duration_s: int = 40) -> Obj:
    md: Obj = {"name": node, "namespace": NODE_LEASE_NAMESPACE}
    if node_uid:
        md["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": node, "uid": node_uid}]
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": md,
        "spec": {"holderIdentity": node, "leaseDurationSeconds": duration_s, "renewTime": renew},
    }


# ----------------------------------------------------------------------------------------- the agents
@dataclass
class PodRun:
    """What a node's kubelet tracks about one pod it has admitted."""

    uid: str
    namespace: str
    name: str
    requests: dict[str, int]
    restart_policy: str
    runtime: float
    fails: bool
    state: str = "starting"  # starting | running | stopping | done
    restarts: int = 0
    timer: Any = None
    counted: bool = True  # its requests count against the node
    deadline_timer: Any = None  # spec.activeDeadlineSeconds, counted from admission


@dataclass
class NodeAgent:
    """One node's kubelet: its Node object and the pods it has admitted."""

    name: str
    index: int
    node: Obj
    ready: bool = True
    pods: dict[str, PodRun] = field(default_factory=dict)
    used: dict[str, int] = field(default_factory=dict)
    active: int = 0  # admitted pods not terminal
    waiting: dict[str, Obj] = field(default_factory=dict)  # bound while NotReady: admitted when Ready again
    next_ip: int = 1

    def charge(self, run: PodRun, sign: int) -> None:
        for k, v in run.requests.items():
            self.used[k] = self.used.get(k, 0) + sign * v
        self.active += sign

    def release(self, run: PodRun) -> None:
        if run.counted:
            run.counted = False
            self.charge(run, -1)

    def pod_ip(self) -> str:
        ip = self.next_ip
        self.next_ip = ip % 253 + 1
        return pod_cidr(self.index).rsplit(".", 1)[0] + f".{ip + 1}"


class Kubelets:
    """Every node's kubelet, driven by one pod informer and one timer heap."""

    def __init__(
        self,
        client: Any,
        clock: SimClock,
        timers: Timers,
        pod_cache: Callable[[str, str], Obj | None],
        pod_start_delay: float = 1.0,
        pod_stop_seconds: float | None = 1.0,
        default_runtime: float = DEFAULT_RUNTIME_S,
        events: EventRecorder | None = None,
        observe: Callable[[Obj], None] | None = None,
        shared_results: bool = False,
    ):
        self.client = client
        # the in-process client answers our status writes with the stored objects themselves (no copy):
        # they only go to the shared informer cache, read-only like everything in it
        self._patch_kw: dict[str, Any] = {"copy": False} if shared_results else {}
        self.clock = clock
        self.timers = timers
        self._pod = pod_cache
        self.start_delay = pod_start_delay
        self.stop_seconds = pod_stop_seconds
        self.default_runtime = default_runtime
        self.events = events or EventRecorder(client, enabled=False)
        self._observe = observe  # feeds our own writes to the pod cache
        self.nodes: dict[str, NodeAgent] = {}
        self.rejections: list[dict[str, Any]] = []
        self.by_uid: dict[str, str] = {}  # pod uid -> node name, for pods a kubelet admitted
        self.completed = 0  # pods that reached a terminal phase on a node (benchmarks read it)
        self._on_terminal: list[Callable[[Obj], None]] = []

    # ----- nodes
    def add(self, agent: NodeAgent) -> None:
        self.nodes[agent.name] = agent

    def remove(self, name: str) -> NodeAgent | None:
        agent = self.nodes.pop(name, None)
        if agent:
            for run in agent.pods.values():
                if run.timer:
                    run.timer.cancel()
                self.by_uid.pop(run.uid, None)
        return agent

    def set_ready(self, name: str, ready: bool) -> None:
        agent = self.nodes[name]
        agent.ready = ready
        if ready:
            waiting, agent.waiting = agent.waiting, {}
            for pod in waiting.values():
                cur = self._pod(pod["metadata"].get("namespace", ""), pod["metadata"]["name"])
                if cur is not None and cur["metadata"]["uid"] == pod["metadata"]["uid"]:
                    self.on_pod("MODIFIED", None, cur)

    # ----- pod events (called synchronously by the pod informer, in watch order)
    def on_pod(self, typ: str, old: Obj | None, new: Obj | None) -> None:
        if new is None:
            if old is not None:
                self._forget(old)
            return
        node_name = (new.get("spec") or {}).get("nodeName")
        if not node_name:
            return
        agent = self.nodes.get(node_name)
        if agent is None:
            return
        md = new["metadata"]
        uid = md["uid"]
        run = agent.pods.get(uid)
        phase = (new.get("status") or {}).get("phase")
        if run is None:
            if md.get("deletionTimestamp"):
                # never started here (or already finished): nothing to stop, remove it now
                agent.waiting.pop(uid, None)
                self.timers.after(0, self._final_delete, md.get("namespace", ""), md["name"], uid)
                return
            if phase in TERMINAL or uid in self.by_uid:
                return
            if not agent.ready:
                agent.waiting[uid] = new  # the kubelet is not ready: it starts nothing until it is
                return
            self._admit(agent, new)
            return
        if md.get("deletionTimestamp") and run.state in ("starting", "running"):
            self._begin_stop(agent, run, new)
        elif md.get("deletionTimestamp") and run.state == "done":
            run.state = "deleting"
            self.timers.after(0, self._final_delete, run.namespace, run.name, uid)

    def _forget(self, pod: Obj) -> None:
        uid = pod["metadata"]["uid"]
        node_name = self.by_uid.pop(uid, None) or (pod.get("spec") or {}).get("nodeName")
        agent = self.nodes.get(node_name or "")
        if agent is None:
            return
        agent.waiting.pop(uid, None)
        run = agent.pods.pop(uid, None)
        if run is not None:
            for t in (run.timer, run.deadline_timer):
                if t:
                    t.cancel()
            agent.release(run)

    # ----- admission and lifecycle
    def _admit(self, agent: NodeAgent, pod: Obj) -> None:
        md = pod["metadata"]
        uid = md["uid"]
        requests = pod_requests(pod)
        verdict = admission_failure(pod, agent.node, requests, agent.used, agent.active)
        spec = pod.get("spec") or {}
        run = PodRun(
            uid=uid,
            namespace=md.get("namespace", ""),
            name=md["name"],
            requests=requests,
            restart_policy=spec.get("restartPolicy") or "Always",
            runtime=pod_runtime(pod, self.default_runtime),
            fails=pod_fails(pod),
        )
        agent.pods[uid] = run
        self.by_uid[uid] = agent.name
        if verdict is not None:
            reason, message = verdict
            run.state, run.counted = "done", False
            self.rejections.append(
                {
                    "pod": f"{run.namespace}/{run.name}",
                    "node": agent.name,
                    "reason": reason,
                    "message": message,
                    "time": time.time(),
                }
            )
            log.warning(
                "kubelet rejected pod", pod=f"{run.namespace}/{run.name}", node=agent.name, reason=reason
            )
            self.timers.after(0, self._reject, agent, run, reason, message)
            return
        agent.charge(run, +1)
        run.timer = self.timers.after(self.start_delay, self._start, agent, run, 0, None)
        deadline = spec.get("activeDeadlineSeconds")
        if isinstance(deadline, int | float) and deadline > 0:
            run.deadline_timer = self.timers.after(float(deadline), self._deadline, agent, run)

    async def _reject(self, agent: NodeAgent, run: PodRun, reason: str, message: str) -> None:
        pod = self._current(run)
        if pod is None:
            return
        await self._write_status(run, rejected_status(pod, reason, message))
        self.completed += 1
        await self.events.record(pod, "Warning", reason, message, "kubelet", host=agent.name)

    async def _start(self, agent: NodeAgent, run: PodRun, restarts: int, last_exit: int | None) -> None:
        run.timer = None
        if run.state not in ("starting", "running"):
            return
        pod = self._current(run)
        if pod is None:
            return
        now = rfc3339()
        status = running_status(
            pod, host_ip(agent.index), _pod_ip_of(pod) or agent.pod_ip(), now, restarts, last_exit
        )
        run.state, run.restarts = "running", restarts
        if run.restart_policy == "Always" and names.SIM_RUNTIME not in (
            pod["metadata"].get("annotations") or {}
        ):
            pass  # a server: it runs until deleted
        else:
            run.timer = self.timers.after(run.runtime, self._exit, agent, run)
        await self._write_status(run, status)

    async def _exit(self, agent: NodeAgent, run: PodRun) -> None:
        run.timer = None
        if run.state != "running":
            return
        code = 1 if run.fails else 0
        restart = run.restart_policy == "Always" or (run.restart_policy == "OnFailure" and code != 0)
        if restart:
            # CrashLoopBackOff: 10 s doubling per restart, capped at 5 minutes (kuberuntime backoff)
            delay = min(CRASHLOOP_BASE_S * 2**run.restarts, CRASHLOOP_MAX_S)
            run.timer = self.timers.after(delay, self._start, agent, run, run.restarts + 1, code)
            return
        await self._finish(agent, run, code)

    async def _deadline(self, agent: NodeAgent, run: PodRun) -> None:
        """kubelet pastActiveDeadline: the pod is killed and fails with reason DeadlineExceeded."""
        run.deadline_timer = None
        if run.state not in ("starting", "running"):
            return
        if run.timer:
            run.timer.cancel()
            run.timer = None
        pod = self._current(run)
        run.state = "done"
        agent.release(run)
        if pod is None:
            return
        status = terminated_status(pod, 137, rfc3339(), run.restarts)
        status["reason"] = "DeadlineExceeded"
        status["message"] = "Pod was active on the node longer than the specified deadline"
        await self._write_status(run, status)
        self.completed += 1

    async def _finish(self, agent: NodeAgent, run: PodRun, code: int) -> None:
        pod = self._current(run)
        run.state = "done"
        if run.deadline_timer:
            run.deadline_timer.cancel()
        agent.release(run)
        if pod is None:
            return
        await self._write_status(run, terminated_status(pod, code, rfc3339(), run.restarts))
        self.completed += 1

    def _begin_stop(self, agent: NodeAgent, run: PodRun, pod: Obj) -> None:
        if run.timer:
            run.timer.cancel()
        if run.deadline_timer:
            run.deadline_timer.cancel()
        run.state = "stopping"
        grace = pod["metadata"].get("deletionGracePeriodSeconds")
        grace = float(grace) if grace is not None else 30.0
        # None: containers ignore SIGTERM and are killed when the grace period ends
        stop = grace if self.stop_seconds is None else min(grace, self.stop_seconds)
        run.timer = self.timers.after(stop, self._stopped, agent, run)

    async def _stopped(self, agent: NodeAgent, run: PodRun) -> None:
        run.timer = None
        pod = self._current(run)
        run.state = "done"
        agent.release(run)
        if pod is None:
            return
        if (pod.get("status") or {}).get("phase") not in TERMINAL:
            # SIGTERM: exit code 143; the status manager reports the terminal phase before the final delete
            await self._write_status(run, terminated_status(pod, 143, rfc3339(), run.restarts))
        run.state = "deleting"
        await self._final_delete(run.namespace, run.name, run.uid)

    async def _final_delete(self, namespace: str, name: str, uid: str) -> None:
        try:
            await self.client.delete(
                R.PODS, name, namespace=namespace, grace_period_seconds=0, preconditions={"uid": uid}
            )
        except APIError as exc:
            if exc.code not in (404, 409):
                raise

    # ----- writes
    def _current(self, run: PodRun) -> Obj | None:
        pod = self._pod(run.namespace, run.name)
        if pod is None or pod["metadata"]["uid"] != run.uid:
            return None
        return pod

    async def _write_status(self, run: PodRun, status: Obj) -> None:
        if self._current(run) is None:
            return
        try:
            out = await self.client.patch(
                R.PODS,
                run.name,
                {"status": status},
                namespace=run.namespace,
                subresource="status",
                **self._patch_kw,
            )
            if self._observe is not None:
                self._observe(out)
        except APIError as exc:
            if exc.code != 404:
                raise


def _pod_ip_of(pod: Obj) -> str | None:
    return (pod.get("status") or {}).get("podIP")


def lease_duration_s(nodes: int, max_writes_per_s: float, time_scale: float) -> int:
    """leaseDurationSeconds that stays 4x the renew interval (the kubelet's 40 s for 10 s) when the write
    cap stretches the interval: otherwise a reader would see healthy nodes' leases expire."""
    period_real = max(Heartbeats.LEASE_RENEW_S / time_scale, nodes / max(max_writes_per_s, 1e-9))
    return max(40, math.ceil(4 * period_real * time_scale))


class Heartbeats:
    """Node Leases renewed every 10 simulated seconds (kubelet renewInterval = 0.25 x 40 s lease), spread
    over the interval and capped at ``max_writes_per_s`` real writes per second so 5,000 nodes at a large
    time scale do not drown the API; Node status (the Ready condition's lastHeartbeatTime) is re-posted every
    5 simulated minutes (nodeStatusReportFrequency) under the same cap."""

    LEASE_RENEW_S = 10.0
    STATUS_REPORT_S = 300.0

    def __init__(self, client: Any, clock: SimClock, kubelets: Kubelets, max_writes_per_s: float = 100.0):
        self.client = client
        self.clock = clock
        self.kubelets = kubelets
        self.max_rate = max_writes_per_s
        self._task: asyncio.Task[None] | None = None
        self._last_status: dict[str, float] = {}

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="sim-heartbeats")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        while True:
            names_ = list(self.kubelets.nodes)
            if not names_:
                await asyncio.sleep(max(self.clock.real(self.LEASE_RENEW_S), 0.05))
                continue
            period = max(self.clock.real(self.LEASE_RENEW_S), len(names_) / self.max_rate)
            batch = max(1, int(self.max_rate * 0.1))
            pause = period * batch / len(names_)
            for i in range(0, len(names_), batch):
                t0 = time.monotonic()
                for name in names_[i : i + batch]:
                    agent = self.kubelets.nodes.get(name)
                    if agent is not None and agent.ready:
                        await self._beat(agent)
                await asyncio.sleep(max(0.0, pause - (time.monotonic() - t0)))

    async def _beat(self, agent: NodeAgent) -> None:
        now = rfc3339_micro()
        try:
            await self.client.patch(
                R.LEASES,
                agent.name,
                {"spec": {"renewTime": now, "holderIdentity": agent.name}},
                namespace=NODE_LEASE_NAMESPACE,
                **self.kubelets._patch_kw,  # the answer is not used: no copy of it
            )
            last = self._last_status.setdefault(agent.name, time.monotonic())  # registration posted status
            if self.clock.sim(time.monotonic() - last) >= self.STATUS_REPORT_S:
                self._last_status[agent.name] = time.monotonic()
                conds = [dict(c) for c in (agent.node.get("status") or {}).get("conditions") or []]
                stamp = rfc3339()
                for c in conds:
                    c["lastHeartbeatTime"] = stamp
                node = await self.client.patch(
                    R.NODES,
                    agent.name,
                    {"status": {"conditions": conds}},
                    subresource="status",
                    **self.kubelets._patch_kw,
                )
                agent.node = node
        except APIError as exc:
            if exc.code != 404:
                log.debug("heartbeat failed", node=agent.name, error=str(exc))
