"""The resource graph the matcher works on, independent of JGF (flux-sched: resource_graph_t).

Memory stays linear in the number of *non-leaf* vertices: a node's leaves of one kind (its cores, its GPUs,
its memory chunks) form one `Pool` whose members are bits of a Python int. A pool laid out regularly (ids
0..n-1, contiguous uniq_ids, default names and paths, which is what `GraphBuilder` and most flux-sched test
graphs produce) stores four integers instead of one object per member; irregular pools keep per-member lists.

Allocation state lives on the model as *spans* (flux-sched's planner, without a wall clock, §7.3): an
allocation occupies [0, end), a reservation [start, end). Leaves inside a slot are always exclusive, so the
members a job holds in a pool are a bitmask; non-leaf vertices record which jobs use them and whether
exclusively.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

UP, DOWN, DRAIN = "up", "down", "drain"


@dataclass(slots=True)
class Span:
    start: int
    end: int
    excl: bool = False
    mask: int = 0  # pool members held (pools only)


class Pool:
    """Leaf vertices of one type and uniform attributes under one parent: member i is bit i.

    Members are ordered by (id, uniq_id) ascending, so "low" policies take low bits and "high" ones high bits.
    """

    __slots__ = (
        "all_mask",
        "basename",
        "count",
        "down_mask",
        "id_base",
        "ids",
        "n_res",
        "names",
        "now_mask",
        "parent",
        "paths",
        "properties",
        "rank",
        "rtext",
        "size",
        "slot_cache",
        "spans",
        "type",
        "uid_base",
        "uids",
        "unit",
    )

    def __init__(self, parent: Vertex, type_: str, basename: str, size: int, unit: str, rank: int) -> None:
        self.parent = parent
        self.type = type_
        self.basename = basename
        self.size = size
        self.unit = unit
        self.rank = rank
        self.properties: dict[str, str] | None = None
        self.count = 0
        self.uid_base = 0
        self.id_base = 0
        self.uids: list[int] | None = None  # irregular layout: per-member uniq_ids
        # dfu.py's last slot edge groups of this pool and what they were made from (see _one_pool_slots)
        self.slot_cache: tuple | None = None
        self.ids: list[int] | None = None
        self.names: list[str] | None = None  # per-member names when any differs from basename+id
        self.paths: list[str] | None = None  # per-member paths when any differs from parent path + "/" + name
        self.all_mask = 0
        self.down_mask = 0
        self.now_mask = 0  # members held by allocations (spans starting at 0)
        self.spans: dict[int, Span] = {}
        self.n_res = 0  # spans that are reservations (start > 0)
        self.rtext: tuple | None = None  # the writer's templates for members of this pool, made when needed

    def uid(self, i: int) -> int:
        return self.uids[i] if self.uids is not None else self.uid_base + i

    def vid(self, i: int) -> int:
        return self.ids[i] if self.ids is not None else self.id_base + i

    def name(self, i: int) -> str:
        if self.names is not None:
            return self.names[i]
        return f"{self.basename}{self.vid(i)}"

    def path(self, i: int) -> str:
        if self.paths is not None:
            return self.paths[i]
        return f"{self.parent.path}/{self.name(i)}"

    def busy_mask(self, start: int, end: int) -> int:
        """Members held by any span overlapping [start, end)."""
        if start == 0 and self.n_res == 0:
            return self.now_mask
        mask = 0
        for s in self.spans.values():
            if s.start < end and s.end > start:
                mask |= s.mask
        return mask

    @property
    def capacity(self) -> int:
        return self.count * self.size


class Vertex:
    """A non-leaf vertex (cluster, rack, node, socket...), or a leaf that could not be pooled."""

    __slots__ = (
        "basename",
        "cap",
        "children",
        "ctypes",
        "free",
        "index",
        "n_excl",
        "n_now",
        "n_res",
        "name",
        "parent",
        "path",
        "pools",
        "properties",
        "rank",
        "rtext",
        "size",
        "slot_cache",
        "spans",
        "status",
        "type",
        "uid",
        "unit",
        "vid",
        "x_now",
    )

    def __init__(
        self,
        uid: int,
        type_: str,
        basename: str,
        name: str,
        vid: int,
        rank: int,
        size: int,
        unit: str,
        path: str,
        properties: dict[str, str] | None,
        status: str = UP,
    ) -> None:
        self.uid = uid
        self.type = type_
        self.basename = basename
        self.name = name
        self.vid = vid
        self.rank = rank
        self.size = size
        self.unit = unit
        self.path = path
        self.properties = properties
        self.status = status
        self.parent: Vertex | None = None
        self.children: list[Vertex] = []  # ordered by (vid, uid) ascending
        self.pools: list[Pool] = []  # ordered by (type, first member id)
        self.ctypes: frozenset[str] = frozenset()  # types of direct children (slot hosting test)
        self.cap: dict[str, int] = {}  # amount of each leaf type below, and count of each vertex type below
        self.free: dict[str, int] = {}  # leaf amounts not held by allocations now (an upper bound at t=0)
        self.spans: dict[int, Span] = {}
        self.n_now = 0  # allocation spans (start 0)
        self.x_now = False  # an allocation holds this vertex exclusively
        self.n_res = 0
        self.n_excl = 0  # exclusive spans of any time (lets blocked() skip the span scan)
        self.index = 0  # position in parent.children
        self.rtext: tuple | None = None  # the writer's text of this vertex, made when first written
        # dfu.py's last slot edge groups made on this vertex and what they were made from (see Select.dom_slot)
        self.slot_cache: tuple | None = None

    def reindex(self) -> None:
        """Recompute children's indexes after the children changed."""
        for i, c in enumerate(self.children):
            c.index = i

    @property
    def nonzero(self) -> dict[str, int]:
        """type -> bitmask over children (by index) with some of that type free. Computed when asked: no
        walk reads it (flux-sched visits children by by_outedges order), so it is not kept up to date."""
        nz: dict[str, int] = {}
        for c in self.children:
            bit = 1 << c.index
            for t, a in c.free.items():
                if a > 0:
                    nz[t] = nz.get(t, 0) | bit
        return nz

    def __repr__(self) -> str:
        return f"<Vertex {self.type} {self.name} uid={self.uid}>"

    def blocked(self, start: int, end: int) -> bool:
        """Held exclusively by a span overlapping [start, end): nothing below may be used."""
        if start == 0 and self.n_res == 0:
            return self.x_now
        if self.n_excl == 0:
            return False
        return any(s.excl and s.start < end and s.end > start for s in self.spans.values())

    def used(self, start: int, end: int) -> bool:
        """Used at all by a span overlapping [start, end): it cannot be taken exclusively."""
        if start == 0 and self.n_res == 0:
            return self.n_now > 0
        return any(s.start < end and s.end > start for s in self.spans.values())

    def ancestors(self):
        v = self
        while v is not None:
            yield v
            v = v.parent

    def child_types(self) -> set[str]:
        return {c.type for c in self.children} | {p.type for p in self.pools}


