"""Read JGF into a `ResourceGraph`, as flux-sched's JGF reader does (resource_reader_jgf.cpp, prior-art §7.4).

Rules followed (flux-sched v0.54 ``resource/readers/resource_reader_jgf.cpp``):

- ``graph.nodes`` (a list: JGF v1) and ``graph.edges`` are both required.
- A vertex: ``id`` a string; ``metadata`` with ``type`` (string) and ``paths`` (an object of strings, one
  per subsystem) required; optional ``basename``/``name``/``unit`` strings, ``id``/``uniq_id``/``rank``/
  ``size`` integers, ``status`` an integer (0 = up), ``exclusive`` a boolean, ``properties`` an object of
  strings (jansson's ``s?s``/``s?I``/``s?b``: a null or a real number is refused). Defaults: basename =
  type, id = uniq_id (a node: the number its name ends with), uniq_id = the outer id as an integer, name =
  basename + id.
- An edge: ``source``/``target`` strings naming vertices, optional ``metadata.subsystem`` (a string,
  default containment). Two edges from one source to the same target are refused (by_outedges).
- The containment root is the vertex whose containment path has one "/" (two such: refused). The matcher
  (CA, containment only) walks containment edges depth first from the root, in the order the edges are
  listed, and visits a vertex once: a vertex with two containment parents belongs to the first one that
  reaches it; vertices it never reaches (another subsystem only, e.g. power; orphans) are loaded but never
  matched. Other subsystems' edges are ignored.

Speed: a million-vertex graph is read with a handful of list comprehensions over the parsed JSON (one pass
per field, in C) rather than a Python loop doing everything per vertex; leaves are grouped into pools by
consecutive runs, which is how every generator we know lays them out. Anything unusual falls back to a
careful pass whose error message names the offending vertex or edge.
"""

from __future__ import annotations

import re
from itertools import groupby, repeat
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


class _NotATree(Exception):
    """The simple parent array is not one tree from the root: walk the edges as flux-sched does."""


def read_jgf(doc: str | bytes | dict[str, Any], *, root_id: str | None = None) -> ResourceGraph:
    """``root_id``: the vertex to take as the root instead of the one-level path (a subgraph being added)."""
    if isinstance(doc, str | bytes) and root_id is None:
        from fluxqueue.fluxion.matcher.fastjgf import try_read_compact

        fast = try_read_compact(doc)
        if fast is not None:
            return fast
    graph = parse_jgf(doc)
    vertices, edges = _vertices_and_edges(graph)
    if not vertices:
        raise JGFError("JGF graph has no vertices")
    cols = _columns(vertices)
    if root_id is None:
        root = _root(cols)
    elif root_id in cols["key"]:
        root = cols["key"].index(root_id)
    else:
        raise JGFError(f"no vertex {root_id!r}")
    src, tgt = _edges(cols["key"], edges)
    try:
        parent = _parents(cols["key"], src, tgt)
        if parent[root] != -1:
            raise _NotATree
        return _build(cols, parent, len(edges), root)
    except _NotATree:
        return _build(cols, _walk_parents(cols, src, tgt, root), len(edges), root)


