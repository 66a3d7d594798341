import copy
import json

import pytest

from fluxqueue.fluxion.allocation import nodes_from_allocation
from fluxqueue.fluxion.jgf import GraphBuilder, synthetic_cluster
from fluxqueue.fluxion.matcher import JGFError, Matcher, read_jgf

from .helpers import TINY_JGF, jobspec, r_vertices


def test_tiny_reference_graph_loads_with_pools_for_leaves():
    g = read_jgf(TINY_JGF)
    assert (g.n_vertices, g.n_edges) == (5, 4)
    node = g.nodes["kind-worker"]
    assert node.cap == {"core": 2, "memory": 1024}
    assert sorted(p.type for p in node.pools) == ["core", "memory"]


def test_fast_and_careful_readers_build_the_same_graph():
    doc = synthetic_cluster(3, cores=4, gpus=2, memory_chunks=2, racks=2).to_jgf()
    slow = copy.deepcopy(doc)
    slow["graph"]["nodes"][5]["metadata"]["status"] = 0  # any extra key sends a run down the careful path
    for d in (doc, slow):
        g = read_jgf(d)
        assert g.root.cap == {"rack": 2, "node": 3, "core": 12, "gpu": 6, "memory": 96}
        assert sorted(g.nodes) == ["node0", "node1", "node2"]


def test_jgf_v2_with_nodes_keyed_by_id_is_refused_as_flux_sched_cannot_read_it():
    doc = copy.deepcopy(TINY_JGF)
    doc["graph"]["nodes"] = {v["id"]: {"metadata": v["metadata"]} for v in doc["graph"]["nodes"]}
    with pytest.raises(JGFError, match="JGF v2"):
        read_jgf(doc)


def _broken(path, value):
    doc = copy.deepcopy(TINY_JGF)
    target = doc
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


def _no_uniq_id():
    doc = copy.deepcopy(TINY_JGF)
    md = doc["graph"]["nodes"][4]["metadata"]
    del md["uniq_id"]
    doc["graph"]["nodes"][4]["id"] = "mem"
    for e in doc["graph"]["edges"]:
        if e["target"] == "4":
            e["target"] = "mem"
    return doc


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("", "empty JGF"),
        ("{nope", "not valid JSON"),
        ({"nodes": []}, "no 'graph' object"),
        ({"graph": {"nodes": []}}, "no 'graph.edges'"),
        ({"graph": {"nodes": [], "edges": []}}, "no vertices"),
        (_broken(["graph", "edges"], KeyError), "no 'graph.edges'"),
        (_broken(["graph", "nodes", 2, "metadata", "type"], KeyError), "vertex '2' has no 'metadata.type'"),
        (_broken(["graph", "nodes", 3, "metadata", "paths"], KeyError), "vertex '3' has no 'metadata.paths'"),
        (_broken(["graph", "edges", 1, "target"], "99"), "edge 1 -> 99: source and/or target vertex not found"),
        (_broken(["graph", "nodes", 4, "metadata", "size"], "big"), "'metadata.size' must be an integer"),
        # jansson's types (fill_fetcher): integers are JSON integers, strings strings, no nulls
        (_broken(["graph", "nodes", 4, "metadata", "size"], 2.0), "'metadata.size' must be an integer"),
        (_broken(["graph", "nodes", 1, "metadata", "id"], 1.0), "'metadata.id' must be an integer"),
        (_broken(["graph", "nodes", 2, "metadata", "rank"], True), "'metadata.rank' must be an integer"),
        (_broken(["graph", "nodes", 2, "metadata", "basename"], None), "'metadata.basename' must be a string"),
        (_broken(["graph", "nodes", 1, "metadata", "name"], 7), "'metadata.name' must be a string"),
        (_broken(["graph", "nodes", 2, "metadata", "unit"], None), "'metadata.unit' must be a string"),
        (_broken(["graph", "nodes", 2, "metadata", "exclusive"], "no"), "'metadata.exclusive' must be true or false"),
        (_broken(["graph", "nodes", 1, "metadata", "status"], "down"), "'metadata.status' must be an integer"),
        (_broken(["graph", "nodes", 2, "metadata", "type"], 3), "'metadata.type' must be a string"),
        (_broken(["graph", "nodes", 2, "id"], 2), "'id' must be a string"),
        (_broken(["graph", "nodes", 2, "metadata", "paths"], {"containment": 5}), "values must be strings"),
        (_broken(["graph", "edges", 1, "source"], 1), "must be vertex id strings"),
        (_broken(["graph", "edges", 1, "metadata"], None), "'metadata' must be an object"),
        (_broken(["graph", "edges", 1, "metadata"], {"subsystem": 1}), "'metadata.subsystem' must be a string"),
        (_broken(["graph", "edges", 1], {"source": "0", "target": "1"}), "edge 0 -> 1 is listed twice"),
        # the containment root is the vertex with a one-level path (is_root), and only one may have it
        (_broken(["graph", "nodes", 0, "metadata", "paths"], {"containment": "cluster0"}), "no containment root"),
        (_broken(["graph", "nodes", 2, "metadata", "paths"], {"containment": "/core0"}), "two containment roots"),
        (_no_uniq_id(), "cannot be inferred from the outer 'id'"),
    ],
)  # fmt: skip
def test_bad_jgf_is_rejected_with_what_is_wrong(doc, message):
    with pytest.raises(JGFError) as exc:
        read_jgf(doc)
    assert message in str(exc.value)


