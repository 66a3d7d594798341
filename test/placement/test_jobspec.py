"""Jobspecs Fluxion accepts: one slot per pod, shared nodes unless exclusive, constraints from the pod spec."""

import pytest

from fluxqueue.placement.graph import build_cluster_graph
from fluxqueue.placement.jobspec import jobspec_for, slot_shape
from fluxqueue.placement.resources import Resources
from fluxqueue.placement.units import UnitError, single_set_unit

GI = 2**30


def node(name, labels=None, taints=None):
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"taints": taints or []},
        "status": {
            "allocatable": {"cpu": "8", "memory": "32Gi"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


GRAPH = build_cluster_graph(
    [node("n1", {"disk": "ssd"}), node("n2", taints=[{"key": "gpu", "effect": "NoSchedule"}])]
)


def unit(size=4, per_pod=Resources(1500, 3 * GI + 1, 1, 1), **kw):
    return single_set_unit(
        kind="Job", namespace="ml", name="train", uid="u", size=size, per_pod=per_pod, duration=900, **kw
    )


def test_shared_nodes_one_slot_per_pod_without_a_node_level():
    js = jobspec_for(unit(tolerations=[{"operator": "Exists"}]), GRAPH)
    assert set(js) == {"version", "resources", "tasks", "attributes"}
    assert js["version"] == 1
    assert js["resources"] == [
        {
            "type": "slot",
            "count": 4,
            "label": "task",
            "with": [
                {"type": "core", "count": 2},
                {"type": "memory", "count": 4, "unit": "GiB"},
                {"type": "gpu", "count": 1},
            ],
        }
    ]
    assert js["tasks"] == [{"command": ["job", "ml", "train"], "slot": "task", "count": {"per_slot": 1}}]
    assert js["attributes"] == {"system": {"duration": 900}}


def test_exclusive_units_get_whole_nodes():
    js = jobspec_for(unit(exclusive=True, tolerations=[{"operator": "Exists"}]), GRAPH)
    (top,) = js["resources"]
    assert (top["type"], top["count"], top["exclusive"]) == ("node", 4, True)
    assert top["with"][0]["type"] == "slot" and top["with"][0]["count"] == 1


def test_constraints_from_selector_and_taints():
    js = jobspec_for(unit(node_selector={"disk": "ssd"}), GRAPH)
    assert js["attributes"]["system"]["constraints"] == {
        "and": [{"properties": ["disk=ssd"]}, {"not": [{"hostlist": ["n2"]}]}]
    }


def test_a_pod_asking_no_cpu_still_gets_a_core_and_no_memory_entry():
    assert slot_shape(Resources(0, 0, 0, 1)) == (1, 0, 0)
    js = jobspec_for(
        unit(size=1, per_pod=Resources(100, 0, 0, 1), tolerations=[{"operator": "Exists"}]), GRAPH
    )
    assert js["resources"][0]["with"] == [{"type": "core", "count": 1}]


def test_memory_is_counted_in_the_graphs_chunk_unit():
    g = build_cluster_graph([node("n1")], memory_chunk_bytes=512 * 2**20)
    js = jobspec_for(unit(size=1, per_pod=Resources(1000, GI + 1, 0, 1)), g)
    assert js["resources"][0]["with"][1] == {"type": "memory", "count": 3 * 512, "unit": "MiB"}


def test_size_zero_units_are_not_placeable():
    with pytest.raises(UnitError, match="0 pods"):
        jobspec_for(unit(size=0), GRAPH)
