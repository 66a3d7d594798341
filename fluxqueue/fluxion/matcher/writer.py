"""R as JGF in flux-sched's writer format (resource/writers/match_writers.cpp emit_vtx_base, prior-art §7.6).

Vertices leaves-first (post-order); outer ``id`` = uniq_id; metadata keys in the writer's order, each omitted
when it has its default: ``basename`` only if it differs from ``type``, ``name`` only if it differs from
basename+id, ``exclusive`` only when true, ``unit`` only if non-empty, ``size`` only if the allocated amount is
not 1, ``properties`` only if present. Containment edges carry no metadata. One line of JSON with ``", "`` and
``": "`` separators (jansson ``JSON_INDENT(0)``), then a newline. Our addition: graph-level ``metadata``
with the number of slots per node (``fluxqueue.io/slots``), which flux-sched readers ignore.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from json.encoder import encode_basestring_ascii

from fluxqueue.fluxion.allocation import SLOTS_METADATA_KEY
from fluxqueue.fluxion.matcher.graph import Pool, Vertex

_q = encode_basestring_ascii  # json.dumps of a str, without building an encoder each call


def _vertex_json(v: Vertex, excl: bool) -> str:
    parts = [f'{{"id": "{v.uid}", "metadata": {{"type": {_q(v.type)}']
    if v.basename != v.type:
        parts.append(f', "basename": {_q(v.basename)}')
    if v.name != f"{v.basename}{v.vid}":
        parts.append(f', "name": {_q(v.name)}')
    parts.append(f', "id": {v.vid}, "rank": {v.rank}')
    if excl:
        parts.append(', "exclusive": true')
    if v.unit:
        parts.append(f', "unit": {_q(v.unit)}')
    if v.size != 1 and excl:
        parts.append(f', "size": {v.size}')
    if v.properties:
        parts.append(f', "properties": {json.dumps(v.properties, separators=(", ", ": "))}')
    parts.append(f', "paths": {{"containment": {_q(v.path)}}}}}}}')
    return "".join(parts)


def _bits(mask: int, count: int) -> list[int] | range:
    if mask == (1 << count) - 1:
        return range(count)
    out = []
    i = 0
    while mask:
        low = mask & -mask
        i = low.bit_length() - 1
        out.append(i)
        mask ^= low
    return out


def _pool_json(p: Pool, mask: int) -> tuple[list[str], list[str]]:
    """Vertex and edge JSON for the members in ``mask`` (all exclusive: leaves are only allocated in slots)."""
    idx = _bits(mask, p.count)
    if p.uids is None and p.names is None and p.paths is None:
        nt, prefix, src = p.rtext or _member_text(p)
        ub, ib = p.uid_base, p.id_base
        return [nt % (ub + i, ib + i, prefix, ib + i) for i in idx], [src % (ub + i) for i in idx]
    head, tail = _head_tail(p)
    rank = p.rank
    src = f'{{"source": "{p.parent.uid}", "target": "'
    nodes = []
    edges = []
    for i in idx:
        vid = p.vid(i)
        name = p.name(i)
        name_part = f', "name": {_q(name)}' if name != f"{p.basename}{vid}" else ""
        nodes.append(
            f'{{"id": "{p.uid(i)}"{head}{name_part}, "id": {vid}, "rank": {rank}{tail}, '
            f'"paths": {{"containment": {_q(p.path(i))}}}}}}}'
        )
        edges.append(f'{src}{p.uid(i)}"}}')
    return nodes, edges


def _head_tail(p: Pool) -> tuple[str, str]:
    """What a member's metadata holds before its id and after its rank (the same for every member)."""
    head = f', "metadata": {{"type": {_q(p.type)}'
    if p.basename != p.type:
        head += f', "basename": {_q(p.basename)}'
    tail = ', "exclusive": true'
    if p.unit:
        tail += f', "unit": {_q(p.unit)}'
    if p.size != 1:
        tail += f', "size": {p.size}'
    if p.properties:
        tail += f', "properties": {json.dumps(p.properties, separators=(", ", ": "))}'
    return head, tail


# A member of a regular pool as a %-template of (uniq_id, id, quoted path prefix, id), one per shape (type,
# basename, unit, size, rank, properties): every node's cores are one shape.
_MEMBER: dict[tuple, str] = {}


def _member_text(p: Pool) -> tuple[str, str, str]:
    """(member template, the quoted path up to the member's id, edge template), kept on the pool."""
    key = (p.type, p.basename, p.unit, p.size, p.rank, repr(p.properties) if p.properties else "")
    tmpl = _MEMBER.get(key)
    if tmpl is None:
        head, tail = _head_tail(p)
        head = head.replace("%", "%%")
        tail = tail.replace("%", "%%")
        tmpl = f'{{"id": "%d"{head}, "id": %d, "rank": {p.rank}{tail}, "paths": {{"containment": %s%d"}}}}}}'
        if len(_MEMBER) >= 256:  # shapes are few in any real graph; bound them anyway
            _MEMBER.clear()
        _MEMBER[key] = tmpl
    src = '{"source": "' + str(p.parent.uid) + '", "target": "%d"}'
    out = p.rtext = (tmpl, _q(f"{p.parent.path}/{p.basename}")[:-1], src)
    return out


# Whole pools, the most common part of R for jobs that take nodes whole (an exclusive node, a *nodex policy):
# pools of one shape (type, names, attributes, member ids) differ only in their uniq_ids and their parent, so
# their text is one %-format template per shape, filled with the uniq_ids and the parent's path (vertices) or
# uniq_id (edges).
_SHAPES: dict[tuple, tuple[str, str]] = {}


