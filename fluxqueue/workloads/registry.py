"""The workload kinds fluxqueue knows, and the owner-chain lookup over them (which unit a pod is in)."""

from __future__ import annotations

from typing import Any

from fluxqueue.kube import names
from fluxqueue.workloads.base import UnitRef, Workload, controller_ref
from fluxqueue.workloads.job import JobWorkload
from fluxqueue.workloads.jobset import JobSetWorkload
from fluxqueue.workloads.mpijob import MPIJobWorkload
from fluxqueue.workloads.pod import PodWorkload
from fluxqueue.workloads.podgroup import PodGroupWorkload

# One line per kind. Order matters for pods: the first kind that claims a pod is its unit's (a workload's
# pods before group labels, group labels before "a pod of its own").
KINDS: tuple[Workload, ...] = (
    JobSetWorkload(),
    MPIJobWorkload(),
    JobWorkload(),
    PodGroupWorkload(),
    PodWorkload(),
)
BY_KIND: dict[str, Workload] = {w.kind: w for w in KINDS}
OBJECT_KINDS: tuple[Workload, ...] = tuple(w for w in KINDS if w.api is not None)  # watched, started by patch
BY_API_KIND: dict[tuple[str, str], Workload] = {(w.api[0], w.api_kind): w for w in OBJECT_KINDS if w.api}


def workload(kind: str) -> Workload:
    return BY_KIND[kind]


def workload_of_object(group: str, api_kind: str) -> Workload | None:
    """The adapter for an API object (an AdmissionRequest's kind, a watched resource)."""
    return BY_API_KIND.get((group, api_kind))


def parent_of_job(job: dict[str, Any]) -> Workload | None:
    """The kind that created this Job as part of itself (a JobSet's child Job, an MPIJob's launcher)."""
    ref = controller_ref(job.get("metadata") or {})
    if ref is None:
        return None
    return next((w for w in OBJECT_KINDS if w.creates_jobs and w.owns_ref(ref)), None)


def unit_of_pod(pod: dict[str, Any], scheduler_name: str = names.SCHEDULER_NAME) -> UnitRef | None:
    """The unit a pod of ours belongs to (None: not ours). Raises UnitError for group labels the webhook would
    have refused. The one answer to "which unit owns this pod", for the webhook, the reactor and the index."""
    if (pod.get("spec") or {}).get("schedulerName") != scheduler_name:
        return None
    for kind in KINDS:
        ref = kind.unit_of_pod(pod)
        if ref is not None:
            return ref
    return None
