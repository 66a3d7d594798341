"""``batch/v1`` Job: one pod set of ``parallelism`` pods (capped by completions), suspended through
``spec.suspend``. Finished on its ``Complete`` or ``Failed`` condition (batch/v1 JobCondition;
``SuccessCriteriaMet`` and ``FailureTarget`` come first in 1.31+, but only the final ones mean the pods are
gone or terminating)."""

from __future__ import annotations

from typing import Any

from fluxqueue.placement.units import KIND_JOB, SchedulingUnit, UnitDefaults, unit_from_job
from fluxqueue.queue.store import FAILED, SUCCEEDED
from fluxqueue.workloads.base import Outcome, UnitRef, Workload, condition, controller_ref

JOB_CONTROLLER = "kubernetes.io/job-controller"


class JobWorkload(Workload):
    kind = KIND_JOB
    fluxjob_suffix = "job"
    api = ("batch", "v1", "jobs")
    api_kind = "Job"
    may_be_a_part = True

    def unit_of_pod(self, pod: dict[str, Any]) -> UnitRef | None:
        meta = pod.get("metadata") or {}
        ref = controller_ref(meta)
        if ref is None or not self.owns_ref(ref):
            return None
        return UnitRef(
            self.kind, meta.get("namespace") or "default", ref.get("name") or "", ref.get("uid") or ""
        )

    def unit(self, obj: dict[str, Any], defaults: UnitDefaults) -> SchedulingUnit:
        return unit_from_job(obj, defaults)

    def pod_template_paths(self, obj: dict[str, Any]) -> list[list[str]]:
        return [["spec", "template"]]

    def managed_elsewhere(self, obj: dict[str, Any]) -> str | None:
        managed_by = (obj.get("spec") or {}).get("managedBy")
        return managed_by if managed_by and managed_by != JOB_CONTROLLER else None

    def outcome(self, obj: dict[str, Any]) -> Outcome | None:
        if condition(obj, "Complete"):
            succeeded = (obj.get("status") or {}).get("succeeded") or 0
            return SUCCEEDED, f"Job completed ({succeeded} pods succeeded)"
        failed = condition(obj, "Failed")
        if failed:
            return FAILED, f"Job failed: {failed.get('message') or failed.get('reason') or 'Job failed'}"
        return None

    def started(self, obj: dict[str, Any]) -> bool:
        status = obj.get("status") or {}
        return bool(
            status.get("active") or status.get("ready") or status.get("succeeded") or status.get("failed")
        )
