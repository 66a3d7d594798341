"""Workload controllers and the garbage collector of the simulated cluster: Deployments make ReplicaSets make
pods, StatefulSets make ordinal pods in order, and deleting an owner takes its dependents with it."""

from __future__ import annotations

import pytest
from support.polling import eventually

from fluxqueue.sim.apiserver import APIError
from fluxqueue.sim.apiserver import resources as R

NS = "default"


@pytest.fixture
async def cluster(start_cluster):
    return await start_cluster(nodes=2, cpus=16, memory="32Gi", racks=1)


def template(app: str, node: str = "node-000", restart: str = "Always", runtime: str | None = None) -> dict:
    md: dict = {"labels": {"app": app}}
    if runtime:
        md["annotations"] = {"sim.fluxqueue.io/runtime": runtime}
    return {
        "metadata": md,
        "spec": {
            "nodeName": node,
            "restartPolicy": restart,
            "containers": [
                {"name": "main", "image": "nginx:1.27", "resources": {"requests": {"cpu": "100m"}}}
            ],
        },
    }


async def pods(api, selector: str) -> list[dict]:
    return (await api.client.list(R.PODS, namespace=NS, label_selector=selector))["items"]


async def live(api, selector: str) -> list[dict]:
    return [p for p in await pods(api, selector) if not p["metadata"].get("deletionTimestamp")]


async def missing(api, key, name) -> bool:
    try:
        await api.client.get(key, name, namespace=NS)
        return False
    except APIError as exc:
        return exc.code == 404


async def test_deployment_makes_a_replicaset_that_makes_running_pods(apiserver, cluster):
    api = apiserver
    await api.client.create(
        R.DEPLOYMENTS,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": template("web")},
        },
        namespace=NS,
    )

    async def available():
        d = await api.client.get(R.DEPLOYMENTS, "web", namespace=NS)
        return d if (d.get("status") or {}).get("availableReplicas") == 3 else None

    d = await eventually(available)
    assert {c["type"]: c["status"] for c in d["status"]["conditions"]}["Available"] == "True"
    sets = (await api.client.list(R.REPLICASETS, namespace=NS))["items"]
    assert len(sets) == 1
    rs = sets[0]
    h = rs["metadata"]["labels"]["pod-template-hash"]
    assert rs["metadata"]["name"] == f"web-{h}" and rs["metadata"]["ownerReferences"][0]["name"] == "web"
    running = await pods(api, "app=web")
    assert len(running) == 3 and all(p["status"]["phase"] == "Running" for p in running)
    assert all(p["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet" for p in running)

    # a deleted pod is replaced
    await api.client.delete(R.PODS, running[0]["metadata"]["name"], namespace=NS)
    await eventually(lambda: _count(api, "app=web", 3, exclude=running[0]["metadata"]["name"]))

    # scaling down removes pods
    await api.client.patch(R.DEPLOYMENTS, "web", {"spec": {"replicas": 1}}, namespace=NS)
    await eventually(lambda: _exactly(api, "app=web", 1))

    # deleting the Deployment (background) takes the ReplicaSet and the pods
    await api.client.delete(R.DEPLOYMENTS, "web", namespace=NS, propagation_policy="Background")
    await eventually(lambda: missing(api, R.REPLICASETS, rs["metadata"]["name"]))
    await eventually(lambda: _exactly(api, "app=web", 0, all_pods=True))


async def test_statefulset_creates_ordinal_pods_one_after_another(apiserver, cluster):
    api = apiserver
    await api.client.create(
        R.STATEFULSETS,
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "db"},
            "spec": {
                "replicas": 3,
                "serviceName": "db",
                "selector": {"matchLabels": {"app": "db"}},
                "template": template("db"),
            },
        },
        namespace=NS,
    )
    order: list[str] = []

    async def all_ready():
        for p in await pods(api, "app=db"):
            if p["metadata"]["name"] not in order:
                order.append(p["metadata"]["name"])
        s = await api.client.get(R.STATEFULSETS, "db", namespace=NS)
        return s if (s.get("status") or {}).get("readyReplicas") == 3 else None

    await eventually(all_ready)
    assert order == ["db-0", "db-1", "db-2"]
    p1 = await api.client.get(R.PODS, "db-1", namespace=NS)
    assert p1["spec"]["hostname"] == "db-1" and p1["spec"]["subdomain"] == "db"
    assert p1["metadata"]["labels"]["apps.kubernetes.io/pod-index"] == "1"
    await api.client.patch(R.STATEFULSETS, "db", {"spec": {"replicas": 1}}, namespace=NS)
    await eventually(lambda: _names(api, "app=db", ["db-0"]))


async def test_deleting_a_job_in_the_background_deletes_its_pods(apiserver, cluster):
    api = apiserver
    await api.client.create(
        R.JOBS,
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "long"},
            "spec": {
                "parallelism": 2,
                "completions": 2,
                "template": template("long", restart="Never", runtime="1h"),
            },
        },
        namespace=NS,
    )
    await eventually(lambda: _count(api, "app=long", 2))
    await api.client.delete(R.JOBS, "long", namespace=NS, propagation_policy="Background")
    await eventually(lambda: _exactly(api, "app=long", 0, all_pods=True))


