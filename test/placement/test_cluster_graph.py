"""The cluster graph: what each node offers after foreign pods, which nodes are left out and why, and the
"never satisfiable" judgement made per node."""

import pytest

from fluxqueue.fluxion.allocation import nodes_from_allocation
from fluxqueue.placement.graph import build_cluster_graph, memory_unit
from fluxqueue.placement.resources import Resources
from fluxqueue.placement.units import single_set_unit

GI = 2**30


def node(
    name, cpu="8", memory="32Gi", gpus=None, labels=None, ready="True", unschedulable=False, taints=None
):
    alloc = {"cpu": cpu, "memory": memory, "pods": "110"}
    if gpus:
        alloc["nvidia.com/gpu"] = str(gpus)
    n = {
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "spec": {},
        "status": {"allocatable": alloc, "conditions": [{"type": "Ready", "status": ready}] if ready else []},
    }
    if unschedulable:
        n["spec"]["unschedulable"] = True
    if taints:
        n["spec"]["taints"] = taints
    return n


def foreign(node_name, cpu="0", memory="0", phase="Running", gpus=None):
    requests = {"cpu": cpu, "memory": memory}
    if gpus:
        requests["nvidia.com/gpu"] = str(gpus)
    return {
        "spec": {"nodeName": node_name, "containers": [{"name": "c", "resources": {"requests": requests}}]},
        "status": {"phase": phase},
    }


def unit(cpu_milli=1000, memory=0, gpus=0, size=1, exclusive=False, selector=None, tolerations=None):
    return single_set_unit(
        kind="Job",
        namespace="ns",
        name="j",
        uid="u",
        size=size,
        per_pod=Resources(cpu_milli, memory, gpus, 1),
        duration=60,
        exclusive=exclusive,
        node_selector=selector or {},
        tolerations=tolerations or [],
    )


def test_foreign_pods_reduce_what_a_node_offers_rounding_down():
    g = build_cluster_graph(
        [node("n1", cpu="8", memory="32Gi", gpus=4)],
        [
            foreign("n1", cpu="1500m", memory="1536Mi", gpus=1),
            foreign("n1", cpu="4", phase="Succeeded"),
            foreign("elsewhere", cpu="1"),
        ],
    )
    cap = g.node_capacity("n1")
    assert (cap.cores, cap.memory_chunks, cap.memory, cap.gpus) == (6, 30, 30 * GI, 3)
    assert cap.foreign == Resources(1500, 1536 * 2**20, 1, 1)


def test_unready_cordoned_control_plane_and_deleting_nodes_are_excluded_with_a_reason():
    deleting = node("n5")
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    g = build_cluster_graph(
        [
            node("n1"),
            node("n2", ready="False"),
            node("n3", unschedulable=True),
            node("n4", labels={"node-role.kubernetes.io/control-plane": ""}),
            deleting,
            node("n6", ready=None),
        ]
    )
    assert list(g.nodes) == ["n1"]
    assert g.excluded == {
        "n2": "NotReady",
        "n3": "cordoned",
        "n4": "control-plane",
        "n5": "being deleted",
        "n6": "NotReady",
    }


def test_jgf_has_exact_node_names_racks_zones_and_one_vertex_per_core_chunk_and_gpu():
    g = build_cluster_graph(
        [
            node(
                "b-node",
                cpu="2",
                memory="2Gi",
                gpus=1,
                labels={"topology.kubernetes.io/zone": "z1", "fluxqueue.io/rack": "r1"},
            ),
            node(
                "a-node",
                cpu="1",
                memory="1Gi",
                labels={"topology.kubernetes.io/zone": "z1", "fluxqueue.io/rack": "r0"},
            ),
        ]
    )
    vertices = g.jgf["graph"]["nodes"]
    by_path = {v["metadata"]["paths"]["containment"]: v["metadata"] for v in vertices}
    assert "/cluster0/z1/r0/a-node" in by_path and "/cluster0/z1/r1/b-node/gpu0" in by_path
    assert by_path["/cluster0/z1/r1/b-node"]["name"] == "b-node"
    assert by_path["/cluster0/z1/r1/b-node"]["properties"]["fluxqueue.io/rack=r1"] == "true"
    kinds = [v["metadata"]["type"] for v in vertices]
    assert kinds.count("core") == 3 and kinds.count("memory") == 3 and kinds.count("gpu") == 1
    memory = by_path["/cluster0/z1/r0/a-node/memory0"]
    assert (memory["size"], memory["unit"]) == (1, "GiB")
    edges = g.jgf["graph"]["edges"]
    assert (
        len(edges) == len(vertices) - 1
    )  # a tree: one containment edge per non-root vertex, parent -> child
    # An allocation of the whole graph maps back to Kubernetes node names through the fluxion parser.
    assigned = nodes_from_allocation(g.jgf)
    assert (
        assigned["b-node"].cores == 2 and assigned["b-node"].memory == 2 * GI and assigned["b-node"].gpus == 1
    )