def _whole_templates(p: Pool) -> tuple[str, str]:
    props = json.dumps(p.properties, separators=(", ", ": ")) if p.properties else ""
    key = (p.type, p.basename, p.unit, p.size, p.rank, p.count, p.id_base, props)
    hit = _SHAPES.get(key)
    if hit is not None:
        return hit
    head, tail = _head_tail(p)
    head = head.replace("%", "%%")
    tail = tail.replace("%", "%%")
    ib, rank = p.id_base, p.rank
    nodes = ", ".join(
        f'{{"id": "%d"{head}, "id": {ib + i}, "rank": {rank}{tail}, "paths": {{"containment": %s{ib + i}"}}}}}}'
        for i in range(p.count)
    )
    edges = ", ".join('{"source": "%s", "target": "%d"}' for _ in range(p.count))
    if len(_SHAPES) >= 256:  # shapes are few in any real graph; bound them anyway
        _SHAPES.clear()
    out = _SHAPES[key] = (nodes, edges)
    return out


# The text of the whole pools written last is also kept as it is, for a bounded number: a job on nodes used
# before (churn on a busy cluster) then copies it instead of formatting it again.
_WHOLE: OrderedDict[int, tuple[Pool, str, str]] = OrderedDict()
_WHOLE_MAX = 1024  # a 256-node gang is 512 pools; at most ~11 MB of text for 64-core pools


def _pool_text(p: Pool, mask: int) -> tuple[str, str]:
    if mask != p.all_mask or p.uids is not None or p.names is not None or p.paths is not None or not p.count:
        pn, pe = _pool_json(p, mask)
        return ", ".join(pn), ", ".join(pe)
    hit = _WHOLE.get(id(p))
    if hit is not None and hit[0] is p:
        _WHOLE.move_to_end(id(p))
        return hit[1], hit[2]
    nodes, edges = _whole_templates(p)
    c = p.count
    args = [_q(f"{p.parent.path}/{p.basename}")[:-1]] * (2 * c)
    args[0::2] = range(p.uid_base, p.uid_base + c)
    pn = nodes % tuple(args)
    args[1::2] = args[0::2]
    args[0::2] = [str(p.parent.uid)] * c
    pe = edges % tuple(args)
    _WHOLE[id(p)] = (p, pn, pe)
    if len(_WHOLE) > _WHOLE_MAX:
        _WHOLE.popitem(last=False)
    return pn, pe


def _uid(v: Vertex) -> int:
    return v.uid


def _emit(v: Vertex, vertices, pools, kids, pools_of, nodes: list[str], edges: list[str]) -> None:
    """write_r's walk: post-order, children by uniq_id ascending; a vertex's pools (in its order) before
    itself. (A module function, not a closure: a recursive closure is a reference cycle per call.)"""
    ks = kids.get(v)
    if ks is not None:
        if len(ks) > 1:
            ks.sort(key=_uid, reverse=True)
            ks.reverse()  # (equal ids, if any, in the order a stack of the descending sort pops them)
        for c in ks:
            _emit(c, vertices, pools, kids, pools_of, nodes, edges)
    ps = pools_of.get(v)
    if ps is not None:
        if len(ps) > 1:
            ps.sort(key=v.pools.index)
        for p in ps:
            pn, pe = _pool_text(p, pools[p])
            nodes.append(pn)
            edges.append(pe)
    t = v.rtext
    if t is None or t[0] is not v.parent:
        t = v.rtext = [v.parent, None, None, None]
    if vertices[v]:
        text = t[2]
        if text is None:
            text = t[2] = _vertex_json(v, True)
    else:
        text = t[1]
        if text is None:
            text = t[1] = _vertex_json(v, False)
    nodes.append(text)
    if v.parent in vertices:
        e = t[3]
        if e is None:
            e = t[3] = f'{{"source": "{v.parent.uid}", "target": "{v.uid}"}}'
        edges.append(e)


def write_r(vertices: dict[Vertex, bool], pools: dict[Pool, int], slots: dict[str, int]) -> str:
    """R for the given vertices (vertex -> exclusive) and pool members, as one JGF line."""
    kids: dict[Vertex, list[Vertex]] = {}
    roots = []
    for v in vertices:
        par = v.parent
        if par in vertices:  # (never None: None is no key)
            ks = kids.get(par)
            if ks is None:
                kids[par] = [v]
            else:
                ks.append(v)
        else:
            roots.append(v)
    pools_of: dict[Vertex, list[Pool]] = {}
    for p in pools:
        ps = pools_of.get(p.parent)
        if ps is None:
            pools_of[p.parent] = [p]
        else:
            ps.append(p)
    nodes: list[str] = []
    edges: list[str] = []
    for r in reversed(roots):
        _emit(r, vertices, pools, kids, pools_of, nodes, edges)
    md = ""
    if slots:
        if all(type(n) is int for n in slots.values()):  # a bool is not written as a number
            text = "{" + ", ".join([f"{_q(k)}: {n}" for k, n in slots.items()]) + "}"
        else:
            text = json.dumps(slots, separators=(", ", ": "))
        md = f', "metadata": {{{_q(SLOTS_METADATA_KEY)}: {text}}}'
    # one join (a chain of + would copy megabytes of a gang's R once per piece)
    return "".join(
        ('{"graph": {"nodes": [', ", ".join(nodes), '], "edges": [', ", ".join(edges), "]", md, "}}\n")
    )
