"""Which pod goes to which node, given Fluxion's per-node allocation of a unit.

Rules:

* a node takes at most its allocated slot count of the unit's pods; pods already bound to a node
  (``spec.nodeName``) count against that node's slots and are never moved;
* pods are taken in a stable order: by Job completion index (Indexed Jobs,
  ``batch.kubernetes.io/job-completion-index`` annotation or label) then by name; nodes by name. Index ``i``
  therefore lands on the ``i``-th slot, so a restart re-derives the same placement;
* when the allocation does not say how many slots a node holds (``slots == 0``), they are derived from the
  allocated amounts and the per-pod shape (``min(cores // cores per slot, ...)``), as fluence classic does;
  pass ``per_pod`` (the unit's) so this works with R from any Fluxion;
* an exclusive unit holds whole nodes, one pod each (``exclusive=True``), whatever the cores would allow.

Pods that do not fit (more pods than slots, e.g. a replacement pod while the failed one still holds its slot)
are left out of the result: the caller leaves them pending.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fluxqueue.kube import names
from fluxqueue.placement.resources import Resources
from fluxqueue.placement.slots import slot_shape

_TERMINAL = ("Succeeded", "Failed")


def completion_index(pod: dict[str, Any]) -> int | None:
    meta = pod.get("metadata") or {}
    for source in (meta.get("annotations") or {}, meta.get("labels") or {}):
        value = source.get(names.ANNOTATION_JOB_COMPLETION_INDEX)
        if value is not None and str(value).isdigit():
            return int(value)
    return None


def _pod_order(pod: dict[str, Any]) -> tuple[int, int, str]:
    index = completion_index(pod)
    name = (pod.get("metadata") or {}).get("name") or ""
    return (0 if index is not None else 1, index if index is not None else 0, name)


def slots_of(assignment: Any, per_pod: Resources | None, memory_chunk_bytes: int = 2**30) -> int:
    """Slots on one node: as allocated, else derived from the allocated amounts and the pod shape."""
    if getattr(assignment, "slots", 0):
        return int(assignment.slots)
    if per_pod is None:
        return 0
    cores, chunks, gpus = slot_shape(per_pod, memory_chunk_bytes)
    limits = [assignment.cores // cores]
    if chunks:
        limits.append(assignment.memory // (chunks * memory_chunk_bytes))
    if gpus:
        limits.append(assignment.gpus // gpus)
    return max(0, min(limits))


def assign_pods(
    nodes: Mapping[str, Any],
    pods: list[dict[str, Any]],
    per_pod: Resources | None = None,
    memory_chunk_bytes: int = 2**30,
    exclusive: bool = False,
) -> dict[str, str]:
    """``{pod name: node}`` for the unbound, unfinished pods that fit the allocation ``{node: NodeAssignment}``."""
    free = {name: slots_of(a, per_pod, memory_chunk_bytes) for name, a in sorted(nodes.items())}
    if exclusive:
        free = dict.fromkeys(free, 1)
    pending = []
    for pod in sorted(pods, key=_pod_order):
        spec = pod.get("spec") or {}
        if (pod.get("status") or {}).get("phase") in _TERMINAL:
            continue  # a finished pod's slot is free again for its replacement
        bound = spec.get("nodeName")
        if bound:
            if bound in free:
                free[bound] -= 1
            continue
        pending.append(pod)
    result: dict[str, str] = {}
    order = list(free)
    cursor = 0
    for pod in pending:
        while cursor < len(order) and free[order[cursor]] <= 0:
            cursor += 1
        if cursor == len(order):
            break
        node = order[cursor]
        free[node] -= 1
        result[(pod.get("metadata") or {}).get("name") or ""] = node
    return result