async def test_foreground_deletion_removes_dependents_before_the_owner(apiserver, cluster):
    api = apiserver
    await api.client.create(
        R.REPLICASETS,
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {"name": "fg"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "fg"}}, "template": template("fg")},
        },
        namespace=NS,
    )
    await eventually(lambda: _count(api, "app=fg", 2))
    out = await api.client.delete(R.REPLICASETS, "fg", namespace=NS, propagation_policy="Foreground")
    assert "foregroundDeletion" in out["metadata"]["finalizers"]
    await eventually(lambda: missing(api, R.REPLICASETS, "fg"))
    assert await pods(api, "app=fg") == []


async def test_orphaned_pods_keep_running_without_owner(apiserver, cluster):
    api = apiserver
    await api.client.create(
        R.REPLICASETS,
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {"name": "orph"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "orph"}},
                "template": template("orph"),
            },
        },
        namespace=NS,
    )
    await eventually(lambda: _count(api, "app=orph", 1))
    await api.client.delete(R.REPLICASETS, "orph", namespace=NS, propagation_policy="Orphan")

    async def orphaned():
        # The garbage collector removed the owner reference, then the orphan finalizer: the set is gone.
        left = await pods(api, "app=orph")
        released = len(left) == 1 and not left[0]["metadata"].get("ownerReferences")
        return left if released and await missing(api, R.REPLICASETS, "orph") else None

    left = await eventually(orphaned)
    assert left[0]["status"]["phase"] == "Running" and not left[0]["metadata"].get("deletionTimestamp")


# ----- helpers
async def _count(api, selector, n, exclude=None):
    ps = [
        p
        for p in await live(api, selector)
        if p["status"].get("phase") == "Running" and p["metadata"]["name"] != exclude
    ]
    return ps if len(ps) >= n else None


async def _exactly(api, selector, n, all_pods=False):
    ps = await (pods(api, selector) if all_pods else live(api, selector))
    return len(ps) == n


async def _names(api, selector, names):
    return sorted(p["metadata"]["name"] for p in await pods(api, selector)) == names


async def test_default_scheduler_places_pods_fluxqueue_does_not_manage(apiserver, cluster):
    api = apiserver
    # Each runs longer than the test: with the default 10 simulated seconds (0.1 s here) the first could end
    # before the third was looked at, and the third be bound instead of found unschedulable.
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "plain", "annotations": {"sim.fluxqueue.io/runtime": "1000h"}},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "m", "image": "busybox", "resources": {"requests": {"cpu": "12"}}}],
        },
    }
    await api.client.create(R.PODS, body, namespace=NS)

    async def bound():
        p = await api.client.get(R.PODS, "plain", namespace=NS)
        return p if p["spec"].get("nodeName") and p["status"].get("phase") == "Running" else None

    first = await eventually(bound)
    # a second 12-CPU pod fits only on the other 16-CPU node; a third fits nowhere
    body["metadata"]["name"] = "plain2"
    await api.client.create(R.PODS, body, namespace=NS)
    body["metadata"]["name"] = "plain3"
    await api.client.create(R.PODS, body, namespace=NS)

    async def placed2():
        p = await api.client.get(R.PODS, "plain2", namespace=NS)
        return p if p["spec"].get("nodeName") else None

    second = await eventually(placed2)
    assert second["spec"]["nodeName"] != first["spec"]["nodeName"]

    async def unschedulable():
        p = await api.client.get(R.PODS, "plain3", namespace=NS)
        # Bound, its PodScheduled condition is True with no reason (kube-apiserver's binding writes it so).
        assert not p["spec"].get("nodeName"), f"plain3 was bound to {p['spec']['nodeName']}"
        c = {c["type"]: c for c in p["status"].get("conditions") or []}.get("PodScheduled")
        return c if c and c.get("reason") == "Unschedulable" else None

    cond = await eventually(unschedulable)
    assert cond["message"] == "0/2 nodes are available: 2 Insufficient cpu."
    assert cluster.rejections == []
    await api.client.delete(R.PODS, "plain", namespace=NS)

    async def placed3():
        p = await api.client.get(R.PODS, "plain3", namespace=NS)
        return p["spec"].get("nodeName")

    assert await eventually(placed3) == first["spec"]["nodeName"]


async def test_daemonset_runs_one_pod_per_eligible_node(apiserver, cluster):
    api = apiserver
    await cluster.taint("node-001", "dedicated", "gpu", "NoSchedule")
    await api.client.create(
        R.DAEMONSETS,
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "agent"},
            "spec": {
                "selector": {"matchLabels": {"app": "agent"}},
                "template": {
                    "metadata": {"labels": {"app": "agent"}},
                    "spec": {
                        "containers": [
                            {"name": "a", "image": "agent:1", "resources": {"requests": {"cpu": "100m"}}}
                        ]
                    },
                },
            },
        },
        namespace=NS,
    )

    async def ready():
        ds = await api.client.get(R.DAEMONSETS, "agent", namespace=NS)
        st = ds.get("status") or {}
        return ds if st.get("desiredNumberScheduled") == 1 and st.get("numberReady") == 1 else None

    await eventually(ready)
    ps = await pods(api, "app=agent")
    assert [p["spec"]["nodeName"] for p in ps] == ["node-000"]  # bound by the default scheduler
    await cluster.untaint("node-001", "dedicated")

    async def two():
        ps = [p for p in await pods(api, "app=agent") if p["status"].get("phase") == "Running"]
        return sorted(p["spec"]["nodeName"] for p in ps) == ["node-000", "node-001"]

    await eventually(two)