def test_r_uses_flux_sched_writer_format():
    g = GraphBuilder()
    n = g.add(g.root, "node", "worker-a", vid=7)
    g.add_many(n, "core", 4)
    g.add_many(n, "memory", 2, size=16, unit="GiB")
    m = Matcher()
    m.init(g.to_jgf())
    out = m.match(jobspec(nodes=1, cores=2, memory=20))
    r = out.r
    assert r.endswith("}}\n") and r.count("\n") == 1
    assert '", "' in r and '": ' in r and '":"' not in r
    vertices = r_vertices(r)
    # post-order: leaves before their node, the root last; outer id is the uniq_id; no uniq_id key
    assert [v["metadata"]["type"] for v in vertices] == [
        "core",
        "core",
        "memory",
        "memory",
        "node",
        "cluster",
    ]
    core = vertices[1]["metadata"]
    # "first" takes the highest ids
    assert core == {
        "type": "core", "id": 3, "rank": -1, "exclusive": True,
        "paths": {"containment": "/cluster0/worker-a/core3"},
    }  # fmt: skip
    assert vertices[0]["metadata"]["id"] == 2
    mem = vertices[2]["metadata"]
    assert (mem["unit"], mem["size"], mem["exclusive"]) == ("GiB", 16, True)
    node = vertices[4]["metadata"]
    assert node["name"] == "worker-a" and "basename" not in node and "exclusive" not in node
    assert vertices[-1]["metadata"] == {
        "type": "cluster",
        "id": 0,
        "rank": -1,
        "paths": {"containment": "/cluster0"},
    }
    edges = json.loads(r)["graph"]["edges"]
    assert all(set(e) == {"source", "target"} for e in edges)
    assert {e["target"] for e in edges} == {v["id"] for v in vertices[:-1]}
    assert nodes_from_allocation(r) == {"worker-a": nodes_from_allocation(r)["worker-a"]}
    a = nodes_from_allocation(r)["worker-a"]
    assert (a.cores, a.memory, a.gpus, a.slots) == (2, 32 * 2**30, 0, 1)


def test_node_names_are_recovered_exactly_even_when_the_writer_omits_them():
    g = GraphBuilder()
    for name in ("node3", "ip-10-0-0-1.ec2.internal", "kind-worker2"):
        n = g.add(g.root, "node", name)
        g.add_many(n, "core", 1)
    m = Matcher()
    m.init(g.to_json())
    r = m.match(jobspec(nodes=3)).r
    assert set(nodes_from_allocation(r)) == {"node3", "ip-10-0-0-1.ec2.internal", "kind-worker2"}


