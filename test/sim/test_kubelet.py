"""Simulated kubelets against the API emulator: pods bound to a node run, fail, get rejected when they do not
fit (the over-commit evidence), stop gracefully when deleted, and wait while their node is NotReady."""

from __future__ import annotations

import pytest
from support.polling import caught_up, eventually, first_version

from fluxqueue.sim.apiserver import APIError
from fluxqueue.sim.apiserver import resources as R

NS = "default"


@pytest.fixture
async def cluster(start_cluster):
    return await start_cluster(nodes=2, cpus=4, memory="8Gi", gpus=1, racks=1)


def bare_pod(name, cpu="1", runtime="5s", node=None, restart="Never", **ann):
    annotations = {"sim.fluxqueue.io/runtime": runtime, **ann}
    spec = {
        "schedulerName": "fluxqueue",  # no simulated scheduler serves it: the tests bind by hand
        "restartPolicy": restart,
        "containers": [{"name": "main", "image": "busybox:1.36", "resources": {"requests": {"cpu": cpu}}}],
    }
    if node:
        spec["nodeName"] = node
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations},
        "spec": spec,
    }


async def phase_of(api, name, want):
    try:
        p = await api.client.get(R.PODS, name, namespace=NS)
    except APIError:
        return None
    return p if p["status"].get("phase") == want else None


async def bind(api, name, node):
    await api.client.create(
        R.PODS,
        {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name},
            "target": {"kind": "Node", "name": node},
        },
        namespace=NS,
        subresource="binding",
    )


async def test_a_bound_pod_runs_then_succeeds(apiserver, cluster):
    api = apiserver
    created = await api.client.create(R.PODS, bare_pod("ok", runtime="30s"), namespace=NS)
    await eventually(lambda: caught_up(cluster.informer(R.PODS), created))
    p = await api.client.get(R.PODS, "ok", namespace=NS)
    assert p["status"]["phase"] == "Pending" and not p["spec"].get("nodeName")  # nobody bound it
    await bind(api, "ok", "node-001")
    # Running for 30 simulated seconds (0.3 s): every version is read, so no poll can fall beside it.
    running = await first_version(api, R.PODS, created, lambda p: p["status"].get("phase") == "Running")
    st = running["status"]
    assert st["podIP"].startswith("10.") and st["hostIP"] and st["startTime"]
    conds = {c["type"]: c["status"] for c in st["conditions"]}
    assert conds == {
        "PodReadyToStartContainers": "True",
        "Initialized": "True",
        "Ready": "True",
        "ContainersReady": "True",
        "PodScheduled": "True",
    }
    assert st["containerStatuses"][0]["state"]["running"]["startedAt"]
    done = await eventually(lambda: phase_of(api, "ok", "Succeeded"))
    term = done["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 0 and term["reason"] == "Completed"
    assert cluster.rejections == []


async def test_a_pod_asked_to_fail_ends_failed_with_exit_code_1(apiserver, cluster):
    api = apiserver
    await api.client.create(
        R.PODS, bare_pod("boom", node="node-000", **{"sim.fluxqueue.io/fail": "true"}), namespace=NS
    )
    p = await eventually(lambda: phase_of(api, "boom", "Failed"))
    assert p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 1


async def test_an_over_committing_bind_is_rejected_by_the_kubelet_with_outofcpu(apiserver, cluster):
    api = apiserver
    await api.client.create(R.PODS, bare_pod("big", cpu="3", runtime="1h"), namespace=NS)
    await bind(api, "big", "node-000")
    await eventually(lambda: phase_of(api, "big", "Running"))
    await api.client.create(R.PODS, bare_pod("extra", cpu="2", runtime="1h"), namespace=NS)
    await bind(api, "extra", "node-000")  # 3 + 2 > 4 CPUs: the API accepts it, the kubelet must not
    p = await eventually(lambda: phase_of(api, "extra", "Failed"))
    assert p["status"]["reason"] == "OutOfcpu"
    assert p["status"]["message"] == (
        "Pod was rejected: Node didn't have enough resource: cpu, requested: 2000, used: 3000, capacity: 4000"
    )
    assert [(r["pod"], r["node"], r["reason"]) for r in cluster.rejections] == [
        ("default/extra", "node-000", "OutOfcpu")
    ]
    events = (await api.client.list(R.EVENTS, namespace=NS, field_selector="involvedObject.name=extra"))[
        "items"
    ]
    assert any(e["reason"] == "OutOfcpu" and e["type"] == "Warning" for e in events)
    # the rejected pod holds nothing: a pod that fits the remaining CPU still runs
    await api.client.create(R.PODS, bare_pod("fits", cpu="1", runtime="1h", node="node-000"), namespace=NS)
    await eventually(lambda: phase_of(api, "fits", "Running"))


async def test_gpus_are_admitted_up_to_the_nodes_count(apiserver, cluster):
    api = apiserver
    for name in ("g1", "g2"):
        body = bare_pod(name, cpu="100m", runtime="1h", node="node-001")
        body["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": "1"}}
        await api.client.create(R.PODS, body, namespace=NS)
    await eventually(lambda: phase_of(api, "g1", "Running"))
    p = await eventually(lambda: phase_of(api, "g2", "Failed"))
    assert p["status"]["reason"] == "OutOfnvidia.com/gpu"


