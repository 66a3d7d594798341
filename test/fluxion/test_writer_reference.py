"""R's text from the writer (templates kept per pool shape, vertex text kept on the vertex) is byte for byte
what the plain writer it replaced produced, on random graphs and allocations, also when written again."""

from __future__ import annotations

import json
import random

from fluxqueue.fluxion.allocation import SLOTS_METADATA_KEY
from fluxqueue.fluxion.matcher import Matcher
from fluxqueue.fluxion.matcher.writer import _bits, _pool_text, write_r

from .test_fast_path import answer, random_graph, random_jobspec


def _dumps(x) -> str:
    return json.dumps(x)


def reference_vertex(v, excl: bool) -> str:
    parts = [f'{{"id": "{v.uid}", "metadata": {{"type": {_dumps(v.type)}']
    if v.basename != v.type:
        parts.append(f', "basename": {_dumps(v.basename)}')
    if v.name != f"{v.basename}{v.vid}":
        parts.append(f', "name": {_dumps(v.name)}')
    parts.append(f', "id": {v.vid}, "rank": {v.rank}')
    if excl:
        parts.append(', "exclusive": true')
    if v.unit:
        parts.append(f', "unit": {_dumps(v.unit)}')
    if v.size != 1 and excl:
        parts.append(f', "size": {v.size}')
    if v.properties:
        parts.append(f', "properties": {json.dumps(v.properties, separators=(", ", ": "))}')
    parts.append(f', "paths": {{"containment": {_dumps(v.path)}}}}}}}')
    return "".join(parts)


def reference_pool(p, mask: int) -> tuple[str, str]:
    head = f', "metadata": {{"type": {_dumps(p.type)}'
    if p.basename != p.type:
        head += f', "basename": {_dumps(p.basename)}'
    tail = ', "exclusive": true'
    if p.unit:
        tail += f', "unit": {_dumps(p.unit)}'
    if p.size != 1:
        tail += f', "size": {p.size}'
    if p.properties:
        tail += f', "properties": {json.dumps(p.properties, separators=(", ", ": "))}'
    nodes, edges = [], []
    for i in _bits(mask, p.count):
        vid, name = p.vid(i), p.name(i)
        name_part = f', "name": {_dumps(name)}' if name != f"{p.basename}{vid}" else ""
        nodes.append(
            f'{{"id": "{p.uid(i)}"{head}{name_part}, "id": {vid}, "rank": {p.rank}{tail}, '
            f'"paths": {{"containment": {_dumps(p.path(i))}}}}}}}'
        )
        edges.append(f'{{"source": "{p.parent.uid}", "target": "{p.uid(i)}"}}')
    return ", ".join(nodes), ", ".join(edges)


def reference_r(vertices, pools, slots) -> str:
    kids, roots = {}, []
    for v in vertices:
        if v.parent is not None and v.parent in vertices:
            kids.setdefault(v.parent, []).append(v)
        else:
            roots.append(v)
    pools_of = {}
    for p in pools:
        pools_of.setdefault(p.parent, []).append(p)
    nodes, edges = [], []
    stack = [(r, False) for r in roots]
    while stack:
        v, expanded = stack.pop()
        if not expanded:
            stack.append((v, True))
            ks = sorted(kids.get(v, []), key=lambda c: c.uid, reverse=True)
            stack.extend([(c, False) for c in ks])
            continue
        for p in sorted(pools_of.get(v, ()), key=v.pools.index):
            pn, pe = reference_pool(p, pools[p])
            nodes.append(pn)
            edges.append(pe)
        nodes.append(reference_vertex(v, vertices[v]))
        if v.parent is not None and v.parent in vertices:
            edges.append(f'{{"source": "{v.parent.uid}", "target": "{v.uid}"}}')
    md = (
        f', "metadata": {{"{SLOTS_METADATA_KEY}": {json.dumps(slots, separators=(", ", ": "))}}}'
        if slots
        else ""
    )
    return '{"graph": {"nodes": [' + ", ".join(nodes) + '], "edges": [' + ", ".join(edges) + "]" + md + "}}\n"


def test_r_is_the_plain_writers_text():
    written = 0
    for seed in range(120):
        rng = random.Random(seed)
        text, names = random_graph(rng)
        m = Matcher()
        m.init(text, rng.choice(["first", "hinodex", "low", "lonodex"]))
        for _ in range(25):
            js = random_jobspec(rng, names)
            a = answer(lambda: m.match(js))  # noqa: B023
            if a and a[0] in ("allocated", "reserved"):
                job = m.jobs[a[1]]
                want = reference_r(job.vertices, job.pools, job.slots)
                assert job.r == want, seed
                assert write_r(job.vertices, job.pools, job.slots) == want, seed  # kept text reused
                for p, mask in job.pools.items():
                    assert _pool_text(p, mask) == reference_pool(p, mask)
                written += 1
            if m.jobs and rng.random() < 0.3:
                m.cancel(rng.choice(list(m.jobs)))
    assert written > 500
