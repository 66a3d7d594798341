"""Read JGF into a `ResourceGraph`, as flux-sched's JGF reader does (resource_reader_jgf.cpp, prior-art §7.4).

Vertex: ``id`` (string) and ``metadata`` with ``type`` and ``paths.containment`` are required; ``basename``
(default type), ``name`` (default basename+id), ``id`` (default uniq_id), ``uniq_id`` (default int(outer id)),
``rank`` (-1), ``status``, ``exclusive``, ``unit`` (""), ``size`` (1) and ``properties`` are optional. Edges
with ``metadata.subsystem`` other than ``containment`` are ignored. JGF v2 (``nodes`` keyed by id) is read
too, although flux-sched rejects it.

Speed: a million-vertex graph is read with a handful of list comprehensions over the parsed JSON (one pass
per field, in C) rather than a Python loop doing everything per vertex; leaves are grouped into pools by
consecutive runs, which is how every generator we know lays them out. Anything malformed falls back to a
careful pass whose error message names the offending vertex or edge.
"""

from __future__ import annotations

from itertools import groupby
from operator import itemgetter, methodcaller
from typing import Any

from fluxqueue.fluxion.jgf import loads
from fluxqueue.fluxion.matcher.graph import DOWN, UP, Pool, ResourceGraph, Vertex

# Vertex types that stay full vertices even without children: constraints and node status apply to them.
_CONTAINMENT = {"subsystem": "containment"}
NODE_TYPES = frozenset({"node", "storage_node"})


class JGFError(ValueError):
    """The graph cannot be read; the message says what is wrong and where."""


