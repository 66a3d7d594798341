"""A pod group: pods that name one group (ours ``fluxqueue.io/group-name`` + ``group-size``; Kueue's
``kueue.x-k8s.io/pod-group-name`` + annotation ``pod-group-total-count``; coscheduling's
``scheduling.x-k8s.io/pod-group``) placed all at once when ``size`` members are present.

Its pod sets are built from its members as they join: members with equal requests and placement rules share a
set, whatever order they arrive in. A member is bound to a slot of the set of its own shape."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fluxqueue.kube import names
from fluxqueue.placement.podsets import PodSet, set_for_pod
from fluxqueue.placement.units import KIND_POD_GROUP, SchedulingUnit, UnitDefaults, group_of, unit_from_pod
from fluxqueue.queue.store import CANCELLED, FAILED, SUCCEEDED
from fluxqueue.workloads.base import TERMINAL_PHASES, UnitRef, Workload

GROUP_LABELS = (names.LABEL_GROUP_NAME, names.LABEL_KUEUE_POD_GROUP, names.LABEL_COSCHEDULING_POD_GROUP)


def group_key(namespace: str, group: str) -> str:
    return f"group:{namespace}/{group}"


class PodGroupWorkload(Workload):
    kind = KIND_POD_GROUP
    fluxjob_suffix = "group"
    owned_by_members = True

    def unit_of_pod(self, pod: dict[str, Any]) -> UnitRef | None:
        labels = (pod.get("metadata") or {}).get("labels") or {}
        if not any(key in labels for key in GROUP_LABELS):
            return None  # the common case, decided without reading every setting
        group = group_of(pod)
        if group is None:
            return None
        namespace, name, _size = group
        return UnitRef(self.kind, namespace, name, group_key(namespace, name))

    def unit(
        self, obj: dict[str, Any], defaults: UnitDefaults, group_size: int | None = None
    ) -> SchedulingUnit:
        """The group as one member sees it (its own pod set of one); the store adds members up."""
        return unit_from_pod(obj, defaults, group_size=group_size)

    def pod_set_of(self, pod: dict[str, Any], sets: tuple[PodSet, ...]) -> str | None:
        if len(sets) == 1:
            return sets[0].name  # alike members (most gangs): no shape to compare
        return set_for_pod(sets, pod)


def group_outcome(members: Iterable[dict | None], size: int) -> tuple[str, str] | None:
    """Members as last seen, None for a member that is gone. Finished when no member can still run."""
    members = list(members)
    live = [
        m
        for m in members
        if m is not None
        and (m.get("status") or {}).get("phase") not in TERMINAL_PHASES
        and not (m.get("metadata") or {}).get("deletionTimestamp")
    ]
    if live:
        return None
    present = [m for m in members if m is not None]
    if not present:
        return CANCELLED, "every member of the group was deleted"
    failed = [m for m in present if (m.get("status") or {}).get("phase") == "Failed"]
    gone = len(members) - len(present)
    if failed:
        return FAILED, f"{len(failed)} of {size} members failed"
    if gone or any((m.get("status") or {}).get("phase") != "Succeeded" for m in present):
        return CANCELLED, f"{gone or size} members deleted before they finished"
    return SUCCEEDED, f"all {size} members succeeded"