def test_allocation_parser_reads_flux_sched_output():
    # prior-art §7.6: real output (name omitted, basename kind-worker + id 1)
    r = {"graph": {"nodes": [
        {"id": "3", "metadata": {"type": "core", "id": 0, "rank": -1, "exclusive": True, "paths": {"containment": "/cluster0/0/kind-worker1/core0"}}},
        {"id": "2", "metadata": {"type": "node", "basename": "kind-worker", "id": 1, "rank": -1, "paths": {"containment": "/cluster0/0/kind-worker1"}}},
        {"id": "1", "metadata": {"type": "subnet", "basename": "", "id": 0, "rank": -1, "paths": {"containment": "/cluster0/0"}}},
        {"id": "0", "metadata": {"type": "cluster", "id": 1, "rank": -1, "paths": {"containment": "/cluster0"}}}],
        "edges": [{"source": "2", "target": "3"}, {"source": "1", "target": "2"}, {"source": "0", "target": "1"}]}}  # fmt: skip
    got = nodes_from_allocation(json.dumps(r), cores_per_slot=1)
    assert list(got) == ["kind-worker1"]
    assert (got["kind-worker1"].cores, got["kind-worker1"].slots) == (1, 1)


def _signature(g):
    return sorted(
        (
            v.uid, v.type, v.name, v.vid, v.path, v.parent.uid if v.parent else None, v.properties,
            sorted(v.cap.items()),
            sorted((p.type, p.count, p.size, p.unit, tuple(p.uid(i) for i in range(p.count))) for p in v.pools),
        )
        for v in g.vertices()
    )  # fmt: skip


def _varied_graph():
    g = GraphBuilder()
    rack = g.add(g.root, "rack", "rack0", properties={"row": "1"})
    for i, name in enumerate(["node-a", "node3", "gpu-node"]):
        n = g.add(rack, "node", name, properties={"zone": "z"} if i else None)
        for s in range(2 if i == 0 else 1):
            sock = g.add(n, "socket", f"socket{s}", vid=s)
            g.add_many(sock, "core", 3)
        g.add_many(n, "gpu", i)
        g.add_many(n, "memory", 2, size=8, unit="GiB")
    g.add(g.root, "node", "lonely")  # a node without children stays a vertex
    return g


def test_compact_text_fast_path_reads_the_same_graph_as_the_careful_reader():
    from fluxqueue.fluxion.matcher.fastjgf import try_read_compact

    for g in (_varied_graph(), synthetic_cluster(5, cores=3, gpus=2, memory_chunks=2, racks=2)):
        fast = try_read_compact(g.to_json())
        assert fast is not None
        careful = read_jgf(g.to_jgf())
        assert _signature(fast) == _signature(careful)
        assert (fast.n_vertices, fast.n_edges) == (careful.n_vertices, careful.n_edges)


def test_text_that_differs_from_the_compact_layout_falls_back_to_the_careful_reader():
    from fluxqueue.fluxion.matcher.fastjgf import try_read_compact

    doc = synthetic_cluster(2, cores=2).to_jgf()
    assert try_read_compact(json.dumps(doc)) is None  # other separators
    doc["graph"]["edges"][3]["source"] = "0"  # a core hung under the cluster
    text = GraphBuilder.to_json.__globals__["dumps"](doc)
    assert try_read_compact(text) is None
    assert read_jgf(text).root.pools  # the careful reader takes it as written


# -- what flux-sched's JGF reader loads although it is not a plain tree (resource_reader_jgf.cpp) -------------


def _with(doc, nodes=(), edges=()):
    doc = copy.deepcopy(doc)
    doc["graph"]["nodes"].extend(copy.deepcopy(list(nodes)))
    doc["graph"]["edges"].extend(copy.deepcopy(list(edges)))
    return doc


def _v(vid, type_, path, **md):
    return {"id": vid, "metadata": {"type": type_, "uniq_id": int(vid), "paths": path, **md}}


def _e(s, t, sub="containment"):
    return {"source": s, "target": t, "metadata": {"subsystem": sub}}


SLOT_CORE = {
    "version": 1,
    "resources": [{"type": "slot", "count": 1, "label": "a", "with": [{"type": "core", "count": 1}]}],
    "tasks": [{"command": ["app"], "slot": "a", "count": {"per_slot": 1}}],
    "attributes": {"system": {"duration": 10}},
}


