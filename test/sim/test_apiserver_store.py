"""Storage semantics of the API emulator through the in-process client (the same pipeline HTTP uses)."""

from __future__ import annotations

import asyncio

import pytest

from fluxqueue.sim.apiserver import APIError, APIServer
from fluxqueue.sim.apiserver import resources as R


def pod(name: str, labels: dict[str, str] | None = None, **spec) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec},
    }


@pytest.fixture
async def api():
    server = APIServer(bookmark_interval=0.2, watch_history=50)
    yield server
    await server.stop()


async def test_create_assigns_identity_and_defaults(api):
    c = api.client
    p = await c.create(
        R.PODS,
        {"metadata": {"generateName": "web-"}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}},
        namespace="default",
    )
    md = p["metadata"]
    assert md["name"].startswith("web-") and len(md["name"]) == len("web-") + 5
    assert md["uid"] and md["creationTimestamp"] and md["generation"] == 1
    assert int(md["resourceVersion"]) > 0
    assert p["spec"]["schedulerName"] == "default-scheduler"
    assert p["status"] == {"phase": "Pending", "qosClass": "BestEffort"}
    assert md["managedFields"][0]["manager"] == "fluxqueue-sim"


async def test_duplicate_and_missing_objects_answer_like_the_real_server(api):
    c = api.client
    await c.create(R.PODS, pod("a"), namespace="default")
    with pytest.raises(APIError) as e:
        await c.create(R.PODS, pod("a"), namespace="default")
    assert e.value.code == 409 and e.value.reason == "AlreadyExists"
    assert e.value.status == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'pods "a" already exists',
        "reason": "AlreadyExists",
        "code": 409,
        "details": {"name": "a", "kind": "pods"},
    }
    with pytest.raises(APIError) as e:
        await c.get(R.JOBS, "nope", namespace="default")
    assert (e.value.code, e.value.message) == (404, 'jobs.batch "nope" not found')
    with pytest.raises(APIError) as e:
        await c.create(R.PODS, pod("b"), namespace="missing")
    assert (e.value.code, e.value.message) == (404, 'namespaces "missing" not found')


async def test_stale_resource_version_is_a_409_conflict(api):
    c = api.client
    p = await c.create(R.CONFIGMAPS, {"metadata": {"name": "cm"}, "data": {"a": "1"}}, namespace="default")
    fresh = dict(p, data={"a": "2"})
    await c.update(R.CONFIGMAPS, fresh, namespace="default")
    p["data"] = {"a": "3"}
    with pytest.raises(APIError) as e:
        await c.update(R.CONFIGMAPS, p, namespace="default")
    assert e.value.code == 409 and e.value.reason == "Conflict"
    assert "the object has been modified" in e.value.message


async def test_noop_update_keeps_the_resource_version(api):
    c = api.client
    p = await c.create(R.CONFIGMAPS, {"metadata": {"name": "cm"}, "data": {"a": "1"}}, namespace="default")
    again = await c.update(R.CONFIGMAPS, p, namespace="default")
    assert again["metadata"]["resourceVersion"] == p["metadata"]["resourceVersion"]


async def test_label_and_field_selectors(api):
    c = api.client
    await c.create(R.PODS, pod("a", {"app": "x", "tier": "fe"}), namespace="default")
    await c.create(R.PODS, pod("b", {"app": "y"}), namespace="default")
    await c.create(R.PODS, pod("c", {"app": "x"}, schedulerName="fluxqueue"), namespace="kube-system")

    async def names(**kw):
        return sorted(o["metadata"]["name"] for o in (await c.list(R.PODS, **kw))["items"])

    assert await names(label_selector="app=x") == ["a", "c"]
    assert await names(label_selector="app==x,tier") == ["a"]
    assert await names(label_selector="app!=x") == ["b"]
    assert await names(label_selector="app in (x, y),!tier") == ["b", "c"]
    assert await names(label_selector="app notin (x)") == ["b"]
    assert await names(namespace="default", label_selector="app") == ["a", "b"]
    assert await names(field_selector="spec.schedulerName=fluxqueue") == ["c"]
    assert await names(field_selector="metadata.namespace!=default") == ["c"]
    assert await names(field_selector="metadata.name=b,status.phase=Pending") == ["b"]
    with pytest.raises(APIError) as e:
        await c.list(R.PODS, field_selector="spec.bogus=1")
    assert e.value.code == 400


