"""Kubeflow MPIJob (``kubeflow.org/v2beta1``): launcher and workers as one unit, two pod sets.

The MPI operator v2 (kubeflow/mpi-operator, ``pkg/controller/mpi_job_controller.go``) runs the launcher as a
Job ``<name>-launcher`` and the workers as pods ``<name>-worker-<i>`` it owns, labelled
``training.kubeflow.org/job-role`` (``launcher`` / ``worker``); while ``spec.runPolicy.suspend`` is true it
keeps the launcher Job suspended and creates no workers. Finished on the MPIJob's ``Succeeded`` or ``Failed``
condition (the launcher's outcome).
"""

from __future__ import annotations

from typing import Any

from fluxqueue.placement.podsets import PodSet, pod_set_of
from fluxqueue.placement.units import (
    SchedulingUnit,
    UnitDefaults,
    UnitError,
    read_settings,
)
from fluxqueue.queue.store import FAILED, SUCCEEDED
from fluxqueue.workloads.base import (
    Outcome,
    UnitRef,
    Workload,
    annotated_unit,
    condition,
    controller_ref,
    unit_of_sets,
)

KIND_MPIJOB = "MPIJob"
LABEL_ROLE = "training.kubeflow.org/job-role"
ROLES = (("Launcher", "launcher"), ("Worker", "worker"))


class MPIJobWorkload(Workload):
    kind = KIND_MPIJOB
    fluxjob_suffix = "mpijob"
    api = ("kubeflow.org", "v2beta1", "mpijobs")
    api_kind = "MPIJob"
    creates_jobs = True

    def unit_of_pod(self, pod: dict[str, Any]) -> UnitRef | None:
        meta = pod.get("metadata") or {}
        ref = controller_ref(meta)
        if ref is not None and self.owns_ref(ref):  # a worker: the operator creates it itself
            return UnitRef(
                self.kind, meta.get("namespace") or "default", ref.get("name") or "", ref.get("uid") or ""
            )
        return annotated_unit(pod, self.kind)  # the launcher: a pod of the launcher Job

    def unit(self, obj: dict[str, Any], defaults: UnitDefaults) -> SchedulingUnit:
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        settings = read_settings([meta])
        replica_specs = spec.get("mpiReplicaSpecs") or {}
        sets: list[PodSet] = []
        first_pod_spec: dict[str, Any] = {}
        for key, role in ROLES:
            replica = replica_specs.get(key) or {}
            template = replica.get("template") or {}
            replicas = replica.get("replicas")
            count = (1 if key == "Launcher" else 0) if replicas is None else int(replicas)
            if count > 0 and template:
                sets.append(pod_set_of(role, count, template))
                first_pod_spec = first_pod_spec or (template.get("spec") or {})
        if not sets:
            raise UnitError("the MPIJob has no launcher or worker pods to run")
        deadline = (spec.get("runPolicy") or {}).get("activeDeadlineSeconds")
        return unit_of_sets(self.kind, meta, settings, defaults, sets, deadline, first_pod_spec)

    def pod_set_of(self, pod: dict[str, Any], sets: tuple[PodSet, ...]) -> str | None:
        return ((pod.get("metadata") or {}).get("labels") or {}).get(LABEL_ROLE)

    def suspend_path(self) -> list[str]:
        return ["spec", "runPolicy", "suspend"]

    def pod_template_paths(self, obj: dict[str, Any]) -> list[list[str]]:
        replica_specs = (obj.get("spec") or {}).get("mpiReplicaSpecs") or {}
        return [["spec", "mpiReplicaSpecs", key, "template"] for key, _ in ROLES if key in replica_specs]

    def managed_elsewhere(self, obj: dict[str, Any]) -> str | None:
        managed_by = ((obj.get("spec") or {}).get("runPolicy") or {}).get("managedBy")
        return managed_by if managed_by and managed_by != "kubeflow.org/mpi-operator" else None

    def outcome(self, obj: dict[str, Any]) -> Outcome | None:
        if condition(obj, "Succeeded"):
            return SUCCEEDED, "MPIJob succeeded"
        failed = condition(obj, "Failed")
        if failed:
            return FAILED, f"MPIJob failed: {failed.get('message') or failed.get('reason') or 'failed'}"
        return None

    def started(self, obj: dict[str, Any]) -> bool:
        return condition(obj, "Running") is not None