class ResourceGraph:
    """Vertices by uniq_id and node name, plus the counts Stats reports."""

    def __init__(self, root: Vertex) -> None:
        self.root = root
        self.by_uid: dict[int, Vertex] = {}
        self.pools_by_uid: list[tuple[int, int, Pool]] = []  # (first uid, last uid, pool) for regular pools
        self.pool_of_uid: dict[int, tuple[Pool, int]] = {}  # irregular pools
        self.nodes: dict[str, Vertex] = {}
        self.n_vertices = 0
        self.n_edges = 0
        self._sorted = True

    def register(self, v: Vertex) -> None:
        self.by_uid[v.uid] = v
        if v.type == "node":
            self.nodes[v.name] = v

    def register_pool(self, p: Pool) -> None:
        if p.uids is None:
            self.pools_by_uid.append((p.uid_base, p.uid_base + p.count - 1, p))
            self._sorted = False
        else:
            for i, u in enumerate(p.uids):
                self.pool_of_uid[u] = (p, i)

    def find_leaf(self, uid: int) -> tuple[Pool, int] | None:
        hit = self.pool_of_uid.get(uid)
        if hit is not None:
            return hit
        if not self._sorted:
            self.pools_by_uid.sort(key=lambda t: t[0])
            self._sorted = True
        import bisect

        i = bisect.bisect_right(self.pools_by_uid, uid, key=lambda t: t[0]) - 1
        if i >= 0:
            lo, hi, p = self.pools_by_uid[i]
            if lo <= uid <= hi and p.parent is not None and p in p.parent.pools:
                return p, uid - lo
        return None

    def vertices(self):
        stack = [self.root]
        while stack:
            v = stack.pop()
            yield v
            stack.extend(v.children)

    def summary(self) -> dict[str, Any]:
        return {"vertices": self.n_vertices, "edges": self.n_edges, "nodes": len(self.nodes)}