async def test_pods_by_node_use_the_node_index(api):
    c = api.client
    for i in range(6):
        await c.create(R.PODS, pod(f"p{i}"), namespace="default")
        await c.create(
            R.PODS,
            {"metadata": {"name": f"p{i}"}, "target": {"kind": "Node", "name": f"n{i % 2}"}},
            namespace="default",
            subresource="binding",
        )
    got = await c.list(R.PODS, field_selector="spec.nodeName=n1")
    assert sorted(o["metadata"]["name"] for o in got["items"]) == ["p1", "p3", "p5"]
    unbound = await c.list(R.PODS, field_selector="spec.nodeName=")
    assert unbound["items"] == []


async def test_limit_and_continue_page_through_everything(api):
    c = api.client
    for i in range(7):
        await c.create(R.CONFIGMAPS, {"metadata": {"name": f"cm{i}"}}, namespace="default")
    seen, token = [], None
    while True:
        page = await c.list(R.CONFIGMAPS, namespace="default", limit=3, continue_=token)
        seen += [o["metadata"]["name"] for o in page["items"]]
        token = page["metadata"].get("continue")
        if not token:
            break
        assert page["metadata"]["remainingItemCount"] > 0
    assert seen == [f"cm{i}" for i in range(7)]


async def test_watch_resumes_from_a_resource_version_and_410s_when_too_old(api):
    c = api.client
    first = await c.create(R.CONFIGMAPS, {"metadata": {"name": "w0"}}, namespace="default")
    for i in range(1, 4):
        await c.create(R.CONFIGMAPS, {"metadata": {"name": f"w{i}"}}, namespace="default")
    got = []
    async for ev in c.watch(
        R.CONFIGMAPS, namespace="default", resource_version=first["metadata"]["resourceVersion"]
    ):
        got.append((ev["type"], ev["object"]["metadata"]["name"]))
        if len(got) == 3:
            break
    assert got == [("ADDED", "w1"), ("ADDED", "w2"), ("ADDED", "w3")]
    for i in range(60):  # the history holds 50 events: w0's version is gone
        await c.create(R.CONFIGMAPS, {"metadata": {"name": f"x{i}"}}, namespace="default")
    with pytest.raises(APIError) as e:
        async for _ev in c.watch(R.CONFIGMAPS, resource_version=first["metadata"]["resourceVersion"]):
            pass
    assert e.value.code == 410 and "too old resource version" in e.value.message


async def test_watch_sends_bookmarks_and_selector_transitions(api):
    c = api.client
    await c.create(R.PODS, pod("a", {"app": "x"}), namespace="default")
    lst = await c.list(R.PODS)
    changes, bookmarks = [], []

    async def collect():
        async for ev in c.watch(
            R.PODS,
            resource_version=lst["metadata"]["resourceVersion"],
            label_selector="app=x",
            allow_bookmarks=True,
        ):
            if ev["type"] == "BOOKMARK":
                bookmarks.append(ev["object"]["metadata"]["resourceVersion"])
                if len(changes) == 2:
                    return
            else:
                changes.append((ev["type"], ev["object"]["metadata"]["name"]))

    task = asyncio.create_task(collect())
    await asyncio.sleep(0.05)
    await c.patch(R.PODS, "a", {"metadata": {"labels": {"app": "y"}}}, namespace="default")
    await c.patch(R.PODS, "a", {"metadata": {"labels": {"app": "x"}}}, namespace="default")
    await asyncio.wait_for(task, 5)
    # leaving the selector is DELETED, re-entering is ADDED; an idle watch gets BOOKMARKs at the current version
    assert changes == [("DELETED", "a"), ("ADDED", "a")]
    assert int(bookmarks[-1]) == api.engine.store.rv


