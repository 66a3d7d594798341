"""The interface every workload kind implements, and the owner-chain rules they share (pure, no I/O)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from fluxqueue.kube import names
from fluxqueue.placement.podsets import PodSet
from fluxqueue.placement.units import (
    SchedulingUnit,
    UnitDefaults,
    UserSettings,
    pod_priority,
    workload_duration,
)
from fluxqueue.queue.store import CANCELLED, FAILED, SUCCEEDED

TERMINAL_PHASES = ("Succeeded", "Failed")
Outcome = tuple[str, str]  # (terminal state, reason)


@dataclass(frozen=True)
class UnitRef:
    """Which unit a pod belongs to: the adapter's kind, the wrapped object (or group) and the queue's key."""

    kind: str
    namespace: str
    name: str
    owner_key: str  # units.owner_uid: the wrapped object's uid, or "group:<ns>/<name>" for pod groups


class Workload:
    """One kind of workload. Class attributes describe it; methods are pure functions of its objects.

    Kinds that are an API object (Job, JobSet, MPIJob) set ``api``; the controller watches it and starts the
    unit by patching it. Kinds made of pods only (a bare pod, a pod group) leave it None.
    """

    kind: ClassVar[str]  # stored in units.kind; what `kubectl get fj` shows
    fluxjob_suffix: ClassVar[str]  # the FluxJob is named <object>-<suffix>
    api: ClassVar[tuple[str, str, str] | None] = None  # (group, version, plural) of the object
    api_kind: ClassVar[str] = ""  # the object's kind in ownerReferences and AdmissionRequests
    # Jobs this kind creates belong to it (a JobSet's child Jobs, an MPIJob's launcher): not units of their own.
    creates_jobs: ClassVar[bool] = False
    # Objects of this kind may be another kind's part (a Job a JobSet made): the webhook asks parent_of_job.
    may_be_a_part: ClassVar[bool] = False
    # The unit has no object of its own: its FluxJob is owned by all its pods (gone once the last one is).
    owned_by_members: ClassVar[bool] = False

    # ---- recognising ----------------------------------------------------------------------------------

    def owns_ref(self, ref: dict[str, Any]) -> bool:
        """Whether an ownerReference names an object of this kind."""
        if self.api is None:
            return False
        group, _version, _plural = self.api
        api_version = str(ref.get("apiVersion") or "")
        ref_group = api_version.split("/")[0] if "/" in api_version else ""
        return ref.get("kind") == self.api_kind and ref_group == group

    def unit_of_pod(self, pod: dict[str, Any]) -> UnitRef | None:
        """The unit this kind claims the pod for (a pod of ours), or None."""
        return None

    # ---- what to place ----------------------------------------------------------------------------------

    def unit(self, obj: dict[str, Any], defaults: UnitDefaults) -> SchedulingUnit:
        """The scheduling unit of an object of this kind (raises UnitError for bad settings)."""
        raise NotImplementedError

    def pod_set_of(self, pod: dict[str, Any], sets: tuple[PodSet, ...]) -> str | None:
        """The name of the pod set a pod of the unit fills (None: none of them)."""
        return sets[0].name if len(sets) == 1 else None

    # ---- the object's lifecycle (kinds with ``api``) ----------------------------------------------------

    def suspend_path(self) -> list[str]:
        """Where the object's ``suspend`` flag lives."""
        return ["spec", "suspend"]

    def pod_template_paths(self, obj: dict[str, Any]) -> list[list[str]]:
        """Paths of the object's pod templates (the webhook names our scheduler in each)."""
        return []

    def managed_elsewhere(self, obj: dict[str, Any]) -> str | None:
        """Why another controller manages the object (``spec.managedBy``), or None."""
        return None

    def suspended(self, obj: dict[str, Any]) -> bool:
        return get_path(obj, self.suspend_path()) is True

    def start_patch(self, annotations: dict[str, str]) -> dict[str, Any]:
        """The merge patch that lets the workload's own controller create its pods."""
        return self._suspend_flag_patch(False, annotations)

    @property
    def requeueable(self) -> bool:
        """A preempted unit of this kind is suspended and requeued (an API object with a suspend flag); one made
        of pods only is deleted (a pod cannot be suspended)."""
        return self.api is not None

    def suspend_patch(self) -> dict[str, Any]:
        """The merge patch that suspends a started workload again (preemption): its own controller deletes
        its pods (a Job's are not counted as failures, batch/v1 JobSpec.suspend). The placement annotations
        go, so the webhook tells a user's unsuspend from ours again."""
        return self._suspend_flag_patch(
            True, {names.ANNOTATION_NODES: None, names.ANNOTATION_FLUXION_JOBID: None}
        )

    def _suspend_flag_patch(self, suspend: bool, annotations: dict[str, Any]) -> dict[str, Any]:
        patch: dict[str, Any] = {"metadata": {"annotations": annotations}}
        node: dict[str, Any] = patch
        path = self.suspend_path()
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = suspend
        return patch

    def outcome(self, obj: dict[str, Any]) -> Outcome | None:
        """(state, reason) once the workload has finished; None while it has not."""
        return None

    def started(self, obj: dict[str, Any]) -> bool:
        return False


