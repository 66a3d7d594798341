"""Rebuild an allocation's R against a freshly built graph, for replay after a re-Init (pure).

A stored R names vertices by uniq_id, and uniq_ids shift whenever the graph is rebuilt differently (a node
added, a foreign pod changing how many cores a node offers). What must survive is *what* each node gives
the unit (cores, memory chunks, GPUs, slots), which the queue stores per node; this module picks that many
vertices of each type under the same node in the new graph, never the same vertex twice across replays.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

SLOTS_METADATA_KEY = "fluxqueue.io/slots"


@dataclass
class GraphIndex:
    """Node name -> its vertex uid and its children's uids by type, with a cursor of what replays took."""

    node_uid: dict[str, int] = field(default_factory=dict)
    children: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    taken: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))

    @classmethod
    def of(cls, jgf: dict[str, Any]) -> GraphIndex:
        graph = jgf.get("graph") or {}
        meta_by_id: dict[str, dict] = {}
        for vertex in graph.get("nodes") or []:
            meta_by_id[str(vertex["id"])] = vertex.get("metadata") or {}
        index = cls()
        node_of: dict[str, str] = {}
        for vid, md in meta_by_id.items():
            if md.get("type") == "node":
                name = md.get("name") or f"{md.get('basename')}{md.get('id')}"
                index.node_uid[name] = int(md.get("uniq_id", vid))
                index.children[name] = defaultdict(list)
                node_of[vid] = name
        for edge in graph.get("edges") or []:
            parent = node_of.get(str(edge["source"]))
            if parent is None:
                continue
            md = meta_by_id.get(str(edge["target"])) or {}
            index.children[parent][md.get("type", "")].append(int(md.get("uniq_id", edge["target"])))
        for kinds in index.children.values():
            for uids in kinds.values():
                uids.sort()
        return index


class ReplayError(ValueError):
    """The allocation cannot be expressed in the new graph (a node is gone or offers less)."""


def replay_r(
    index: GraphIndex, shares: list[Any], *, exclusive: bool, memory_chunk_bytes: int
) -> dict[str, Any]:
    """R for ``shares`` (NodeShare rows) in the indexed graph; ReplayError says why it cannot be."""
    picked: list[tuple[int, bool]] = []
    slots: dict[str, int] = {}
    plan: list[tuple[str, str, int]] = []
    for share in shares:
        if share.node not in index.node_uid:
            raise ReplayError(f"node {share.node} is not in the graph")
        need = {
            "core": share.cores,
            "memory": share.memory_bytes // memory_chunk_bytes if memory_chunk_bytes else 0,
            "gpu": share.gpus,
        }
        for kind, count in need.items():
            have = index.children[share.node].get(kind, [])
            start = index.taken[(share.node, kind)]
            if start + count > len(have):
                raise ReplayError(
                    f"node {share.node} offers {len(have) - start} free {kind} vertices, the allocation holds {count}"
                )
            plan.append((share.node, kind, count))
        if exclusive:
            picked.append((index.node_uid[share.node], True))
        if share.slots:
            slots[share.node] = share.slots
    for node, kind, count in plan:
        start = index.taken[(node, kind)]
        picked.extend((uid, True) for uid in index.children[node][kind][start : start + count])
        index.taken[(node, kind)] = start + count
    doc: dict[str, Any] = {
        "graph": {
            "nodes": [
                {"id": str(uid), "metadata": {"uniq_id": uid, "exclusive": excl}} for uid, excl in picked
            ],
            "edges": [],
        }
    }
    if slots:
        doc["graph"]["metadata"] = {SLOTS_METADATA_KEY: slots}
    return doc
