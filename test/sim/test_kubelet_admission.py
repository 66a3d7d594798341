"""Pure kubelet logic: what a pod requests, whether it fits a node, and the real kubelet's words for it."""

from __future__ import annotations

import pytest

from fluxqueue.sim.clock import parse_duration
from fluxqueue.sim.kubelet import (
    NodeShape,
    admission_failure,
    fit_failure,
    node_object,
    pod_requests,
    pod_runtime,
    rejected_status,
)


def pod(containers, init=(), overhead=None, **spec):
    s = {"containers": list(containers), **spec}
    if init:
        s["initContainers"] = list(init)
    if overhead:
        s["overhead"] = overhead
    return {"metadata": {"name": "p", "uid": "u"}, "spec": s}


def c(cpu=None, mem=None, limits=None, restart=None, **extra):
    req = {}
    if cpu:
        req["cpu"] = cpu
    if mem:
        req["memory"] = mem
    req.update(extra)
    res = {"requests": req}
    if limits:
        res["limits"] = limits
    out = {"name": "c", "image": "busybox", "resources": res}
    if restart:
        out["restartPolicy"] = restart
    return out


def test_requests_sum_containers_and_take_the_largest_regular_init_container():
    p = pod([c("500m", "1Gi"), c("1", "1Gi")], init=[c("4", "512Mi")])
    assert pod_requests(p) == {"cpu": 4000, "memory": 2 * 2**30}


def test_sidecar_init_containers_add_to_the_pod_and_overhead_counts():
    p = pod([c("1")], init=[c("250m", restart="Always"), c("2")], overhead={"cpu": "100m"})
    # regular init runs beside the sidecar: max(1 + 0.25, 2 + 0.25) = 2.25 cores, plus 100m overhead
    assert pod_requests(p)["cpu"] == 2350


def test_limits_alone_are_the_requests():
    p = pod([{"name": "c", "image": "x", "resources": {"limits": {"cpu": "2", "nvidia.com/gpu": "1"}}}])
    assert pod_requests(p) == {"cpu": 2000, "nvidia.com/gpu": 1}


def test_a_pod_that_does_not_fit_gets_the_kubelets_reason_and_message():
    alloc = {"cpu": 32000, "memory": 128 * 2**30, "pods": 110}
    fail = fit_failure({"cpu": 2000}, {"cpu": 31000}, 5, alloc)
    assert fail == (
        "OutOfcpu",
        "Node didn't have enough resource: cpu, requested: 2000, used: 31000, capacity: 32000",
    )
    assert fit_failure({"memory": 2**30}, {"memory": 128 * 2**30}, 1, alloc)[0] == "OutOfmemory"
    assert fit_failure({"cpu": 1000}, {}, 110, alloc)[0] == "OutOfpods"  # pods are checked first
    assert fit_failure({"nvidia.com/gpu": 1}, {}, 0, alloc)[0] == "OutOfnvidia.com/gpu"
    assert fit_failure({"cpu": 1000}, {"cpu": 31000}, 0, alloc) is None  # exactly full still fits


def test_rejected_status_is_failed_with_the_pod_was_rejected_prefix():
    st = rejected_status(
        {"metadata": {}, "status": {"phase": "Pending", "qosClass": "Burstable"}}, "OutOfcpu", "m"
    )
    assert st["phase"] == "Failed" and st["reason"] == "OutOfcpu" and st["message"] == "Pod was rejected: m"


def test_node_selector_affinity_and_noexecute_taints_are_checked_at_admission():
    node = node_object(NodeShape("node-000", cpus=4, rack="rack-1"))
    ok = pod([c("1")], nodeSelector={"fluxqueue.io/rack": "rack-1"})
    assert admission_failure(ok, node, {"cpu": 1000}, {}, 0) is None
    wrong = pod([c("1")], nodeSelector={"fluxqueue.io/rack": "rack-2"})
    assert admission_failure(wrong, node, {"cpu": 1000}, {}, 0) == (
        "NodeAffinity",
        "Predicate NodeAffinity failed",
    )
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": "fluxqueue.io/rack", "operator": "In", "values": ["rack-9"]}
                        ]
                    }
                ]
            }
        }
    }
    assert admission_failure(pod([c("1")], affinity=affinity), node, {}, {}, 0)[0] == "NodeAffinity"
    node["spec"]["taints"] = [{"key": "maintenance", "effect": "NoExecute"}]
    assert admission_failure(ok, node, {}, {}, 0)[0] == "TaintToleration"
    tolerant = pod([c("1")], tolerations=[{"key": "maintenance", "operator": "Exists"}])
    assert admission_failure(tolerant, node, {}, {}, 0) is None


def test_node_object_carries_capacity_labels_and_gpus():
    node = node_object(
        NodeShape("node-007", cpus=64, memory="256Gi", gpus=8, rack="rack-3", zone="zone-1", index=7)
    )
    st = node["status"]
    assert st["allocatable"]["nvidia.com/gpu"] == "8" and st["capacity"]["cpu"] == "64"
    labels = node["metadata"]["labels"]
    assert labels["kubernetes.io/hostname"] == "node-007"
    assert labels["fluxqueue.io/rack"] == "rack-3" and labels["topology.kubernetes.io/zone"] == "zone-1"
    assert {c["type"]: c["status"] for c in st["conditions"]}["Ready"] == "True"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("2m", 120), ("1.5h", 5400), ("1h30m", 5400), ("250ms", 0.25), ("7", 7), (3, 3)],
)
def test_runtime_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


def test_runtime_annotation_and_default():
    p = {"metadata": {"annotations": {"sim.fluxqueue.io/runtime": "2m"}}}
    assert pod_runtime(p) == 120
    assert pod_runtime({"metadata": {}}) == 10
    assert pod_runtime({"metadata": {"annotations": {"sim.fluxqueue.io/runtime": "soon"}}}) == 10
