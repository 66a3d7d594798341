"""Placement end to end against the Fluxion service: graph from Nodes, jobspec from a unit, Match, then pods
assigned to nodes. Checks what Kubernetes would check: no node over-committed (pod requests within
allocatable, foreign pods included), nodeSelector and taints honoured, exclusive pods alone on their nodes,
and an unsatisfiable request reported as such, consistently with fits_ever."""

import pytest

from fluxqueue.fluxion.client import FluxionClient, MatchStatus
from fluxqueue.fluxion.server import FluxionServer
from fluxqueue.placement.binding import assign_pods
from fluxqueue.placement.graph import build_cluster_graph
from fluxqueue.placement.jobspec import jobspec_for
from fluxqueue.placement.resources import Resources, pod_requests
from fluxqueue.placement.units import unit_from_job

GI = 2**30


def node(name, labels=None, taints=None):
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "spec": {"taints": taints or []},
        "status": {
            "allocatable": {"cpu": "8", "memory": "16Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


NODES = [
    node("node-0", {"disk": "ssd"}),
    node("node-1"),
    node("node-2"),
    node("node-3", taints=[{"key": "dedicated", "value": "infra", "effect": "NoSchedule"}]),
]
FOREIGN = [  # a DaemonSet-like pod using most of node-1
    {
        "spec": {
            "nodeName": "node-1",
            "containers": [{"name": "d", "resources": {"requests": {"cpu": "6", "memory": "1Gi"}}}],
        },
        "status": {"phase": "Running"},
    }
]


def job(name, parallelism, cpu, memory="1Gi", labels=None, **pod_spec):
    return {
        "metadata": {"name": name, "namespace": "ml", "uid": f"uid-{name}", "labels": labels or {}},
        "spec": {
            "parallelism": parallelism,
            "completionMode": "Indexed",
            "template": {
                "spec": {
                    "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": memory}}}],
                    **pod_spec,
                }
            },
        },
    }


def pods_of(j, n):
    template = j["spec"]["template"]
    return [
        {
            "metadata": {
                "name": f"{j['metadata']['name']}-{i}",
                "annotations": {"batch.kubernetes.io/job-completion-index": str(i)},
            },
            "spec": dict(template["spec"]),
            "status": {},
        }
        for i in range(n)
    ]


@pytest.fixture
async def fluxion():
    server = FluxionServer(port=0)
    await server.start()
    client = FluxionClient(server.address)
    graph = build_cluster_graph(NODES, FOREIGN)
    await client.init(graph.jgf, policy="first")
    yield client, graph
    await client.close()
    await server.stop(0)


class Ledger:
    """What the kubelets would see: every bound pod's requests per node, plus the foreign load."""

    def __init__(self):
        self.used = {n["metadata"]["name"]: Resources(0, 0, 0, 0) for n in NODES}
        for p in FOREIGN:
            self.used[p["spec"]["nodeName"]] += pod_requests(p)

    def bind(self, pods, plan):
        by_name = {p["metadata"]["name"]: p for p in pods}
        for name, n in plan.items():
            self.used[n] += pod_requests(by_name[name])
            assert self.used[n].cpu_milli <= 8000 and self.used[n].memory <= 16 * GI, f"{n} over-committed"


async def place(client, graph, ledger, j, expect=MatchStatus.ALLOCATED):
    unit = unit_from_job(j)
    result = await client.match(jobspec_for(unit, graph))
    assert graph.fits_ever(unit)[0] == (result.status != MatchStatus.UNSATISFIABLE)
    assert result.status == expect, result.message
    if expect != MatchStatus.ALLOCATED:
        return result, {}
    pods = pods_of(j, unit.size)
    plan = assign_pods(result.nodes, pods, per_pod=unit.per_pod, exclusive=unit.exclusive)
    assert len(plan) == unit.size, (plan, result.nodes)  # the whole gang has nodes
    ledger.bind(pods, plan)
    return result, plan


async def test_a_gang_packs_onto_allowed_nodes_without_over_commit(fluxion):
    client, graph = fluxion
    ledger = Ledger()
    _, plan = await place(
        client, graph, ledger, job("train", 4, "2500m")
    )  # 3 cores per slot: 2 on node-0, 2 on node-2
    assert "node-3" not in plan.values()  # tainted, not tolerated
    # node-1 has 2 free cores after the foreign pod: no 3-core slot fits there.
    assert "node-1" not in plan.values()
    # Fill what is left with 1-core pods until Fluxion says busy: never an over-commit on the way.
    for i in range(40):
        result = await client.match(jobspec_for(unit_from_job(job(f"small-{i}", 1, "1")), graph))
        if result.status == MatchStatus.BUSY:
            break
        assert result.status == MatchStatus.ALLOCATED
        pods = pods_of(job(f"small-{i}", 1, "1"), 1)
        ledger.bind(pods, assign_pods(result.nodes, pods, per_pod=Resources(1000, GI, 0, 1)))
    else:
        pytest.fail("the cluster never filled up")
    assert ledger.used["node-3"] == Resources(0, 0, 0, 0)


async def test_node_selector_and_toleration_steer_pods(fluxion):
    client, graph = fluxion
    ledger = Ledger()
    _, plan = await place(client, graph, ledger, job("ssd", 2, "2", nodeSelector={"disk": "ssd"}))
    assert set(plan.values()) == {"node-0"}
    tolerant = job(
        "infra",
        2,
        "3",
        tolerations=[{"key": "dedicated", "operator": "Equal", "value": "infra", "effect": "NoSchedule"}],
        affinity={
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-3"]}]}
                    ]
                }
            }
        },
    )
    _, plan = await place(client, graph, ledger, tolerant)
    assert set(plan.values()) == {"node-3"}


async def test_exclusive_pods_get_whole_nodes_of_their_own(fluxion):
    client, graph = fluxion
    ledger = Ledger()
    _, plan = await place(
        client, graph, ledger, job("excl", 2, "1", labels={"fluxqueue.io/exclusive": "true"})
    )
    held = set(plan.values())
    assert len(held) == 2
    # Nothing else lands on a node held exclusively, even though its cores are mostly idle.
    for i in range(30):
        result = await client.match(jobspec_for(unit_from_job(job(f"s{i}", 1, "1")), graph))
        if result.status == MatchStatus.BUSY:
            break
        assert not held & set(result.nodes), (held, result.nodes)
    else:
        pytest.fail("the cluster never filled up")


async def test_unsatisfiable_agrees_with_fits_ever(fluxion):
    client, graph = fluxion
    big = unit_from_job(job("big", 1, "12"))
    ok, reason = graph.fits_ever(big)
    assert not ok and reason == "asks 12 cores per pod, largest eligible node has 8"
    result = await client.match(jobspec_for(big, graph))
    assert result.status == MatchStatus.UNSATISFIABLE