async def test_finalizer_holds_deletion_until_removed(api):
    c = api.client
    await c.create(
        R.CONFIGMAPS, {"metadata": {"name": "f", "finalizers": ["example.com/hold"]}}, namespace="default"
    )
    held = await c.delete(R.CONFIGMAPS, "f", namespace="default")
    assert held["metadata"]["deletionTimestamp"]
    still = await c.get(R.CONFIGMAPS, "f", namespace="default")
    assert still["metadata"]["finalizers"] == ["example.com/hold"]
    with pytest.raises(APIError) as e:
        await c.patch(
            R.CONFIGMAPS, "f", {"metadata": {"finalizers": ["example.com/hold", "x/y"]}}, namespace="default"
        )
    assert e.value.code == 403
    await c.patch(R.CONFIGMAPS, "f", {"metadata": {"finalizers": None}}, namespace="default")
    with pytest.raises(APIError) as e:
        await c.get(R.CONFIGMAPS, "f", namespace="default")
    assert e.value.code == 404


async def test_dry_run_creates_and_deletes_nothing(api):
    c = api.client
    out = await c.create(R.PODS, pod("dry"), namespace="default", dry_run=True)
    assert out["metadata"]["name"] == "dry" and out["metadata"]["uid"]
    assert (await c.list(R.PODS))["items"] == []
    await c.create(R.PODS, pod("real"), namespace="default")
    await c.delete(R.PODS, "real", namespace="default", dry_run=True)
    assert (await c.get(R.PODS, "real", namespace="default"))["metadata"]["name"] == "real"


async def test_status_subresource_separates_spec_and_status(api):
    c = api.client
    job = {
        "metadata": {"name": "j"},
        "spec": {
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}
        },
        "status": {"active": 5},
    }
    j = await c.create(R.JOBS, job, namespace="default")
    assert j["status"] == {}
    j["status"] = {"active": 1}
    j["spec"]["parallelism"] = 3
    j2 = await c.update(R.JOBS, j, namespace="default", subresource="status")
    assert j2["status"] == {"active": 1} and j2["spec"]["parallelism"] == 1
    assert j2["metadata"]["generation"] == 1
    j3 = await c.patch(
        R.JOBS, "j", {"spec": {"parallelism": 2}, "status": {"active": 9}}, namespace="default"
    )
    assert j3["spec"]["parallelism"] == 2 and j3["status"] == {"active": 1}
    assert j3["metadata"]["generation"] == 2


async def test_namespace_deletion_empties_it_then_removes_it(api):
    c = api.client
    await c.create(R.NAMESPACES, {"metadata": {"name": "team"}}, namespace=None)
    assert (await c.get(R.SERVICEACCOUNTS, "default", namespace="team"))["metadata"]["name"] == "default"
    await c.create(R.PODS, pod("p"), namespace="team")
    ns = await c.delete(R.NAMESPACES, "team")
    assert ns["status"]["phase"] == "Terminating"
    with pytest.raises(APIError) as e:
        await c.create(R.CONFIGMAPS, {"metadata": {"name": "late"}}, namespace="team")
    assert e.value.code == 403 and "being terminated" in e.value.message
    for _ in range(200):
        try:
            await c.get(R.NAMESPACES, "team")
        except APIError as err:
            assert err.code == 404
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("namespace never went away")
    assert (await c.list(R.PODS, namespace="team"))["items"] == []


async def test_orphan_deletion_of_a_job_keeps_its_pods_without_owner(api):
    c = api.client
    j = await c.create(
        R.JOBS,
        {
            "metadata": {"name": "j"},
            "spec": {
                "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}
            },
        },
        namespace="default",
    )
    owner = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": "j",
        "uid": j["metadata"]["uid"],
        "controller": True,
    }
    p = pod("j-1")
    p["metadata"]["ownerReferences"] = [owner]
    await c.create(R.PODS, p, namespace="default")
    await c.delete(R.JOBS, "j", namespace="default")  # batch/v1 Jobs default to orphaning their pods
    left = await c.get(R.PODS, "j-1", namespace="default")
    assert "ownerReferences" not in left["metadata"]