async def test_a_deleted_running_pod_terminates_then_disappears(apiserver, cluster):
    api = apiserver
    await api.client.create(R.PODS, bare_pod("victim", runtime="1h", node="node-000"), namespace=NS)
    await eventually(lambda: phase_of(api, "victim", "Running"))
    out = await api.client.delete(R.PODS, "victim", namespace=NS)
    assert out["metadata"]["deletionTimestamp"]  # graceful: the kubelet finishes it

    async def gone():
        try:
            await api.client.get(R.PODS, "victim", namespace=NS)
            return False
        except APIError as exc:
            return exc.code == 404

    await eventually(gone, 5)


async def test_onfailure_pods_restart_in_place(apiserver, cluster):
    api = apiserver
    body = bare_pod(
        "crash", runtime="1s", node="node-001", restart="OnFailure", **{"sim.fluxqueue.io/fail": "true"}
    )
    await api.client.create(R.PODS, body, namespace=NS)

    async def restarted():
        p = await phase_of(api, "crash", "Running")
        return p if p and p["status"]["containerStatuses"][0]["restartCount"] >= 1 else None

    p = await eventually(restarted, 10)
    assert p["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"] == 1


async def test_a_notready_node_starts_nothing_until_ready_again(apiserver, cluster):
    api = apiserver
    await cluster.set_node_ready("node-001", False)
    node = await api.client.get(R.NODES, "node-001")
    assert {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"] == "False"
    assert {(t["key"], t["effect"]) for t in node["spec"]["taints"]} == {
        ("node.kubernetes.io/not-ready", "NoSchedule"),
        ("node.kubernetes.io/not-ready", "NoExecute"),
    }
    pod = await api.client.create(R.PODS, bare_pod("waits", runtime="1h", node="node-001"), namespace=NS)
    # The kubelet has seen the pod and holds it until its node is ready.
    await eventually(lambda: pod["metadata"]["uid"] in cluster.kubelets.nodes["node-001"].waiting)
    assert (await api.client.get(R.PODS, "waits", namespace=NS))["status"]["phase"] == "Pending"
    await cluster.set_node_ready("node-001", True)
    await eventually(lambda: phase_of(api, "waits", "Running"))
    node = await api.client.get(R.NODES, "node-001")
    assert not node["spec"].get("taints")


async def test_pods_on_a_notready_node_are_evicted_after_their_toleration(apiserver, cluster):
    api = apiserver
    await api.client.create(R.PODS, bare_pod("evictee", runtime="10h", node="node-000"), namespace=NS)
    await eventually(lambda: phase_of(api, "evictee", "Running"))
    await cluster.set_node_ready("node-000", False)  # default toleration: 300 simulated s = 3 real s

    async def gone():
        try:
            await api.client.get(R.PODS, "evictee", namespace=NS)
            return False
        except APIError as exc:
            return exc.code == 404

    await eventually(gone, 10)


async def test_cordon_add_and_remove_nodes(apiserver, cluster):
    api = apiserver
    await cluster.cordon("node-000")
    node = await api.client.get(R.NODES, "node-000")
    assert node["spec"]["unschedulable"] is True
    assert any(t["key"] == "node.kubernetes.io/unschedulable" for t in node["spec"]["taints"])
    await cluster.uncordon("node-000")
    assert not (await api.client.get(R.NODES, "node-000"))["spec"].get("unschedulable")

    await cluster.add_node("node-big", cpus=64, memory="256Gi", labels={"size": "big"})
    big = await api.client.get(R.NODES, "node-big")
    assert big["status"]["allocatable"]["cpu"] == "64" and big["metadata"]["labels"]["size"] == "big"
    await api.client.create(R.PODS, bare_pod("on-big", cpu="40", runtime="1h", node="node-big"), namespace=NS)
    await eventually(lambda: phase_of(api, "on-big", "Running"))

    await cluster.remove_node("node-big")
    with pytest.raises(APIError):
        await api.client.get(R.NODES, "node-big")

    async def pod_gone():
        try:
            await api.client.get(R.PODS, "on-big", namespace=NS)
            return False
        except APIError as exc:
            return exc.code == 404

    await eventually(pod_gone, 5)


async def test_nodes_have_leases_that_are_renewed(apiserver, cluster):
    api = apiserver
    lease = await api.client.get(R.LEASES, "node-000", namespace="kube-node-lease")
    first = lease["spec"]["renewTime"]
    assert lease["spec"]["holderIdentity"] == "node-000"

    async def renewed():
        cur = await api.client.get(R.LEASES, "node-000", namespace="kube-node-lease")
        return cur["spec"]["renewTime"] != first

    await eventually(renewed, 5)


async def test_pods_bound_to_a_missing_node_are_garbage_collected(apiserver, cluster):
    api = apiserver
    await api.client.create(R.PODS, bare_pod("lost", runtime="1h", node="node-nowhere"), namespace=NS)

    async def gone():
        try:
            await api.client.get(R.PODS, "lost", namespace=NS)
            return False
        except APIError as exc:
            return exc.code == 404

    await eventually(gone, 5)  # 40 simulated seconds of quarantine = 0.4 s


async def test_a_pod_past_its_active_deadline_is_killed(apiserver, cluster):
    api = apiserver
    body = bare_pod("walltime", runtime="1h", node="node-000")
    body["spec"]["activeDeadlineSeconds"] = 30
    await api.client.create(R.PODS, body, namespace=NS)
    p = await eventually(lambda: phase_of(api, "walltime", "Failed"), 5)
    assert p["status"]["reason"] == "DeadlineExceeded"
    assert p["status"]["message"] == "Pod was active on the node longer than the specified deadline"
