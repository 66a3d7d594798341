"""Turn an allocation R (JGF, flux-sched writer format, prior-art §7.6) into per-node amounts.

Works with R from our Fluxion service and from flux-sched's own: node vertices are recognised by ``type ==
"node"``; the node's name is ``name``, else basename+id (the writer omits ``name`` when it equals that), else
the last component of its containment path. Every other vertex is attributed to the node whose path is a
prefix of its own path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fluxqueue.fluxion.jgf import loads

# Memory units as flux-sched graphs use them; flux convention is binary (fluxqueue's Go prototype wrote
# "MB" with size 1024 per GiB), so KB/MB/GB are taken as powers of 1024 too.
_UNIT_BYTES = {
    "": 1,
    "B": 1,
    "KB": 2**10,
    "KiB": 2**10,
    "MB": 2**20,
    "MiB": 2**20,
    "GB": 2**30,
    "GiB": 2**30,
    "TB": 2**40,
    "TiB": 2**40,
}

# Graph-level metadata key under which our server records the number of slots placed on each node (R from
# flux-sched does not say; then slots are derived from ``cores_per_slot``).
SLOTS_METADATA_KEY = "fluxqueue.io/slots"


@dataclass(frozen=True)
class NodeAssignment:
    cores: int = 0
    memory: int = 0  # bytes when the memory vertices carry a known unit, else the summed vertex sizes
    gpus: int = 0
    slots: int = 0


def node_name(md: dict[str, Any]) -> str:
    """The host name of a node vertex's metadata, as flux-sched's writer leaves it (§7.6)."""
    name = md.get("name")
    if name:
        return str(name)
    if "id" in md:
        return f"{md.get('basename') or md.get('type')}{md['id']}"
    return str(md.get("paths", {}).get("containment", "")).rsplit("/", 1)[-1]


def nodes_from_allocation(
    allocation: str | bytes | dict[str, Any], cores_per_slot: int | None = None
) -> dict[str, NodeAssignment]:
    """``{node name: NodeAssignment}`` for every node vertex of R (empty for an empty R)."""
    if isinstance(allocation, str | bytes):
        if not allocation.strip():
            return {}
        allocation = loads(allocation)
    graph = allocation.get("graph") or {}
    vertices = graph.get("nodes") or []
    if isinstance(vertices, dict):  # JGF v2 keyed by id
        vertices = [{"id": k, **v} for k, v in vertices.items()]
    node_paths: dict[str, str] = {}
    for v in vertices:
        md = v.get("metadata") or {}
        if md.get("type") == "node":
            node_paths[md.get("paths", {}).get("containment", "")] = node_name(md)
    totals: dict[str, list[int]] = {name: [0, 0, 0] for name in node_paths.values()}
    for v in vertices:
        md = v.get("metadata") or {}
        kind = md.get("type")
        if kind not in ("core", "gpu", "memory"):
            continue
        path = md.get("paths", {}).get("containment", "")
        owner = _owner(path, node_paths)
        if owner is None:
            continue
        size = int(md.get("size", 1))
        if kind == "core":
            totals[owner][0] += size
        elif kind == "gpu":
            totals[owner][2] += size
        else:
            totals[owner][1] += size * _UNIT_BYTES.get(str(md.get("unit", "")), 1)
    slots_md = (graph.get("metadata") or {}).get(SLOTS_METADATA_KEY) or {}
    result = {}
    for name, (cores, memory, gpus) in totals.items():
        if name in slots_md:
            slots = int(slots_md[name])
        elif cores_per_slot:
            slots = cores // cores_per_slot
        else:
            slots = 0
        result[name] = NodeAssignment(cores=cores, memory=memory, gpus=gpus, slots=slots)
    return result


def _owner(path: str, node_paths: dict[str, str]) -> str | None:
    # Walk up the path; nodes are rarely nested, so this is a few dict lookups.
    while path:
        name = node_paths.get(path)
        if name is not None:
            return name
        cut = path.rfind("/")
        if cut <= 0:
            return None
        path = path[:cut]
    return None