def test_a_vertex_with_two_containment_parents_belongs_to_the_first_that_reaches_it():
    # node "other" also contains core0; the walk from the root reaches core0 first through kind-worker
    # (edges are walked in the order they are listed), so core0 stays kind-worker's.
    doc = _with(
        TINY_JGF,
        nodes=[_v("5", "node", {"containment": "/cluster0/other"}, name="other")],
        edges=[_e("0", "5"), _e("5", "2")],
    )
    g = read_jgf(doc)
    assert g.nodes["kind-worker"].cap == {"core": 2, "memory": 1024}
    assert g.nodes["other"].cap == {}
    # listed the other way round, the first parent to reach core0 is "other"
    doc2 = copy.deepcopy(doc)
    doc2["graph"]["edges"] = [_e("0", "5"), _e("5", "2"), *TINY_JGF["graph"]["edges"]]
    g2 = read_jgf(doc2)
    assert g2.nodes["other"].cap == {"core": 1}
    assert g2.nodes["kind-worker"].cap == {"core": 1, "memory": 1024}
    m = Matcher()
    m.init(doc)
    assert m.match(SLOT_CORE).nodes == ["kind-worker"]


def test_a_jgf_with_another_subsystem_loads_and_matches_on_containment():
    # a power subsystem: a pdu vertex with only a power path, and power edges to the node
    doc = copy.deepcopy(TINY_JGF)
    doc["graph"]["nodes"][1]["metadata"]["paths"]["power"] = "/pdu0/kind-worker"
    doc = _with(doc, nodes=[_v("5", "pdu", {"power": "/pdu0"})], edges=[_e("5", "1", "power")])
    g = read_jgf(doc)
    assert (g.n_vertices, g.n_edges) == (6, 5)
    assert g.root.cap == {"node": 1, "core": 2, "memory": 1024}
    assert g.other_types == {"pdu"}
    m = Matcher()
    m.init(json.dumps(doc))
    assert m.match(SLOT_CORE).status == "allocated"
    pdu = copy.deepcopy(SLOT_CORE)
    pdu["resources"] = [{"type": "pdu", "count": 1, "with": SLOT_CORE["resources"]}]
    assert m.match(pdu).status in ("busy", "unsatisfiable")  # a known type: an ordinary no-match
    with pytest.raises(JGFError, match="two power roots"):
        read_jgf(_with(doc, nodes=[_v("6", "pdu", {"power": "/pdu1"})]))


def test_vertices_the_walk_never_reaches_and_cycles_are_loaded_as_flux_sched_does():
    orphan = _with(TINY_JGF, nodes=[_v("5", "node", {"containment": "/cluster0/lost"}, name="lost")])
    g = read_jgf(orphan)
    assert sorted(g.nodes) == ["kind-worker"] and g.n_vertices == 6
    back = _with(TINY_JGF, edges=[_e("1", "0"), _e("2", "2")])  # an edge back to the root, a self loop
    assert read_jgf(back).root.cap == {"node": 1, "core": 2, "memory": 1024}
    with pytest.raises(JGFError, match=r"no 'metadata\.paths\.containment'"):
        read_jgf(_with(TINY_JGF, nodes=[_v("5", "pdu", {"power": "/pdu0"})], edges=[_e("1", "5")]))


def test_the_compact_fast_path_refuses_what_the_careful_reader_refuses():
    text = synthetic_cluster(2, cores=2, memory_chunks=0).to_json()
    for old, new in [
        ('"exclusive":false', '"exclusive":"no"'),
        ('"size":1,', '"size":1.0,'),
        ('"unit":""', '"unit":null'),
        ('"uniq_id":3,', '"uniq_id":true,'),
    ]:
        assert old in text
        bad = (
            text.replace(old, new, 1)
            if old != '"uniq_id":3,'
            else text.replace('"uniq_id":1,', '"uniq_id":true,', 1)
        )
        with pytest.raises(JGFError):
            read_jgf(bad)
