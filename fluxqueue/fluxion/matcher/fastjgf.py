"""Fast path for JGF text in GraphBuilder's compact layout (what fluxqueue itself sends to Init).

Parsing a million-vertex JGF into Python dicts costs seconds, although almost every vertex is predictable from
the one before it: the next core of a node has id+1, uniq_id+1, name basename+id and path parent/name. So we
parse only the first vertex of each run with orjson, *predict* the exact text of the following ones and check
it against the input (a string comparison at C speed), and check the whole edge list against the text the
containment tree implies. Any mismatch, however small, returns None and the caller reads the JGF the careful
way, so this path can only ever accept text that the careful reader would read to the same graph.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

from fluxqueue.fluxion.jgf import loads
from fluxqueue.fluxion.matcher.graph import Pool, ResourceGraph, Vertex

_HEAD = '{"graph":{"nodes":['
_EDGES = '],"edges":['
_U, _I = 9_111_111_111_111_111, 9_222_222_222_222_222
_EDGE = '{"source":"%d","target":"%d","metadata":{"subsystem":"containment"}}'
NODE_TYPES = frozenset({"node", "storage_node"})


class _Run:
    __slots__ = ("basename", "count", "i0", "md", "name0", "parent_path", "u0")

    def __init__(self, md: dict[str, Any], u0: int, i0: int, parent_path: str) -> None:
        self.md, self.u0, self.i0, self.parent_path = md, u0, i0, parent_path
        self.basename = md.get("basename") or md["type"]
        self.name0 = md.get("name")
        self.count = 1


_VARIABLE = frozenset({"id", "uniq_id", "name", "paths"})
_PREFIX = "@@Q@@"
_factories: dict[tuple[str, ...], Any] = {}


def _shape(md: dict[str, Any], base: str) -> tuple | None:
    """What a run's template depends on besides its path prefix (hashable), or None."""
    try:
        return (
            base,
            *(
                (k, tuple(v.items()) if isinstance(v, dict) else v)
                for k, v in md.items()
                if k not in _VARIABLE
            ),
            tuple(md),
        )
    except TypeError:
        return None


def _template(md: dict[str, Any], base: str) -> tuple[str, tuple[str, ...]] | None:
    """'%'-template of a sibling of ``md`` with the path prefix left as _PREFIX, and the order of its values."""
    probe = dict(md)
    probe["uniq_id"] = _U
    probe["id"] = _I
    probe["name"] = "@@N@@"
    probe["paths"] = {"containment": "@@P@@"}
    from fluxqueue.fluxion.jgf import dumps

    text = dumps({"id": "@@U@@", "metadata": probe}).replace("%", "%%")
    tokens = {'"@@U@@"': ('"%d"', "u"), str(_U): ("%d", "u"), str(_I): ("%d", "i"),
              "@@N@@": (base.replace("%", "%%") + "%d", "i"), "@@P@@": (_PREFIX + "%d", "i")}  # fmt: skip
    found = sorted((text.find(tok), tok) for tok in tokens)
    if any(pos < 0 for pos, _ in found) or text.count("@@") != 6:
        return None
    order, out, last = [], [], 0
    for pos, tok in found:
        out.append(text[last:pos])
        rep, var = tokens[tok]
        out.append(rep)
        order.append(var)
        last = pos + len(tok)
    out.append(text[last:])
    return "".join(out), tuple(order)


def _factory(order: tuple[str, ...]):
    # '%' with a positional tuple is twice as fast as str.format; the tuple's shape depends on the key order,
    # so one small function per shape is compiled once (its source holds only the names u and i).
    f = _factories.get(order)
    if f is None:
        f = eval(f"lambda _fmt: lambda u, i: _fmt % ({', '.join(order)},)")
        _factories[order] = f
    return f


def try_read_compact(text: str | bytes) -> ResourceGraph | None:
    if isinstance(text, bytes):
        try:
            text = text.decode()
        except UnicodeDecodeError:
            return None
    if not text.startswith(_HEAD) or not text.endswith("]}}"):
        return None
    cut = text.rfind(_EDGES)
    if cut < 0:
        return None
    end = cut
    runs: list[_Run] = []
    pos = len(_HEAD)
    uid = 0
    startswith = text.startswith
    templates: dict[tuple, tuple[str, tuple[str, ...]]] = {}
    while pos < end:
        nxt = text.find(',{"id":"', pos + 1, end)
        stop = end if nxt < 0 else nxt
        try:
            v = loads(text[pos:stop])
        except ValueError:
            return None
        md = v.get("metadata") if isinstance(v, dict) else None
        if (
            not isinstance(md, dict)
            or v.get("id") != str(uid)
            or md.get("uniq_id") != uid
            or type(md["uniq_id"]) is not int
            or "status" in md
            or not isinstance(md.get("type"), str)
            or not isinstance(md.get("paths"), dict)
        ):
            return None
        path = md["paths"].get("containment")
        i0 = md.get("id")
        name = md.get("name")
        if not isinstance(path, str) or type(i0) is not int or not isinstance(name, str):
            return None
        parent_path, _, last = path.rpartition("/")
        if last != name:
            return None
        run = _Run(md, uid, i0, parent_path)
        runs.append(run)
        pos = stop + 1 if stop < end else end
        uid += 1
        if pos >= end or name != f"{run.basename}{i0}":
            continue
        prefix = loads_str_escape(parent_path + "/" + run.basename)
        base = loads_str_escape(run.basename)
        if prefix is None or base is None:
            continue
        shape = _shape(md, base)
        cached = templates.get(shape) if shape is not None else None
        if cached is None:
            cached = _template(md, base)
            if cached is None:
                continue
            if shape is not None:
                templates[shape] = cached
        tmpl, order = cached
        fmt = _factory(order)(tmpl.replace(_PREFIX, prefix.replace("%", "%%")))
        i = i0
        while pos < end:
            i += 1
            pred = fmt(uid, i)
            if not startswith(pred, pos):
                break
            pos += len(pred)
            if pos < end:
                if text[pos] != ",":
                    return None
                pos += 1
            run.count += 1
            uid += 1
    n = uid
    return _build(text, cut, runs, n)


