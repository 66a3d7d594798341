"""A bare pod (or a ReplicaSet / StatefulSet / Deployment pod, or any other owner's): its own unit of one pod,
gated at admission and ungated and bound by the controller. Finished on phase Succeeded / Failed."""

from __future__ import annotations

from typing import Any

from fluxqueue.placement.units import KIND_POD, SchedulingUnit, UnitDefaults, unit_from_pod
from fluxqueue.workloads.base import Outcome, UnitRef, Workload, pod_outcome, pod_running


class PodWorkload(Workload):
    kind = KIND_POD
    fluxjob_suffix = "pod"

    def unit_of_pod(self, pod: dict[str, Any]) -> UnitRef | None:
        meta = pod.get("metadata") or {}
        return UnitRef(
            self.kind, meta.get("namespace") or "default", meta.get("name") or "", meta.get("uid") or ""
        )

    def unit(self, obj: dict[str, Any], defaults: UnitDefaults) -> SchedulingUnit:
        return unit_from_pod(obj, defaults)

    def outcome(self, obj: dict[str, Any]) -> Outcome | None:
        return pod_outcome(obj)

    def started(self, obj: dict[str, Any]) -> bool:
        return pod_running(obj)