def test_without_zone_labels_there_is_no_zone_level_and_one_default_rack():
    g = build_cluster_graph([node("n1")])
    paths = {v["metadata"]["paths"]["containment"] for v in g.jgf["graph"]["nodes"]}
    assert "/cluster0/rack0/n1" in paths


@pytest.mark.parametrize(
    "chunk,expected",
    [(2**30, (1, "GiB")), (512 * 2**20, (512, "MiB")), (1000, (1000, "B")), (4 * 2**30, (4, "GiB"))],
)
def test_memory_vertex_unit_convention(chunk, expected):
    assert memory_unit(chunk) == expected


def test_graph_building_is_deterministic():
    nodes = [node(f"n{i}", labels={"fluxqueue.io/rack": f"r{i % 2}"}) for i in range(5)]
    assert build_cluster_graph(nodes).jgf == build_cluster_graph(list(reversed(nodes))).jgf


def test_fits_ever_is_judged_per_node_not_by_summed_capacity():
    g = build_cluster_graph([node("n1", cpu="64"), node("n2", cpu="32")])
    ok, reason = g.fits_ever(unit(cpu_milli=96000))
    assert not ok and reason == "asks 96 cores per pod, largest eligible node has 64"
    assert g.fits_ever(unit(cpu_milli=64000)) == (True, "")
    ok, reason = g.fits_ever(unit(cpu_milli=40000, size=2))
    assert not ok and "eligible nodes hold at most 1" in reason


def test_fits_ever_memory_gpu_exclusive_and_constraints():
    g = build_cluster_graph(
        [node("n1", memory="16Gi", gpus=2), node("n2", memory="16Gi", labels={"disk": "ssd"})]
    )
    assert g.fits_ever(unit(memory=20 * GI)) == (
        False,
        "asks 20Gi memory per pod, largest eligible node has 16Gi",
    )
    assert g.fits_ever(unit(gpus=4)) == (False, "asks 4 GPUs per pod, largest eligible node has 2")
    assert g.fits_ever(unit(size=3, exclusive=True))[0] is False
    assert g.fits_ever(unit(size=2, exclusive=True)) == (True, "")
    ok, reason = g.fits_ever(unit(selector={"disk": "nvme"}))
    assert not ok and "no node matches" in reason and "nodeSelector disk=nvme" in reason
    assert g.fits_ever(unit(selector={"disk": "ssd"}, gpus=1))[0] is False  # the ssd node has no GPU


def test_fits_ever_on_an_empty_cluster_names_the_exclusions():
    g = build_cluster_graph([node("n1", ready="False")])
    ok, reason = g.fits_ever(unit())
    assert not ok and reason == "no schedulable nodes in the cluster (1 NotReady)"


def test_tainted_nodes_stay_in_the_graph_but_only_tolerating_units_fit():
    g = build_cluster_graph([node("n1", taints=[{"key": "gpu", "effect": "NoSchedule"}])])
    assert "n1" in g.nodes
    ok, reason = g.fits_ever(unit())
    assert not ok and "untolerated taint gpu:NoSchedule" in reason
    assert g.fits_ever(unit(tolerations=[{"key": "gpu", "operator": "Exists"}])) == (True, "")


def test_largest_node():
    g = build_cluster_graph([node("n1", cpu="4"), node("n2", cpu="16")])
    assert g.largest_node.name == "n2"
    assert build_cluster_graph([]).largest_node is None