def loads_str_escape(s: str) -> str | None:
    # Only plain printable ASCII without quotes or backslashes is used verbatim in predicted text.
    if not s.isascii() or '"' in s or "\\" in s or not s.isprintable():
        return None
    return s


def _build(text: str, cut: int, runs: list[_Run], n: int) -> ResourceGraph | None:
    if not runs or runs[0].count != 1 or runs[0].parent_path != "":
        return None
    # Resolve each run's parent by path: heads by exact path, other members by (parent path, basename, id).
    head_by_path = {}
    by_pp: dict[str, list[_Run]] = {}
    for r in runs:
        head_by_path.setdefault(f"{r.parent_path}/{r.name0}", r.u0)
        by_pp.setdefault(r.parent_path, []).append(r)

    def resolve(path: str) -> int | None:
        hit = head_by_path.get(path)
        if hit is not None:
            return hit
        pp, _, last = path.rpartition("/")
        for r in by_pp.get(pp, ()):
            b = r.basename
            if last.startswith(b) and last[len(b) :].isdigit():
                k = int(last[len(b) :]) - r.i0
                if 0 < k < r.count and str(r.i0 + k) == last[len(b) :]:
                    return r.u0 + k
        return None

    parents: list[int] = []
    for r in runs[1:]:
        p = resolve(r.parent_path)
        if p is None or p >= r.u0:
            return None
        parents.append(p)
    # The edge list must be exactly the containment tree, in vertex order.
    pieces = [
        ",".join([_EDGE % (p, u) for u in range(r.u0, r.u0 + r.count)])
        for r, p in zip(runs[1:], parents, strict=True)
    ]
    if ",".join(pieces) != text[cut + len(_EDGES) : -3]:
        return None
    parent_list = sorted(set(parents))
    vertices: dict[int, Vertex] = {}
    pools: list[tuple[Pool, int]] = []
    for idx, r in enumerate(runs):
        md = r.md
        t = md["type"]
        props = md.get("properties") or None
        if props is not None and not (
            isinstance(props, dict) and all(isinstance(x, str) for x in props.values())
        ):
            return None
        size, unit, rank = md.get("size", 1), md.get("unit", ""), md.get("rank", -1)
        if type(size) is not int or size < 0 or type(rank) is not int or type(unit) is not str:
            return None
        # What the careful reader would refuse or read differently (jansson types, other subsystems).
        if type(md.get("exclusive", False)) is not bool or len(md["paths"]) != 1:
            return None
        if "basename" in md and (type(md["basename"]) is not str or not md["basename"]):
            return None
        k = bisect_left(parent_list, r.u0)
        members_are_parents = k < len(parent_list) and parent_list[k] < r.u0 + r.count
        if idx == 0 or t in NODE_TYPES or members_are_parents:
            for k in range(r.count):
                name = r.name0 if k == 0 else f"{r.basename}{r.i0 + k}"
                vertices[r.u0 + k] = Vertex(
                    r.u0 + k, t, r.basename, name, r.i0 + k, rank, size, unit, f"{r.parent_path}/{name}",
                    dict(props) if props else None,
                )  # fmt: skip
        else:
            if r.name0 != f"{r.basename}{r.i0}":
                return None
            pool = Pool(None, t, r.basename, size, unit, rank)  # parent set below
            if props:
                pool.properties = dict(props)
            pool.count = r.count
            pool.all_mask = (1 << r.count) - 1
            pool.uid_base, pool.id_base = r.u0, r.i0
            pools.append((pool, parents[idx - 1]))
    for idx, r in enumerate(runs[1:], start=1):
        p = parents[idx - 1]
        if r.u0 not in vertices:
            continue
        owner = vertices.get(p)
        if owner is None:
            return None
        for k in range(r.count):
            v = vertices[r.u0 + k]
            v.parent = owner
            owner.children.append(v)
    for pool, p in pools:
        owner = vertices.get(p)
        if owner is None:
            return None
        pool.parent = owner
        owner.pools.append(pool)
    from fluxqueue.fluxion.matcher.reader import _aggregate

    root = vertices[0]
    g = ResourceGraph(root)
    g.n_vertices = n
    g.n_edges = n - 1
    for v in vertices.values():
        v.children.sort(key=lambda c: (c.vid, c.uid))
        v.pools.sort(key=lambda p: (p.type, p.id_base))
        g.register(v)
    for pool, _ in pools:
        g.register_pool(pool)
    _aggregate(root)
    return g
