"""Which pods are ours, which unit each belongs to, and which count as foreign load (pure, over the caches)."""

from __future__ import annotations

from typing import Any

from fluxqueue.kube import names
from fluxqueue.placement.units import UnitError
from fluxqueue.queue.store import Unit
from fluxqueue.workloads.registry import unit_of_pod

TERMINAL_PHASES = ("Succeeded", "Failed")


def is_ours(pod: dict) -> bool:
    return (pod.get("spec") or {}).get("schedulerName") == names.SCHEDULER_NAME


_HOLDERS: dict[str, str] = {}  # pod uid -> its holder key (a pod's owner chain never changes)
_HOLDERS_MAX = 200_000


def holder_key(pod: dict) -> str:
    """The queue's owner key of the unit a pod of ours belongs to (the workload's uid, the pod's, or a group
    key), through its owner chain (:func:`fluxqueue.workloads.registry.unit_of_pod`). Remembered per pod: it
    is asked on every event of the pod and for every bound pod at each graph rebuild."""
    uid = (pod.get("metadata") or {}).get("uid") or ""
    key = _HOLDERS.get(uid) if uid else None
    if key is None:
        try:
            ref = unit_of_pod(pod)
        except UnitError:
            ref = None
        key = ref.owner_key if ref is not None else uid
        if uid and ref is not None:
            if len(_HOLDERS) >= _HOLDERS_MAX:
                _HOLDERS.clear()
            _HOLDERS[uid] = key
    return key


UNIT_INDEX = "unit"  # the pods informer's index: our pods by holder_key


def unit_index(pod: dict) -> list[str]:
    return [holder_key(pod)] if is_ours(pod) else []


def still_on_nodes(pods: list[dict]) -> list[dict]:
    """The pods still bound to a node and not finished."""
    return [
        p
        for p in pods
        if (p.get("spec") or {}).get("nodeName")
        and (p.get("status") or {}).get("phase") not in TERMINAL_PHASES
    ]


def uids(pods: list[dict]) -> frozenset[str]:
    return frozenset((p.get("metadata") or {}).get("uid") or "" for p in pods)


def foreign_pods(pods: list[dict], holding: set[str] | frozenset[str] = frozenset()) -> list[dict]:
    """Bound, unfinished pods whose resources no allocation of ours accounts for: taken out of the graph.

    That is every pod we do not place, and ours whose unit no longer holds an allocation (a Job that failed
    while its pods still terminate, a group member outliving its group).
    """
    out = []
    for pod in pods:
        spec = pod.get("spec") or {}
        if not spec.get("nodeName"):
            continue
        if is_ours(pod) and holder_key(pod) in holding:
            continue
        if (pod.get("status") or {}).get("phase") in TERMINAL_PHASES:
            continue
        out.append(pod)
    return out


def unit_pods(ctx: Any, unit: Unit) -> list[dict]:
    """The unit's pods, from the pods informer's index."""
    return ctx.pods.by_index(UNIT_INDEX, unit.owner_uid)


def wrapped_objects(ctx: Any, unit: Unit) -> list[dict]:
    """The API object the unit wraps (a Job, JobSet...), or its pods when it is made of pods only."""
    informer = ctx.objects.get(unit.kind)
    if informer is not None:
        obj = informer.get(unit.namespace, unit.object_name)
        return [obj] if obj else []
    return unit_pods(ctx, unit)


def unrecorded_bindings(alloc: Any, pods: list[dict], recorded: set[str]) -> list[tuple[str, str, str]]:
    """(pod, uid, node) of the pods bound to a node of the allocation whose binding is not in ``recorded``."""
    nodes = {n.node for n in alloc.nodes}
    out = []
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        uid = pod["metadata"].get("uid") or ""
        if node in nodes and uid not in recorded:
            out.append((pod["metadata"]["name"], uid, node))
    return out
