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

from collections.abc import Callable, Mapping
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
    return _assign(free, pods)


def _assign(free: dict[str, int], pods: list[dict[str, Any]]) -> dict[str, str]:
    """Pods onto ``{node: free slots}`` (nodes by name): bound pods count against their node, never move."""
    free = dict(sorted(free.items()))
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


# --- units of several pod sets ------------------------------------------------------------------------------------

SPLIT_STEPS = 20_000  # search steps before falling back to the greedy split (large heterogeneous units)


def split_allocation(
    nodes: Mapping[str, Any],
    pod_sets: Any,
    memory_chunk_bytes: int = 2**30,
    exclusive: bool = False,
    allows: Callable[[Any, str], bool] | None = None,
) -> dict[str, dict[str, int]]:
    """``{node: {pod set: slots}}``: how the allocation's per-node amounts divide into slots of each set.

    Fluxion's R says what each node gives (cores, memory, GPUs), not which slot shape took what, so the split
    is derived: a deterministic search (sets largest first, nodes by name) for counts whose slots fit each
    node's share, every set filled and, where ``allows`` says so, each set only on nodes its rules allow. The
    same allocation always gives the same split, so a restarted controller binds the same way.
    """
    sets = list(pod_sets)
    names_ = sorted(nodes)
    if len(sets) == 1:
        only = sets[0]
        return {
            n: {only.name: 1 if exclusive else slots_of(nodes[n], only.per_pod, memory_chunk_bytes)}
            for n in names_
        }
    shapes = {s.name: slot_shape(s.per_pod, memory_chunk_bytes) for s in sets}
    order = sorted(
        sets, key=lambda s: (shapes[s.name][2], shapes[s.name][0], shapes[s.name][1], s.name), reverse=True
    )
    left = {
        n: [
            int(nodes[n].cores),
            int(_memory_of(nodes[n]) // memory_chunk_bytes) if memory_chunk_bytes else 0,
            int(nodes[n].gpus),
            1 if exclusive else (int(getattr(nodes[n], "slots", 0)) or 1 << 30),
        ]
        for n in names_
    }
    split: dict[str, dict[str, int]] = {n: {} for n in names_}
    steps = [0]

    def room(n: str, name: str) -> int:
        cores, chunks, gpus = shapes[name]
        have = left[n]
        limits = [have[3]]
        if cores:
            limits.append(have[0] // cores)
        if chunks:
            limits.append(have[1] // chunks)
        if gpus:
            limits.append(have[2] // gpus)
        return max(0, min(limits))

    def take(n: str, name: str, k: int) -> None:
        cores, chunks, gpus = shapes[name]
        have = left[n]
        have[0] -= k * cores
        have[1] -= k * chunks
        have[2] -= k * gpus
        have[3] -= k
        split[n][name] = split[n].get(name, 0) + k
        if not split[n][name]:
            del split[n][name]

    def fill(si: int, ni: int, need: int, exhaustive: bool) -> bool:
        if need == 0:
            return si + 1 == len(order) or fill(si + 1, 0, order[si + 1].count, exhaustive)
        if ni == len(names_):
            return False
        steps[0] += 1
        if exhaustive and steps[0] > SPLIT_STEPS:
            return False
        pod_set, n = order[si], names_[ni]
        most = room(n, pod_set.name) if allows is None or allows(pod_set, n) else 0
        most = min(most, need)
        for k in range(most, -1, -1) if exhaustive else (most,):
            if k:
                take(n, pod_set.name, k)
            if fill(si, ni + 1, need - k, exhaustive):
                return True
            if k:
                take(n, pod_set.name, -k)
        return False

    if not fill(0, 0, order[0].count, True):
        for n in names_:
            for name, k in list(split[n].items()):
                take(n, name, -k)
        fill(0, 0, order[0].count, False)  # greedy: as much as fits, in order (a partial split binds less)
    return split


def _memory_of(share: Any) -> int:
    """Bytes a node gives: a stored NodeShare's ``memory_bytes`` or an R reading's ``memory``."""
    value = getattr(share, "memory_bytes", None)
    return int(value if value is not None else getattr(share, "memory", 0))


def assign_pod_sets(
    split: Mapping[str, Mapping[str, int]],
    pods: list[dict[str, Any]],
    set_of: Callable[[dict[str, Any]], str | None],
) -> dict[str, str]:
    """``{pod name: node}`` for the unbound, unfinished pods, each on a slot of its own set (see assign_pods)."""
    by_set: dict[str, list[dict[str, Any]]] = {}
    for pod in pods:
        name = set_of(pod)
        if name is not None:
            by_set.setdefault(name, []).append(pod)
    result: dict[str, str] = {}
    for name, members in by_set.items():
        free = {node: counts.get(name, 0) for node, counts in split.items() if counts.get(name, 0)}
        result.update(_assign(free, members))
    return result