async def test_foreground_deletion_marks_the_owner_for_the_garbage_collector(api):
    c = api.client
    await c.create(R.CONFIGMAPS, {"metadata": {"name": "o"}}, namespace="default")
    out = await c.delete(R.CONFIGMAPS, "o", namespace="default", propagation_policy="Foreground")
    assert out["metadata"]["finalizers"] == ["foregroundDeletion"] and out["metadata"]["deletionTimestamp"]


async def test_watch_list_sends_initial_state_then_an_end_bookmark(api):
    c = api.client
    await c.create(R.CONFIGMAPS, {"metadata": {"name": "a"}}, namespace="default")
    got = []
    async for ev in c.watch(
        R.CONFIGMAPS, namespace="default", send_initial_events=True, allow_bookmarks=True
    ):
        got.append(
            (ev["type"], ev["object"]["metadata"].get("name"), ev["object"]["metadata"].get("annotations"))
        )
        if ev["type"] == "BOOKMARK":
            break
    assert got == [("ADDED", "a", None), ("BOOKMARK", None, {"k8s.io/initial-events-end": "true"})]


async def test_node_watchers_see_only_their_pods(api):
    c = api.client
    seen: dict[str, list] = {"n1": [], "n2": []}

    async def kubelet(node: str):
        async for ev in c.watch(R.PODS, field_selector=f"spec.nodeName={node}", copy_objects=False):
            seen[node].append((ev["type"], ev["object"]["metadata"]["name"]))

    tasks = [asyncio.create_task(kubelet(n)) for n in seen]
    await asyncio.sleep(0.01)
    await c.create(R.PODS, pod("p"), namespace="default")
    await c.create(
        R.PODS,
        {"metadata": {"name": "p"}, "target": {"name": "n1"}},
        namespace="default",
        subresource="binding",
    )
    await c.delete(R.PODS, "p", namespace="default", grace_period_seconds=0)
    await asyncio.sleep(0.05)
    for t in tasks:
        t.cancel()
    assert seen == {"n1": [("ADDED", "p"), ("DELETED", "p")], "n2": []}


async def test_creating_an_object_that_carries_a_resource_version_fails_like_etcd(api):
    c = api.client
    cm = await c.create(R.CONFIGMAPS, {"metadata": {"name": "a"}}, namespace="default")
    cm["metadata"]["name"] = "b"
    with pytest.raises(APIError) as e:
        await c.create(R.CONFIGMAPS, cm, namespace="default")
    assert e.value.code == 500 and "resourceVersion should not be set" in e.value.message


async def test_values_of_the_wrong_type_do_not_decode(api):
    c = api.client
    bad = {"metadata": {"name": "d"}, "spec": {"replicas": "3", "selector": {"matchLabels": {"a": "b"}}}}
    with pytest.raises(APIError) as e:
        await c.create(R.DEPLOYMENTS, bad, namespace="default")
    assert (
        e.value.code == 400
        and "cannot unmarshal string into Go struct field Deployment.spec.replicas" in e.value.message
    )
    await c.create(R.CONFIGMAPS, {"metadata": {"name": "cm"}}, namespace="default")
    with pytest.raises(APIError) as e:
        await c.patch(R.CONFIGMAPS, "cm", {"metadata": {"annotations": {"n": 1}}}, namespace="default")
    assert e.value.code == 400
    ok = pod("q")
    ok["spec"]["containers"][0]["resources"] = {
        "requests": {"cpu": 1, "memory": "1Gi"}
    }  # quantities may be numbers
    created = await c.create(R.PODS, ok, namespace="default")
    assert created["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "1", "memory": "1Gi"}
