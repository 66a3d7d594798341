"""The run recorder: fed watch events and the submissions, it keeps what the report needs and checks the
scheduler's invariants while the run goes.

Pure state (no I/O): the harness calls ``pod_event``/``job_event`` with each watch event and a wall-clock
time, ``sample`` periodically, and ``summary()`` at the end. Times are wall seconds from the harness's clock;
the summary converts them to simulated seconds with the time scale (the kubelets run pods that much faster).

Invariants checked:
- over-commit: after every bind, the requests of the node's bound, non-terminal pods must fit its
  allocatable (kube-scheduler's NodeResourcesFit rule; the kubelet's admission applies the same sum);
- gangs: every pod of a multi-pod unit is bound, and all within ``gang_skew`` wall seconds of the first;
- lost: every submitted unit finished (succeeded or failed) before the run ended.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fluxqueue.kube import names
from fluxqueue.kube.quantity import cpu_millis, to_int_ceil
from fluxqueue.placement.resources import Resources, pod_requests
from fluxqueue.sim.workload.model import (
    KIND_GROUP,
    KIND_JOB,
    KIND_JOBSET,
    KIND_MPIJOB,
    KIND_POD,
    WorkloadItem,
    unit_key,
)

TERMINAL = ("Succeeded", "Failed")
# Kinds whose outcome is not their pods' (an MPIJob succeeds with its launcher while cleanPodPolicy kills its
# workers; a JobSet by its success policy): ended when their FluxJob is.
_ENDED_BY_FLUXJOB = (KIND_JOBSET, KIND_MPIJOB)


def _never_satisfied(status: dict[str, Any]) -> bool:
    return status.get("phase") == "Cancelled" and str(status.get("reason") or "").startswith(
        "DependencyNeverSatisfied"
    )


def node_allocatable(node: dict[str, Any]) -> Resources:
    alloc = (node.get("status") or {}).get("allocatable") or {}
    return Resources(
        cpu_millis(alloc.get("cpu", 0)),
        to_int_ceil(alloc.get("memory", 0)),
        to_int_ceil(alloc.get("nvidia.com/gpu", 0)),
        to_int_ceil(alloc.get("pods", 110)),
    )


def pod_unit_key(pod: dict[str, Any]) -> str:
    """Which unit a pod belongs to: its JobSet or MPIJob (by the labels their controllers put on every pod),
    else its Job, else its pod group, else itself."""
    meta = pod.get("metadata") or {}
    ns = meta.get("namespace") or "default"
    labels = meta.get("labels") or {}
    if labels.get("jobset.sigs.k8s.io/jobset-name"):
        return unit_key(KIND_JOBSET, ns, labels["jobset.sigs.k8s.io/jobset-name"])
    if labels.get("training.kubeflow.org/operator-name") == "mpi-operator" and labels.get(
        "training.kubeflow.org/job-name"
    ):
        return unit_key(KIND_MPIJOB, ns, labels["training.kubeflow.org/job-name"])
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == "Job" and ref.get("controller", True):
            return unit_key(KIND_JOB, ns, ref.get("name", ""))
    group = (meta.get("labels") or {}).get(names.LABEL_GROUP_NAME)
    if group:
        return unit_key(KIND_GROUP, ns, group)
    return unit_key(KIND_POD, ns, meta.get("name", ""))


@dataclass
class PodRecord:
    unit: str
    created: float
    request: Resources
    bound: float | None = None
    running: float | None = None
    finished: float | None = None
    node: str | None = None
    phase: str = "Pending"


@dataclass
class UnitRecord:
    key: str
    kind: str
    size: int
    submitted: float
    binds: list[float] = field(default_factory=list)
    first_bound: float | None = None
    finished: float | None = None
    failed: bool = False
    pods_finished: int = 0


@dataclass
class Sample:
    t: float
    cpu_used: int
    gpu_used: int
    queued: int
    running: int
    busy_nodes: int


class Recorder:
    def __init__(self, nodes: dict[str, Resources], time_scale: float = 1.0, gang_skew: float = 5.0) -> None:
        self.nodes = dict(nodes)
        self.time_scale = time_scale
        self.gang_skew = gang_skew
        self.t0: float | None = None
        self.t_end: float | None = None
        self.pods: dict[str, PodRecord] = {}
        self.units: dict[str, UnitRecord] = {}
        self.usage: dict[str, Resources] = {}
        self.cpu_used = 0
        self.gpu_used = 0
        self.samples: list[Sample] = []
        self.overcommits: list[dict[str, Any]] = []
        self._over: set[str] = set()
        self.rejections: list[dict[str, Any]] = []
        self.unqueued: list[dict[str, Any]] = []
        self.fluxjob_phases: dict[str, str] = {}
        # Exact time integral of allocated CPU, for mean utilisation without sampling error.
        self._cpu_integral = 0.0
        self._gpu_integral = 0.0
        self._last_change: float | None = None
        self.total_cpu = sum(r.cpu_milli for r in self.nodes.values())
        self.total_gpu = sum(r.gpus for r in self.nodes.values())

    # --- inputs ------------------------------------------------------------------------------------------

    def start(self, t: float) -> None:
        self.t0 = t
        self._last_change = t

    def add_node(self, name: str, allocatable: Resources) -> None:
        old = self.nodes.get(name)
        if old is not None:
            self.total_cpu -= old.cpu_milli
            self.total_gpu -= old.gpus
        self.nodes[name] = allocatable
        self.total_cpu += allocatable.cpu_milli
        self.total_gpu += allocatable.gpus

    def submitted(self, item: WorkloadItem, t: float) -> None:
        if item.pods <= 0:
            return
        self.units.setdefault(item.key, UnitRecord(item.key, item.kind, item.pods, t))

    def _advance(self, t: float) -> None:
        if self._last_change is None:
            self._last_change = t
        dt = max(0.0, t - self._last_change)
        self._cpu_integral += dt * self.cpu_used
        self._gpu_integral += dt * self.gpu_used
        self._last_change = max(self._last_change, t)

    def pod_event(self, kind: str, pod: dict[str, Any], t: float) -> None:
        meta = pod.get("metadata") or {}
        key = meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}"
        rec = self.pods.get(key)
        if rec is None:
            if kind == "DELETED":
                return
            rec = PodRecord(pod_unit_key(pod), t, pod_requests(pod))
            self.pods[key] = rec
            scheduler = (pod.get("spec") or {}).get("schedulerName")
            if rec.unit in self.units and scheduler != names.SCHEDULER_NAME:
                # The webhook did not take it (timed out under failurePolicy Ignore, or skipped it): another
                # scheduler places it, outside the queue and its gang and capacity guarantees.
                self.unqueued.append({"unit": rec.unit, "pod": f"{meta.get('namespace')}/{meta.get('name')}"})
        spec = pod.get("spec") or {}
        status = pod.get("status") or {}
        node = spec.get("nodeName")
        if node and rec.bound is None:
            rec.bound = t
            rec.node = node
            self._bind(rec, node, pod, t)
        phase = status.get("phase") or rec.phase
        rec.phase = phase
        if phase == "Running" and rec.running is None:
            rec.running = t
        if (phase in TERMINAL or kind == "DELETED") and rec.finished is None:
            rec.finished = t
            if rec.node is not None:
                self._release(rec, t)
            unit = self.units.get(rec.unit)
            if unit is not None:
                unit.pods_finished += 1
                if unit.kind in _ENDED_BY_FLUXJOB:
                    return  # its outcome is its own (a launcher's), not its pods': see fluxjob_event
                if phase == "Failed":
                    unit.failed = True
                if unit.kind != KIND_JOB and unit.finished is None and unit.pods_finished >= unit.size:
                    unit.finished = t

    def _bind(self, rec: PodRecord, node: str, pod: dict[str, Any], t: float) -> None:
        self._advance(t)
        used = self.usage.get(node, Resources(0, 0, 0, 0)) + rec.request
        self.usage[node] = used
        self.cpu_used += rec.request.cpu_milli
        self.gpu_used += rec.request.gpus
        alloc = self.nodes.get(node)
        if alloc is not None and node not in self._over:
            over = [
                what
                for what, u, a in (
                    ("cpu", used.cpu_milli, alloc.cpu_milli),
                    ("memory", used.memory, alloc.memory),
                    ("gpu", used.gpus, alloc.gpus),
                    ("pods", used.pods, alloc.pods),
                )
                if u > a
            ]
            if over:
                self._over.add(node)
                meta = pod.get("metadata") or {}
                self.overcommits.append(
                    {
                        "node": node,
                        "time": self.sim_time(t),
                        "pod": f"{meta.get('namespace')}/{meta.get('name')}",
                        "resources": over,
                        "requested": {"cpu_milli": used.cpu_milli, "memory": used.memory, "gpus": used.gpus},
                        "allocatable": {
                            "cpu_milli": alloc.cpu_milli,
                            "memory": alloc.memory,
                            "gpus": alloc.gpus,
                        },
                    }
                )
        unit = self.units.get(rec.unit)
        if unit is not None and len(unit.binds) < unit.size:
            unit.binds.append(t)
            if unit.first_bound is None:
                unit.first_bound = t

    def _release(self, rec: PodRecord, t: float) -> None:
        self._advance(t)
        node = rec.node or ""
        used = self.usage.get(node, Resources(0, 0, 0, 0)) - rec.request
        self.usage[node] = used
        self.cpu_used -= rec.request.cpu_milli
        self.gpu_used -= rec.request.gpus
        alloc = self.nodes.get(node)
        if node in self._over and alloc is not None and used.cpu_milli <= alloc.cpu_milli:
            self._over.discard(node)

    def job_event(self, kind: str, job: dict[str, Any], t: float) -> None:
        meta = job.get("metadata") or {}
        unit = self.units.get(unit_key(KIND_JOB, meta.get("namespace") or "default", meta.get("name", "")))
        if unit is None or unit.finished is not None:
            return
        for cond in (job.get("status") or {}).get("conditions") or []:
            if cond.get("status") == "True" and cond.get("type") in ("Complete", "Failed"):
                unit.finished = t
                unit.failed = cond["type"] == "Failed"
                return
        if kind == "DELETED":
            unit.finished = t

    def fluxjob_event(self, kind: str, fluxjob: dict[str, Any], t: float) -> None:
        """The user-facing record of a unit: its phase and reason explain a stuck unit in the timeout report."""
        meta = fluxjob.get("metadata") or {}
        ns = meta.get("namespace") or "default"
        spec = fluxjob.get("spec") or {}
        key = None
        if spec.get("group"):
            key = unit_key(KIND_GROUP, ns, spec["group"])
        else:
            for ref in meta.get("ownerReferences") or []:
                if ref.get("kind") in (KIND_JOB, KIND_POD, KIND_JOBSET, KIND_MPIJOB):
                    key = unit_key(ref["kind"], ns, ref.get("name", ""))
                    break
        status = fluxjob.get("status") or {}
        if key is not None and status.get("phase"):
            self.fluxjob_phases[key] = f"{status['phase']}: {status.get('reason') or ''}".strip(": ")
            unit = self.units.get(key)
            phase = status["phase"]
            if unit is not None and unit.kind in _ENDED_BY_FLUXJOB and unit.finished is None:
                if phase in ("Succeeded", "Failed", "Cancelled", "Unsatisfiable"):
                    unit.finished = t
                    unit.failed = phase != "Succeeded"
            elif unit is not None and unit.finished is None and _never_satisfied(status):
                # Its dependency can never hold: the workload stays suspended (or gated) and never runs, so
                # nothing of its own would ever end it.
                unit.finished = t
                unit.failed = True

    def add_rejections(self, rejections: list[dict[str, Any]]) -> None:
        """Kubelet admission rejections (OutOfcpu, ...): the node-side evidence of an over-commit."""
        self.rejections = [dict(r) for r in rejections]

    def sample(self, t: float) -> Sample:
        queued = running = 0
        for unit in self.units.values():
            if unit.finished is not None:
                continue
            if unit.first_bound is None:
                queued += 1
            else:
                running += 1
        busy = sum(1 for u in self.usage.values() if u.pods > 0)
        s = Sample(t, self.cpu_used, self.gpu_used, queued, running, busy)
        self.samples.append(s)
        return s

    # --- progress ----------------------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        done = sum(1 for u in self.units.values() if u.finished is not None)
        queued = sum(1 for u in self.units.values() if u.finished is None and u.first_bound is None)
        return {"done": done, "queued": queued, "running": len(self.units) - done - queued}

    def all_finished(self) -> bool:
        return all(u.finished is not None for u in self.units.values())

    def sim_time(self, t: float) -> float:
        return (t - (self.t0 or 0.0)) * self.time_scale

    def stuck(self, limit: int = 10) -> list[dict[str, Any]]:
        """Unfinished units, with what their pods are doing (for a timeout message)."""
        pods_by_unit: dict[str, list[PodRecord]] = {}
        for p in self.pods.values():
            pods_by_unit.setdefault(p.unit, []).append(p)
        out = []
        for unit in self.units.values():
            if unit.finished is not None:
                continue
            pods = pods_by_unit.get(unit.key, [])
            out.append(
                {
                    "unit": unit.key,
                    "size": unit.size,
                    "pods_seen": len(pods),
                    "pods_bound": sum(1 for p in pods if p.bound is not None),
                    "phases": sorted({p.phase for p in pods}),
                    "fluxjob": self.fluxjob_phases.get(unit.key),
                }
            )
            if len(out) >= limit:
                break
        return out

    def finish(self, t: float) -> None:
        self._advance(t)
        self.t_end = t