def parse_jgf(doc: str | bytes | dict[str, Any]) -> dict[str, Any]:
    if isinstance(doc, str | bytes):
        if not doc or not doc.strip():
            raise JGFError("empty JGF")
        try:
            doc = loads(doc)
        except ValueError as exc:
            raise JGFError(f"JGF is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise JGFError("JGF must be a JSON object with a 'graph' key")
    graph = doc.get("graph")
    if not isinstance(graph, dict):
        raise JGFError("JGF has no 'graph' object")
    return graph


def read_jgf(doc: str | bytes | dict[str, Any]) -> ResourceGraph:
    if isinstance(doc, str | bytes):
        from fluxqueue.fluxion.matcher.fastjgf import try_read_compact

        fast = try_read_compact(doc)
        if fast is not None:
            return fast
    graph = parse_jgf(doc)
    vertices, edges = _vertices_and_edges(graph)
    if not vertices:
        raise JGFError("JGF graph has no vertices")
    cols = _columns(vertices)
    parent = _parents(cols["key"], edges)
    return _build(cols, parent, len(edges))


def _vertices_and_edges(graph: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    vertices = graph.get("nodes")
    if isinstance(vertices, dict):  # JGF v2: nodes keyed by id
        vertices = [{"id": k, **(v if isinstance(v, dict) else {})} for k, v in vertices.items()]
    if not isinstance(vertices, list):
        raise JGFError("JGF 'graph.nodes' must be a list of vertices")
    edges = graph.get("edges", [])
    if not isinstance(edges, list):
        raise JGFError("JGF 'graph.edges' must be a list")
    return vertices, edges


def _columns(vertices: list[Any]) -> dict[str, list[Any]]:
    """One list per field; raises JGFError naming the first malformed vertex."""
    try:
        # map(itemgetter) runs in C: no Python frame per vertex.
        keys = list(map(itemgetter("id"), vertices))
        mds = list(map(itemgetter("metadata"), vertices))
        types = list(map(itemgetter("type"), mds))
        paths = list(map(itemgetter("containment"), map(itemgetter("paths"), mds)))
    except (KeyError, TypeError):
        _diagnose_vertices(vertices)
        raise JGFError("malformed vertex") from None  # _diagnose_vertices always raises first
    if not all(type(k) is str for k in keys):
        keys = [_vertex_key(v, i) for i, v in enumerate(vertices)]
    cols: dict[str, list[Any]] = {"key": keys, "md": mds, "type": types, "path": paths}
    return cols


def _vertex_key(v: Any, i: int) -> str:
    k = v["id"]
    if isinstance(k, bool) or not isinstance(k, str | int):
        raise JGFError(f"vertex {i}: 'id' must be a string, got {k!r}")
    return str(k)


def _diagnose_vertices(vertices: list[Any]) -> None:
    for i, v in enumerate(vertices):
        if not isinstance(v, dict):
            raise JGFError(f"vertex {i} is not an object")
        if "id" not in v:
            raise JGFError(f"vertex {i} has no 'id'")
        md = v.get("metadata")
        if not isinstance(md, dict):
            raise JGFError(f"vertex {v['id']!r} has no 'metadata' object")
        if not isinstance(md.get("type"), str) or not md["type"]:
            raise JGFError(f"vertex {v['id']!r} has no 'metadata.type'")
        paths = md.get("paths")
        if not isinstance(paths, dict) or not isinstance(paths.get("containment"), str):
            raise JGFError(f"vertex {v['id']!r} has no 'metadata.paths.containment'")


def _parents(keys: list[str], edges: list[Any]) -> list[int]:
    n = len(keys)
    # Fast path: outer ids are "0".."n-1" in order, as GraphBuilder and flux-sched's writer produce.
    sequential = keys[0] == "0" and keys[-1] == str(n - 1) and keys == [str(i) for i in range(n)]
    index = None if sequential else {}
    if not sequential:
        for i, k in enumerate(keys):
            if k in index:
                raise JGFError(f"duplicate vertex id {k!r}")
            index[k] = i
    try:
        src = list(map(itemgetter("source"), edges))
        tgt = list(map(itemgetter("target"), edges))
        try:
            # The usual case, checked in C: every edge says {"subsystem": "containment"}.
            plain = list(map(itemgetter("metadata"), edges)).count(_CONTAINMENT) == len(edges)
        except KeyError:
            plain = False
        if plain:
            subsystems = []
        else:
            subsystems = [(e.get("metadata") or {}).get("subsystem", "containment") for e in edges]
    except (KeyError, TypeError, AttributeError):
        for j, e in enumerate(edges):
            if not isinstance(e, dict) or "source" not in e or "target" not in e:
                raise JGFError(f"edge {j} needs 'source' and 'target'") from None
            if not isinstance(e.get("metadata") or {}, dict):
                raise JGFError(f"edge {j}: 'metadata' must be an object") from None
        raise JGFError("malformed edge") from None
    if any(s != "containment" for s in subsystems):
        pairs = [(s, t) for s, t, sub in zip(src, tgt, subsystems, strict=True) if sub == "containment"]
        src = [p[0] for p in pairs]
        tgt = [p[1] for p in pairs]
    if sequential and tgt == keys[1:]:
        # GraphBuilder's layout: edge k leads to vertex k+1, so targets need no lookup and appear once.
        try:
            parent = [-1, *map(int, src)]
        except (ValueError, TypeError):
            parent = None
        if parent is not None and all(
            0 <= p < n for p in (min(parent[1:], default=0), max(parent, default=0))
        ):
            return parent
    parent = [-1] * n
    try:
        if sequential:
            si = [int(s) for s in src]
            ti = [int(t) for t in tgt]
            if any(not 0 <= x < n for x in si) or any(not 0 <= x < n for x in ti):
                raise ValueError
        else:
            si = [index[str(s)] for s in src]
            ti = [index[str(t)] for t in tgt]
    except (KeyError, ValueError, TypeError):
        known = set(keys)
        for s, t in zip(src, tgt, strict=True):
            if str(s) not in known or str(t) not in known:
                raise JGFError(f"edge {s} -> {t}: source and/or target vertex not found") from None
        raise JGFError("malformed edge ids") from None
    for s, t in zip(si, ti, strict=True):
        if parent[t] != -1 and parent[t] != s:
            raise JGFError(
                f"vertex {keys[t]!r} has two containment parents ({keys[parent[t]]!r}, {keys[s]!r})"
            )
        if s == t:
            raise JGFError(f"edge {keys[s]} -> {keys[t]} is a self loop")
        parent[t] = s
    return parent


def _int_field(md: dict[str, Any], key: str, default: int, where: str) -> int:
    value = md.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise JGFError(f"vertex {where}: 'metadata.{key}' must be an integer, got {value!r}")
    return value


def _status(md: dict[str, Any], where: str) -> str:
    value = md.get("status", UP)
    if value in (0, "up", UP):
        return UP
    if value in (1, "down"):
        return DOWN
    raise JGFError(f"vertex {where}: unknown status {value!r}")


def _props(md: dict[str, Any], where: str) -> dict[str, str] | None:
    props = md.get("properties")
    if props is None or props == {}:
        return None
    if not isinstance(props, dict) or not all(isinstance(v, str) for v in props.values()):
        raise JGFError(f"vertex {where}: 'metadata.properties' must be an object of string values")
    return dict(props)


def _build(cols: dict[str, list[Any]], parent: list[int], n_edges: int) -> ResourceGraph:
    keys, mds, types, paths = cols["key"], cols["md"], cols["type"], cols["path"]
    n = len(keys)
    has_child = bytearray(n)
    for p in parent:
        if p >= 0:
            has_child[p] = 1
    roots = [i for i in range(n) if parent[i] == -1]
    if len(roots) != 1:
        if not roots:
            raise JGFError("containment edges form a cycle: no root vertex")
        raise JGFError(
            f"graph has {len(roots)} root vertices (vertices without a containment parent), e.g. "
            + ", ".join(repr(keys[r]) for r in roots[:5])
            + "; every vertex but the root needs a containment edge from its parent"
        )
    vertices: dict[int, Vertex] = {}

    def make_vertex(i: int) -> Vertex:
        md = mds[i]
        where = repr(keys[i])
        t = types[i]
        if not isinstance(t, str) or not t:
            raise JGFError(f"vertex {where}: 'metadata.type' must be a non-empty string")
        try:
            uid_default = int(keys[i])
        except ValueError:
            uid_default = i
        uid = _int_field(md, "uniq_id", uid_default, where)
        basename = md.get("basename") or t
        default_vid = uid
        if t == "node" and isinstance(md.get("name"), str):
            digits = ""
            for ch in reversed(md["name"]):
                if not ch.isdigit():
                    break
                digits = ch + digits
            if digits:
                default_vid = int(digits)
        vid = _int_field(md, "id", default_vid, where)
        name = md.get("name") or f"{basename}{vid}"
        size = _int_field(md, "size", 1, where)
        if size < 0:
            raise JGFError(f"vertex {where}: 'metadata.size' must not be negative")
        unit = md.get("unit") or ""
        rank = _int_field(md, "rank", -1, where)
        return Vertex(
            uid,
            t,
            str(basename),
            str(name),
            vid,
            rank,
            size,
            str(unit),
            paths[i],
            _props(md, where),
            _status(md, where),
        )

    for i in range(n):
        if has_child[i] or types[i] in NODE_TYPES or parent[i] == -1:
            vertices[i] = make_vertex(i)
    # Link non-leaf vertices; detect cycles by walking up from each vertex at most n steps overall.
    root = vertices[roots[0]]
    for i, v in vertices.items():
        p = parent[i]
        if p >= 0:
            v.parent = vertices[p]
            vertices[p].children.append(v)
    _check_acyclic(root, len(vertices))
    # Pools: leaves grouped by (parent, attributes), in runs of consecutive vertices.
    leaf_idx = [i for i in range(n) if i not in vertices] if len(vertices) < n else []
    g = ResourceGraph(root)
    g.n_vertices = n
    g.n_edges = n_edges
    pools: list[Pool] = []
    fast = _FastLeaves.try_build(cols, leaf_idx)
    for p_index, run in groupby(leaf_idx, key=parent.__getitem__):
        members = list(run)
        owner = vertices[p_index]
        if fast is None or not fast.add(owner, members, pools):
            _add_leaves(owner, members, cols, pools)
    for v in vertices.values():
        v.children.sort(key=lambda c: (c.vid, c.uid))
        v.pools.sort(key=lambda p: (p.type, p.vid(0) if p.count else 0))
        g.register(v)
    for p in pools:
        g.register_pool(p)
    _aggregate(root)
    return g


class _FastLeaves:
    """Pools for regular leaf runs from per-field columns (list comprehensions), no per-leaf Python loop."""

    def __init__(self, cols: dict[str, list[Any]], cols2: dict[str, list[Any]]) -> None:
        self.c = cols
        self.uids, self.vids = cols2["uid"], cols2["vid"]
        self.sizes, self.basen, self.units = cols2["size"], cols2["basename"], cols2["unit"]
        self.ranks, self.names, self.extra = cols2["rank"], cols2["name"], cols2["extra"]

    @classmethod
    def try_build(cls, cols: dict[str, list[Any]], leaf_idx: list[int]) -> _FastLeaves | None:
        if not leaf_idx:
            return None
        mds = cols["md"]
        try:
            # Every key present (GraphBuilder, flux-sched's own JGF): columns in C via itemgetter + zip.
            rows = map(itemgetter("uniq_id", "id", "size", "basename", "unit", "rank", "name"), mds)
            cu, cv, cs, cb, cn, cr, cm = (list(col) for col in zip(*rows, strict=True))
        except KeyError:
            cu = [m.get("uniq_id") for m in mds]
            cv = [m.get("id") for m in mds]
            cs = [m.get("size", 1) for m in mds]
            cb = [m.get("basename") for m in mds]
            cn = [m.get("unit") for m in mds]
            cr = [m.get("rank", -1) for m in mds]
            cm = [m.get("name") for m in mds]
        has_props = any(map(methodcaller("__contains__", "properties"), mds))
        has_status = any(map(methodcaller("__contains__", "status"), mds))
        if has_props or has_status:
            extra = [bool(m.get("properties")) or "status" in m for m in mds]
        else:
            extra = [False] * len(mds)
        c2 = {
            "uid": cu,
            "vid": cv,
            "size": cs,
            "basename": cb,
            "unit": cn,
            "rank": cr,
            "name": cm,
            "extra": extra,
        }
        # Anything not plainly typed goes through the careful per-vertex path (and its error messages).
        if not set(map(type, c2["uid"])) <= {int} or not set(map(type, c2["vid"])) <= {int}:
            return None
        if not set(map(type, c2["size"])) <= {int} or not set(map(type, c2["rank"])) <= {int}:
            return None
        for key in ("basename", "unit", "name"):
            if not set(map(type, c2[key])) <= {str, type(None)}:
                return None
        if not set(map(type, cols["type"])) <= {str} or min(c2["size"]) < 0:
            return None
        return cls(cols, c2)

    def add(self, owner: Vertex, members: list[int], out: list[Pool]) -> bool:
        a, b = members[0], members[-1] + 1
        if b - a != len(members):
            return False
        types = self.c["type"][a:b]
        if True in self.extra[a:b]:
            return False
        # Split the run into sub-runs of identical attributes (e.g. 64 cores then 16 memory chunks).
        start = a
        while start < b:
            t = types[start - a]
            key = (t, self.basen[start], self.sizes[start], self.units[start], self.ranks[start])
            end = start + 1
            while end < b and types[end - a] == t:
                end += 1
            if (
                self.basen[start:end].count(key[1]) != end - start
                or self.sizes[start:end].count(key[2]) != end - start
                or self.units[start:end].count(key[3]) != end - start
                or self.ranks[start:end].count(key[4]) != end - start
            ):
                return False
            if not self._pool(owner, start, end, key, out):
                return False
            start = end
        return True

    def _pool(self, owner: Vertex, a: int, b: int, key: tuple, out: list[Pool]) -> bool:
        t, basename, size, unit, rank = key
        basename = basename or t
        n = b - a
        uids = self.uids[a:b]
        vids = self.vids[a:b]
        u0, v0 = uids[0], vids[0]
        if uids != list(range(u0, u0 + n)) or vids != list(range(v0, v0 + n)):
            return False
        names = self.names[a:b]
        expected = [f"{basename}{v}" for v in vids]
        if names != expected and names.count(None) != n:
            return False
        prefix = owner.path + "/"
        if self.c["path"][a:b] != [prefix + nm for nm in expected]:
            return False
        pool = Pool(owner, t, basename, size, unit or "", rank)
        pool.count = n
        pool.all_mask = (1 << n) - 1
        pool.uid_base, pool.id_base = u0, v0
        # Several runs of one type under one parent (rare) simply become several pools.
        owner.pools.append(pool)
        out.append(pool)
        return True


def _check_acyclic(root: Vertex, total: int) -> None:
    seen = 0
    stack = [root]
    while stack:
        v = stack.pop()
        seen += 1
        if seen > total:
            raise JGFError("containment edges form a cycle")
        stack.extend(v.children)
    if seen != total:
        raise JGFError("containment edges form a cycle detached from the root")


def _add_leaves(owner: Vertex, members: list[int], cols: dict[str, list[Any]], out: list[Pool]) -> None:
    keys, mds, types, paths = cols["key"], cols["md"], cols["type"], cols["path"]
    groups: dict[tuple, list[tuple[int, int, int, str, str]]] = {}
    for i in members:
        md = mds[i]
        where = repr(keys[i])
        t = types[i]
        if not isinstance(t, str) or not t:
            raise JGFError(f"vertex {where}: 'metadata.type' must be a non-empty string")
        try:
            uid_default = int(keys[i])
        except ValueError:
            uid_default = i
        uid = md.get("uniq_id", uid_default)
        if type(uid) is not int:
            uid = _int_field(md, "uniq_id", uid_default, where)
        vid = md.get("id", uid)
        if type(vid) is not int:
            vid = _int_field(md, "id", uid, where)
        size = md.get("size", 1)
        if type(size) is not int or size < 0:
            size = _int_field(md, "size", 1, where)
            if size < 0:
                raise JGFError(f"vertex {where}: 'metadata.size' must not be negative")
        basename = md.get("basename") or t
        rank = md.get("rank", -1)
        if type(rank) is not int:
            rank = _int_field(md, "rank", -1, where)
        props = md.get("properties")
        pkey = None
        if props:
            props = _props(md, where)
            pkey = tuple(sorted(props.items()))
        down = _status(md, where) == DOWN if "status" in md else False
        key = (t, basename, size, md.get("unit") or "", rank, pkey)
        name = md.get("name") or f"{basename}{vid}"
        groups.setdefault(key, []).append((vid, uid, down, name, paths[i]))
    for (t, basename, size, unit, rank, pkey), items in groups.items():
        items.sort(key=lambda it: (it[0], it[1]))
        pool = Pool(owner, t, basename, size, unit, rank)
        if pkey:
            pool.properties = dict(pkey)
        pool.count = len(items)
        pool.all_mask = (1 << pool.count) - 1
        vids = [it[0] for it in items]
        uids = [it[1] for it in items]
        id0, uid0 = vids[0], uids[0]
        if vids == list(range(id0, id0 + len(vids))) and uids == list(range(uid0, uid0 + len(uids))):
            pool.id_base, pool.uid_base = id0, uid0
        else:
            pool.ids, pool.uids = vids, uids
        names = [it[3] for it in items]
        if any(nm != f"{basename}{v}" for nm, v in zip(names, vids, strict=True)):
            pool.names = names
        prefix = owner.path + "/"
        if any(it[4] != prefix + nm for it, nm in zip(items, names, strict=True)):
            pool.paths = [it[4] for it in items]
        for j, it in enumerate(items):
            if it[2]:
                pool.down_mask |= 1 << j
        owner.pools.append(pool)
        out.append(pool)


def _aggregate(root: Vertex) -> None:
    """cap/free per vertex: leaf amounts by type and vertex counts by type in its subtree (post-order)."""
    order: list[Vertex] = []
    stack = [root]
    while stack:
        v = stack.pop()
        order.append(v)
        stack.extend(v.children)
    for v in reversed(order):
        cap: dict[str, int] = {}
        for p in v.pools:
            cap[p.type] = cap.get(p.type, 0) + p.capacity
        for c in v.children:
            cap[c.type] = cap.get(c.type, 0) + 1
            for t, a in c.cap.items():
                cap[t] = cap.get(t, 0) + a
        v.cap = cap
        v.free = {t: a for t, a in cap.items()}
        v.ctypes = frozenset(v.child_types())
        v.reindex()
