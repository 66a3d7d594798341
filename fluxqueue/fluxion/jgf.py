"""Build resource graphs in the JGF that flux-sched's JGF reader accepts (prior-art §7.4).

The controller builds the cluster graph from Kubernetes Nodes with this; tests and benchmarks build synthetic
clusters with it. Conventions chosen so that allocations map back exactly:

* node vertices carry ``name`` = the exact Kubernetes node name (basename ``node``, ``id`` = the node's index),
  so the R that Fluxion returns names the node whatever flux-sched's writer omits (§7.6);
* leaf vertices (core, gpu, memory...) get ids 0..n-1 per parent and the default name basename+id, as
  fluxqueue's Go prototype does, and one containment edge parent -> child (no reverse edges, §6.1);
* ``uniq_id`` = the outer ``id`` = a global counter, contiguous per node, which lets our reader take a fast path.

Usage::

    g = GraphBuilder()
    rack = g.add(g.root, "rack", "rack0")
    n = g.add(rack, "node", "node-003", properties={"zone": "a"})
    g.add_many(n, "core", 32); g.add_many(n, "gpu", 8); g.add_many(n, "memory", 128, size=1, unit="GiB")
    jgf = g.to_jgf()
"""

from __future__ import annotations

import json
from typing import Any

try:  # orjson is optional: several times faster for graphs of a million vertices
    import orjson
except ImportError:  # pragma: no cover - exercised only where orjson is absent
    orjson = None


class GraphBuilder:
    """Accumulates vertices and containment edges; handles are the vertices' integer uniq_ids."""

    def __init__(self, cluster: str = "cluster0", cluster_type: str = "cluster") -> None:
        self._vertices: list[dict[str, Any]] = []
        self._edges: list[tuple[int, int]] = []
        self._paths: list[str] = []
        self._type_counters: dict[str, int] = {}
        self._child_counters: dict[tuple[int, str], int] = {}
        self.root = self._new(None, cluster_type, cluster_type, cluster, 0, -1, 1, "", None)

    def _new(
        self,
        parent: int | None,
        type_: str,
        basename: str,
        name: str,
        vid: int,
        rank: int,
        size: int,
        unit: str,
        properties: dict[str, str] | None,
        exclusive: bool = False,
    ) -> int:
        uniq = len(self._vertices)
        path = f"/{name}" if parent is None else f"{self._paths[parent]}/{name}"
        md: dict[str, Any] = {
            "type": type_,
            "basename": basename,
            "name": name,
            "id": vid,
            "uniq_id": uniq,
            "rank": rank,
            "exclusive": exclusive,
            "unit": unit,
            "size": size,
            "paths": {"containment": path},
        }
        if properties:
            md["properties"] = {str(k): str(v) for k, v in properties.items()}
        self._vertices.append({"id": str(uniq), "metadata": md})
        self._paths.append(path)
        if parent is not None:
            self._edges.append((parent, uniq))
        return uniq

    def add(
        self,
        parent: int,
        type_: str,
        name: str | None = None,
        *,
        properties: dict[str, str] | None = None,
        size: int = 1,
        unit: str = "",
        basename: str | None = None,
        vid: int | None = None,
        rank: int = -1,
    ) -> int:
        """Add one vertex below ``parent``; ids count per type across the graph unless ``vid`` is given."""
        if parent < 0 or parent >= len(self._vertices):
            raise ValueError(f"unknown parent vertex {parent}")
        basename = basename or type_
        if vid is None:
            vid = self._type_counters.get(type_, 0)
            self._type_counters[type_] = vid + 1
        if name is None:
            name = f"{basename}{vid}"
        if "/" in name or not name:
            raise ValueError(f"vertex name {name!r} must be non-empty and contain no '/'")
        return self._new(parent, type_, basename, name, vid, rank, size, unit, properties)

    def add_many(
        self, parent: int, type_: str, count: int, *, size: int = 1, unit: str = "", rank: int = -1
    ) -> range:
        """Add ``count`` leaf vertices numbered 0..count-1 below ``parent`` (per-parent ids, default names)."""
        if parent < 0 or parent >= len(self._vertices):
            raise ValueError(f"unknown parent vertex {parent}")
        start_id = self._child_counters.get((parent, type_), 0)
        self._child_counters[(parent, type_)] = start_id + count
        first = len(self._vertices)
        for i in range(start_id, start_id + count):
            self._new(parent, type_, type_, f"{type_}{i}", i, rank, size, unit, None)
        return range(first, first + count)

    def __len__(self) -> int:
        return len(self._vertices)

    def path(self, handle: int) -> str:
        return self._paths[handle]

    def to_jgf(self) -> dict[str, Any]:
        """The graph as a JGF v1 dict (``nodes`` is a list; edges carry ``subsystem: containment``)."""
        edges = [
            {"source": str(s), "target": str(t), "metadata": {"subsystem": "containment"}}
            for s, t in self._edges
        ]
        return {"graph": {"nodes": list(self._vertices), "edges": edges}}

    def to_json(self) -> str:
        """The JGF as a compact JSON string (what goes into InitRequest.jgf)."""
        return dumps(self.to_jgf())


def dumps(doc: Any) -> str:
    if orjson is not None:
        return orjson.dumps(doc).decode()
    return json.dumps(doc, separators=(",", ":"))


def loads(text: str | bytes) -> Any:
    if orjson is not None:
        return orjson.loads(text)
    return json.loads(text)


def synthetic_cluster(
    nodes: int,
    cores: int = 64,
    gpus: int = 0,
    memory_chunks: int = 16,
    memory_chunk_size: int = 16,
    memory_unit: str = "GiB",
    racks: int = 0,
    node_name: str = "node{index}",
) -> GraphBuilder:
    """A regular cluster: [rack ->] node -> cores, gpus, memory chunks (benchmarks and tests)."""
    g = GraphBuilder()
    parents = [g.add(g.root, "rack", f"rack{r}") for r in range(racks)] if racks else [g.root]
    width = len(str(max(nodes - 1, 0)))
    for i in range(nodes):
        parent = parents[i * len(parents) // nodes] if racks else g.root
        n = g.add(parent, "node", node_name.format(index=i, padded=str(i).zfill(width)), vid=i)
        g.add_many(n, "core", cores)
        if gpus:
            g.add_many(n, "gpu", gpus)
        if memory_chunks:
            g.add_many(n, "memory", memory_chunks, size=memory_chunk_size, unit=memory_unit)
    return g