def _vertices_and_edges(graph: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    vertices = graph.get("nodes")
    if isinstance(vertices, dict):
        raise JGFError(
            "JGF 'graph.nodes' is an object keyed by id (JGF v2), which flux-sched cannot read: "
            "send JGF v1, 'graph.nodes' a list of vertices each with its 'id'"
        )
    if not isinstance(vertices, list):
        raise JGFError("JGF 'graph.nodes' must be a list of vertices")
    if "edges" not in graph:
        raise JGFError("JGF has no 'graph.edges' (required, even if empty)")
    edges = graph["edges"]
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
        pds = list(map(itemgetter("paths"), mds))
    except (KeyError, TypeError):
        _diagnose_vertices(vertices)
        raise JGFError("malformed vertex") from None  # _diagnose_vertices always raises first
    if not set(map(type, keys)) <= {str}:
        i = next(i for i, k in enumerate(keys) if type(k) is not str)
        raise JGFError(f"vertex {i}: 'id' must be a string, got {keys[i]!r}")
    if not set(map(type, types)) <= {str}:
        i = next(i for i, t in enumerate(types) if type(t) is not str)
        raise JGFError(f"vertex {keys[i]!r}: 'metadata.type' must be a string, got {types[i]!r}")
    try:
        paths = list(map(itemgetter("containment"), pds))
        plain = sum(map(len, pds)) == len(pds)  # every paths object holds containment alone
    except (KeyError, TypeError):
        paths, plain = None, False
    if not plain:
        # Another subsystem's path, or none at all (a vertex outside containment): flux-sched loads them.
        paths = []
        for k, pd in zip(keys, pds, strict=True):
            if isinstance(pd, dict):
                if not all(type(x) is str for x in pd.values()):
                    raise JGFError(f"vertex {k!r}: 'metadata.paths' values must be strings")
                paths.append(pd.get("containment"))
            else:
                paths.append(None)  # json_object_foreach over a non-object: no paths
    elif not set(map(type, paths)) <= {str}:
        i = next(i for i, x in enumerate(paths) if type(x) is not str)
        raise JGFError(f"vertex {keys[i]!r}: 'metadata.paths' values must be strings")
    cols: dict[str, list[Any]] = {"key": keys, "md": mds, "type": types, "path": paths}
    if not plain:
        cols["pds"] = pds
    return cols


def _diagnose_vertices(vertices: list[Any]) -> None:
    for i, v in enumerate(vertices):
        if not isinstance(v, dict):
            raise JGFError(f"vertex {i} is not an object")
        if "id" not in v:
            raise JGFError(f"vertex {i} has no 'id'")
        md = v.get("metadata")
        if not isinstance(md, dict):
            raise JGFError(f"vertex {v['id']!r} has no 'metadata' object")
        if "type" not in md:
            raise JGFError(f"vertex {v['id']!r} has no 'metadata.type'")
        if "paths" not in md:
            raise JGFError(f"vertex {v['id']!r} has no 'metadata.paths'")


def _root(cols: dict[str, list[Any]]) -> int:
    """The containment root: the one vertex whose containment path has a single "/" (is_root())."""
    keys, paths = cols["key"], cols["path"]
    # One pass in C (str.count over the list) instead of a Python loop over a million strings.
    slashes = list(map(str.count, [p or "" for p in paths] if None in paths else paths, repeat("/")))
    hits = slashes.count(1)
    if not hits:
        raise JGFError(
            "JGF has no containment root: no vertex has a containment path of one level (e.g. /cluster0)"
        )
    root = slashes.index(1)
    if hits > 1:
        j = slashes.index(1, root + 1)
        raise JGFError(
            f"JGF has two containment roots, {keys[root]!r} ({paths[root]}) and {keys[j]!r} ({paths[j]}): "
            "a containment path of one level marks the root"
        )
    if "pds" in cols:  # every other subsystem needs a single root too (add_graph_metadata)
        seen: dict[str, str] = {}
        for k, pd in zip(keys, cols["pds"], strict=True):
            if isinstance(pd, dict):
                for sub, x in pd.items():
                    if sub != "containment" and x.count("/") == 1:
                        if sub in seen:
                            raise JGFError(f"JGF has two {sub} roots, {seen[sub]!r} and {k!r}")
                        seen[sub] = k
    return root


def _edges(keys: list[str], edges: list[Any]) -> tuple[list[str], list[str]]:
    """Sources and targets of the containment edges, in order; every edge checked (unpack_edge)."""
    try:
        src = list(map(itemgetter("source"), edges))
        tgt = list(map(itemgetter("target"), edges))
        try:
            # The usual case, checked in C: every edge says {"subsystem": "containment"}.
            plain = list(map(itemgetter("metadata"), edges)).count(_CONTAINMENT) == len(edges)
        except KeyError:
            plain = False
    except (KeyError, TypeError):
        for j, e in enumerate(edges):
            if not isinstance(e, dict) or "source" not in e or "target" not in e:
                raise JGFError(f"edge {j} needs 'source' and 'target'") from None
        raise JGFError("malformed edge") from None
    if plain:
        return src, tgt  # their types are checked where they are looked up (_parents, _edge_indices)
    _check_edge_types(src, tgt)
    subsystems = []
    for j, e in enumerate(edges):
        md = e.get("metadata", _CONTAINMENT)
        if not isinstance(md, dict):
            raise JGFError(f"edge {j}: 'metadata' must be an object, got {md!r}")
        sub = md.get("subsystem", "containment")
        if type(sub) is not str:
            raise JGFError(f"edge {j}: 'metadata.subsystem' must be a string, got {sub!r}")
        subsystems.append(sub)
    if len(set(zip(src, tgt, strict=True))) != len(src):
        # by_outedges is keyed by (weight, target uniq_id): a second edge to the same target is refused.
        seen: set[tuple[str, str]] = set()
        for s, t in zip(src, tgt, strict=True):
            if (s, t) in seen:
                raise JGFError(f"edge {s} -> {t} is listed twice")
            seen.add((s, t))
    known = set(keys)
    for s, t in zip(src, tgt, strict=True):
        if s not in known or t not in known:
            raise JGFError(f"edge {s} -> {t}: source and/or target vertex not found")
    pairs = [(s, t) for s, t, sub in zip(src, tgt, subsystems, strict=True) if sub == "containment"]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _check_edge_types(src: list[Any], tgt: list[Any]) -> None:
    if not set(map(type, src)) <= {str} or not set(map(type, tgt)) <= {str}:
        j = next(j for j in range(len(src)) if type(src[j]) is not str or type(tgt[j]) is not str)
        raise JGFError(f"edge {j}: 'source' and 'target' must be vertex id strings")


def _index(keys: list[str]) -> dict[str, int] | None:
    """Vertex index by id, or None when the ids are "0".."n-1" in order (GraphBuilder, flux-sched's writer)."""
    n = len(keys)
    if keys[0] == "0" and keys[-1] == str(n - 1) and keys == [str(i) for i in range(n)]:
        return None
    index: dict[str, int] = {}
    for i, k in enumerate(keys):
        if k in index:
            raise JGFError(f"duplicate vertex id {k!r}")
        index[k] = i
    return index


def _edge_indices(
    keys: list[str], index: dict[str, int] | None, src: list[str], tgt: list[str]
) -> tuple[list[int], list[int]]:
    n = len(keys)
    try:
        if index is None:
            si, ti = list(map(int, src)), list(map(int, tgt))
            for out, ids in ((si, src), (ti, tgt)):
                if (out and (min(out) < 0 or max(out) >= n)) or list(map(str, out)) != ids:
                    raise ValueError
            return si, ti
        return [index[x] for x in src], [index[x] for x in tgt]
    except (KeyError, ValueError, TypeError):
        _check_edge_types(src, tgt)
        known = set(keys)
        for s, t in zip(src, tgt, strict=True):
            if s not in known or t not in known:
                raise JGFError(f"edge {s} -> {t}: source and/or target vertex not found") from None
        raise JGFError("malformed edge ids") from None


def _parents(keys: list[str], src: list[str], tgt: list[str]) -> list[int]:
    """Each vertex's containment parent when every vertex has at most one; raises _NotATree otherwise."""
    n = len(keys)
    index = _index(keys)
    if index is None and tgt == keys[1:]:
        # GraphBuilder's layout: edge k leads to vertex k+1, so targets need no lookup and appear once.
        try:
            parent = [-1, *map(int, src)]
        except ValueError:
            parent = None
        if parent is not None and 0 <= min(parent[1:], default=0) and max(parent, default=0) < n:
            if list(map(keys.__getitem__, parent[1:])) == src:  # "01" is not vertex "1", nor 1
                return parent
    si, ti = _edge_indices(keys, index, src, tgt)
    parent = [-1] * n
    for s, t in zip(si, ti, strict=True):
        if parent[t] != -1 or s == t:
            if parent[t] == s:
                raise JGFError(f"edge {keys[s]} -> {keys[t]} is listed twice")
            raise _NotATree  # a second containment parent, or a self loop
        parent[t] = s
    return parent


def _walk_parents(cols: dict[str, list[Any]], src: list[str], tgt: list[str], root: int) -> list[int]:
    """Parents as flux-sched's depth-first walk assigns them; -2 for vertices the walk never reaches.

    dfu_impl prime_pruning_filter / dom_dfv: out-edges in the order they were listed, a vertex already
    visited (gray or black) is not entered again (stop_explore)."""
    keys, paths = cols["key"], cols["path"]
    n = len(keys)
    index = _index(keys)
    si, ti = _edge_indices(keys, index, src, tgt)
    if len(set(zip(si, ti, strict=True))) != len(si):
        seen: set[tuple[int, int]] = set()
        for s, t in zip(si, ti, strict=True):
            if (s, t) in seen:
                raise JGFError(f"edge {keys[s]} -> {keys[t]} is listed twice")
            seen.add((s, t))
    adj: list[list[int]] = [[] for _ in range(n)]
    for s, t in zip(si, ti, strict=True):
        adj[s].append(t)
    parent = [-2] * n
    parent[root] = -1
    stack = [(root, iter(adj[root]))]
    while stack:
        u, it = stack[-1]
        for t in it:
            if parent[t] == -2:
                if paths[t] is None:
                    raise JGFError(
                        f"vertex {keys[t]!r} is contained in {keys[u]!r} but has no 'metadata.paths.containment'"
                    )
                parent[t] = u
                stack.append((t, iter(adj[t])))
                break
        else:
            stack.pop()
    return parent


def _int_field(md: dict[str, Any], key: str, default: int, where: str) -> int:
    value = md.get(key, default)
    if type(value) is not int:  # jansson "I": a JSON integer (not a real, a boolean or null)
        raise JGFError(f"vertex {where}: 'metadata.{key}' must be an integer, got {value!r}")
    return value


def _str_field(md: dict[str, Any], key: str, where: str) -> str | None:
    value = md.get(key)
    if value is None and key not in md:
        return None
    if type(value) is not str:  # jansson "s": a JSON string (not null)
        raise JGFError(f"vertex {where}: 'metadata.{key}' must be a string, got {value!r}")
    return value


def _status(md: dict[str, Any], where: str) -> str:
    if "status" not in md:
        return UP
    value = md["status"]
    if type(value) is not int:  # jansson "i"; resource_pool_t::status_t UP is 0
        raise JGFError(f"vertex {where}: 'metadata.status' must be an integer (0 = up), got {value!r}")
    return UP if value == 0 else DOWN


def _check_exclusive(md: dict[str, Any], where: str) -> None:
    if "exclusive" in md and type(md["exclusive"]) is not bool:
        raise JGFError(f"vertex {where}: 'metadata.exclusive' must be true or false, got {md['exclusive']!r}")


def _props(md: dict[str, Any], where: str) -> dict[str, str] | None:
    props = md.get("properties")
    if props is None or props == {}:
        return None
    if not isinstance(props, dict) or not all(isinstance(v, str) for v in props.values()):
        raise JGFError(f"vertex {where}: 'metadata.properties' must be an object of string values")
    return dict(props)


_LEADING_INT = re.compile(r"[ \t\n\v\f\r]*[+-]?[0-9]+")


def _uid_default(key: str, where: str) -> int:
    # apply_defaults: uniq_id = std::stoll(outer id), which reads a leading integer and fails without one.
    m = _LEADING_INT.match(key)
    if not m:
        raise JGFError(
            f"vertex {where}: no 'metadata.uniq_id', and it cannot be inferred from the outer 'id' {key!r}"
        )
    return int(m.group())


def _build(cols: dict[str, list[Any]], parent: list[int], n_edges: int, root_index: int) -> ResourceGraph:
    """The graph of the vertices in the containment tree (parent >= -1); -2 marks a vertex outside it."""
    keys, mds, types, paths = cols["key"], cols["md"], cols["type"], cols["path"]
    n = len(keys)
    has_child = bytearray(n)
    for p in parent:
        if p >= 0:
            has_child[p] = 1
    outside = parent.count(-2)
    if parent.count(-1) != 1:
        raise _NotATree  # several vertices without a parent (or none): walk from the root instead
    if "pds" in cols:  # some vertex lacks a containment path: it must not be in the containment tree
        for i, pth in enumerate(paths):
            if pth is None and parent[i] >= 0:
                raise JGFError(
                    f"vertex {keys[i]!r} is contained in {keys[parent[i]]!r} "
                    "but has no 'metadata.paths.containment'"
                )
    vertices: dict[int, Vertex] = {}

    def make_vertex(i: int) -> Vertex:
        md = mds[i]
        where = repr(keys[i])
        t = types[i]
        uid = _int_field(md, "uniq_id", 0, where) if "uniq_id" in md else _uid_default(keys[i], where)
        basename = _str_field(md, "basename", where)
        if basename is None:
            basename = t
        name = _str_field(md, "name", where)
        default_vid = uid
        if t == "node" and name is not None:
            digits = ""
            for ch in reversed(name):
                if not ch.isdigit():
                    break
                digits = ch + digits
            if digits:
                default_vid = int(digits)
        vid = _int_field(md, "id", default_vid, where)
        if name is None:
            name = f"{basename}{vid}"
        size = _int_field(md, "size", 1, where)
        if size < 0:
            raise JGFError(f"vertex {where}: 'metadata.size' must not be negative")
        unit = _str_field(md, "unit", where) or ""
        rank = _int_field(md, "rank", -1, where)
        _check_exclusive(md, where)
        return Vertex(
            uid, t, basename, name, vid, rank, size, unit, paths[i], _props(md, where), _status(md, where)
        )

    for i in range(n):
        if has_child[i] or (types[i] in NODE_TYPES and parent[i] != -2) or parent[i] == -1:
            vertices[i] = make_vertex(i)
    root = vertices[root_index]
    for i, v in vertices.items():
        p = parent[i]
        if p >= 0:
            v.parent = vertices[p]
            vertices[p].children.append(v)
    _check_acyclic(root, len(vertices))
    # Pools: leaves grouped by (parent, attributes), in runs of consecutive vertices.
    if len(vertices) + outside < n:
        leaf_idx = [i for i in range(n) if parent[i] >= 0 and i not in vertices]
    else:
        leaf_idx = []
    g = ResourceGraph(root)
    g.n_vertices = n
    g.n_edges = n_edges
    # Vertices outside the containment tree are never matched, but their types are known to the interner.
    g.other_types = frozenset(types[i] for i in range(n) if parent[i] == -2) if outside else frozenset()
    for i in range(n) if outside else ():
        if parent[i] == -2:  # still checked as flux-sched's reader checks every vertex
            make_vertex(i)
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
            rows = map(
                itemgetter("uniq_id", "id", "size", "basename", "unit", "rank", "name", "exclusive"), mds
            )
            cu, cv, cs, cb, cn, cr, cm, ce = (list(col) for col in zip(*rows, strict=True))
            optional: set[type] = {str}  # every key present: a None is an explicit null
        except KeyError:
            cu = [m.get("uniq_id") for m in mds]
            cv = [m.get("id") for m in mds]
            cs = [m.get("size", 1) for m in mds]
            cb = [m.get("basename") for m in mds]
            cn = [m.get("unit") for m in mds]
            cr = [m.get("rank", -1) for m in mds]
            cm = [m.get("name") for m in mds]
            ce = [m.get("exclusive", False) for m in mds]
            optional = {str, type(None)}
            for key, col in (("basename", cb), ("unit", cn), ("name", cm)):
                if None in col and any(m.get(key, "") is None for m in mds):
                    return None  # an explicit null: the careful path refuses it
        if not set(map(type, ce)) <= {bool}:
            return None
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
            if not set(map(type, c2[key])) <= optional:
                return None
        if min(c2["size"]) < 0:  # (types are strings: _columns checked)
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
        basename = t if basename is None else basename
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
            raise _NotATree  # a cycle
        stack.extend(v.children)
    if seen != total:
        raise _NotATree  # a cycle detached from the root


def _add_leaves(owner: Vertex, members: list[int], cols: dict[str, list[Any]], out: list[Pool]) -> None:
    keys, mds, types, paths = cols["key"], cols["md"], cols["type"], cols["path"]
    groups: dict[tuple, list[tuple[int, int, int, str, str]]] = {}
    for i in members:
        md = mds[i]
        where = repr(keys[i])
        t = types[i]
        if not isinstance(t, str) or not t:
            raise JGFError(f"vertex {where}: 'metadata.type' must be a non-empty string")
        uid = md["uniq_id"] if "uniq_id" in md else _uid_default(keys[i], where)
        if type(uid) is not int:
            uid = _int_field(md, "uniq_id", 0, where)
        vid = md.get("id", uid)
        if type(vid) is not int:
            vid = _int_field(md, "id", uid, where)
        size = md.get("size", 1)
        if type(size) is not int or size < 0:
            size = _int_field(md, "size", 1, where)
            if size < 0:
                raise JGFError(f"vertex {where}: 'metadata.size' must not be negative")
        basename = _str_field(md, "basename", where)
        if basename is None:
            basename = t
        _check_exclusive(md, where)
        rank = md.get("rank", -1)
        if type(rank) is not int:
            rank = _int_field(md, "rank", -1, where)
        props = md.get("properties")
        pkey = None
        if props:
            props = _props(md, where)
            pkey = tuple(sorted(props.items()))
        down = _status(md, where) == DOWN if "status" in md else False
        key = (t, basename, size, _str_field(md, "unit", where) or "", rank, pkey)
        name = _str_field(md, "name", where)
        if name is None:
            name = f"{basename}{vid}"
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
