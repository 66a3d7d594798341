"""JobSet (``jobset.x-k8s.io/v1alpha2``): one unit with a pod set per replicated job.

The JobSet controller (kubernetes-sigs/jobset, ``pkg/controllers/jobset_controller.go``) creates one child
Job per replica of each replicated job, named ``<jobset>-<replicatedjob>-<index>``, and propagates
``spec.suspend`` to them; their pods carry ``jobset.sigs.k8s.io/replicatedjob-name``. The child Jobs are not
units of their own: the webhook leaves them as the JobSet made them (suspended while it is) and marks their
pod template with the JobSet (``fluxqueue.io/workload``). Finished on the JobSet's ``Completed`` or ``Failed``
condition (``jobset.x-k8s.io/v1alpha2`` JobSetConditionType).
"""

from __future__ import annotations

from typing import Any

from fluxqueue.placement.podsets import PodSet, pod_set_of
from fluxqueue.placement.units import (
    SchedulingUnit,
    UnitDefaults,
    UnitError,
    job_size,
    read_settings,
)
from fluxqueue.queue.store import FAILED, SUCCEEDED
from fluxqueue.workloads.base import Outcome, UnitRef, Workload, annotated_unit, condition, unit_of_sets

KIND_JOBSET = "JobSet"
LABEL_REPLICATED_JOB = "jobset.sigs.k8s.io/replicatedjob-name"


class JobSetWorkload(Workload):
    kind = KIND_JOBSET
    fluxjob_suffix = "jobset"
    api = ("jobset.x-k8s.io", "v1alpha2", "jobsets")
    api_kind = "JobSet"
    creates_jobs = True

    def unit_of_pod(self, pod: dict[str, Any]) -> UnitRef | None:
        return annotated_unit(pod, self.kind)

    def unit(self, obj: dict[str, Any], defaults: UnitDefaults) -> SchedulingUnit:
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        settings = read_settings([meta])
        sets: list[PodSet] = []
        deadlines = []
        first_pod_spec: dict[str, Any] = {}
        for rjob in spec.get("replicatedJobs") or []:
            job_template = rjob.get("template") or {}
            pod_template = (job_template.get("spec") or {}).get("template") or {}
            replicas = rjob.get("replicas")
            replicas = 1 if replicas is None else int(replicas)
            count = replicas * job_size(job_template)
            if count <= 0:
                continue
            sets.append(pod_set_of(str(rjob.get("name") or f"job-{len(sets)}"), count, pod_template))
            deadlines.append((job_template.get("spec") or {}).get("activeDeadlineSeconds"))
            first_pod_spec = first_pod_spec or (pod_template.get("spec") or {})
        if not sets:
            raise UnitError("the JobSet has no replicated job with pods to run")
        deadline = max((d for d in deadlines if isinstance(d, int)), default=None)
        return unit_of_sets(self.kind, meta, settings, defaults, sets, deadline, first_pod_spec)

    def pod_set_of(self, pod: dict[str, Any], sets: tuple[PodSet, ...]) -> str | None:
        return ((pod.get("metadata") or {}).get("labels") or {}).get(LABEL_REPLICATED_JOB)

    def pod_template_paths(self, obj: dict[str, Any]) -> list[list[str]]:
        rjobs = (obj.get("spec") or {}).get("replicatedJobs") or []
        return [["spec", "replicatedJobs", str(i), "template", "spec", "template"] for i in range(len(rjobs))]

    def managed_elsewhere(self, obj: dict[str, Any]) -> str | None:
        managed_by = (obj.get("spec") or {}).get("managedBy")
        return managed_by if managed_by and managed_by != "jobset.sigs.k8s.io/jobset-controller" else None

    def outcome(self, obj: dict[str, Any]) -> Outcome | None:
        if condition(obj, "Completed"):
            return SUCCEEDED, "JobSet completed"
        failed = condition(obj, "Failed")
        if failed:
            return FAILED, f"JobSet failed: {failed.get('message') or failed.get('reason') or 'failed'}"
        return None

    def started(self, obj: dict[str, Any]) -> bool:
        return any(
            (s.get("active") or 0) + (s.get("ready") or 0) + (s.get("succeeded") or 0) > 0
            for s in (obj.get("status") or {}).get("replicatedJobsStatus") or []
        )


__all__ = ["KIND_JOBSET", "JobSetWorkload"]