def unit_of_sets(
    kind: str,
    meta: dict[str, Any],
    settings: UserSettings,
    defaults: UnitDefaults,
    sets: list[PodSet],
    deadline: Any,
    pod_spec: dict[str, Any],
) -> SchedulingUnit:
    """The unit of a workload object made of several pod sets (a JobSet, an MPIJob): its settings from the
    object's labels, its walltime from them or the workload's deadline, its priority from its first pod."""
    return SchedulingUnit(
        kind=kind,
        namespace=meta.get("namespace") or "default",
        name=meta.get("name") or "",
        uid=meta.get("uid") or "",
        size=sum(s.count for s in sets),
        pod_sets=tuple(sets),
        duration=workload_duration(settings, defaults, deadline, pod_spec),
        priority=pod_priority(pod_spec, defaults),
        exclusive=settings.exclusive,
        queue=settings.queue,
        dependency=settings.dependency,
    )


def get_path(obj: Any, path: Iterable[str]) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def controller_ref(meta: dict[str, Any]) -> dict[str, Any] | None:
    """The controller ownerReference (``controller: true``); the one rule every kind uses."""
    for ref in meta.get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller"):
            return ref
    return None


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_ and cond.get("status") == "True":
            return cond
    return None


def workload_annotation(kind: str, name: str, uid: str) -> str:
    """The value of ``fluxqueue.io/workload`` on a child Job's pod template: ``<kind>/<name>/<uid>``."""
    return f"{kind}/{name}/{uid}"


def parse_workload_annotation(value: str | None) -> tuple[str, str, str] | None:
    parts = (value or "").split("/")
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 and all(parts) else None


def annotated_unit(pod: dict[str, Any], kind: str) -> UnitRef | None:
    """The unit named by the pod's ``fluxqueue.io/workload`` annotation, when it names ``kind``."""
    meta = pod.get("metadata") or {}
    parsed = parse_workload_annotation((meta.get("annotations") or {}).get(names.ANNOTATION_WORKLOAD))
    if parsed is None or parsed[0] != kind:
        return None
    return UnitRef(kind, meta.get("namespace") or "default", parsed[1], parsed[2])


def pod_outcome(pod: dict[str, Any]) -> Outcome | None:
    phase = (pod.get("status") or {}).get("phase")
    if phase == "Succeeded":
        return SUCCEEDED, "pod succeeded"
    if phase == "Failed":
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            # Deleted while it ran: its containers were killed, which the kubelet reports as a failure.
            return CANCELLED, "pod deleted"
        status = pod.get("status") or {}
        return FAILED, f"pod failed: {status.get('reason') or status.get('message') or 'error'}"
    return None


def pod_running(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running"
