"""The controller's Kubernetes client against the API emulator over HTTPS: verbs, watches that survive 410,
aggregated Events and Lease leader election."""

from __future__ import annotations

import asyncio

import pytest

from fluxqueue.kube.client import EVENTS, PODS, APIError, KubeClient, TokenBucket
from fluxqueue.kube.events import EventRecorder
from fluxqueue.kube.leader import LeaderElector
from fluxqueue.kube.watch import Informer
from fluxqueue.sim.apiserver import APIServer


@pytest.fixture
async def client(tmp_path):
    api = APIServer()
    await api.start(host="127.0.0.1", port=0)
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
    c = KubeClient.from_kubeconfig(kubeconfig, qps=500, burst=500)
    try:
        yield c
    finally:
        await c.close()
        await api.stop()


def a_pod(name):
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "x"}]},
    }


async def test_verbs_return_objects_and_errors_carry_the_status_code(client):
    created = await client.create(PODS, a_pod("p"), namespace="default")
    assert created["metadata"]["uid"]
    patched = await client.patch(PODS, "p", {"metadata": {"labels": {"a": "b"}}}, namespace="default")
    assert patched["metadata"]["labels"] == {"a": "b"}
    patched = await client.patch(
        PODS,
        "p",
        [{"op": "add", "path": "/metadata/labels/c", "value": "d"}],
        namespace="default",
        patch_type="json",
    )
    assert patched["metadata"]["labels"]["c"] == "d"
    listed = await client.list(PODS, namespace="default", label_selector="a=b")
    assert [p["metadata"]["name"] for p in listed["items"]] == ["p"]
    with pytest.raises(APIError) as err:
        await client.create(PODS, a_pod("p"), namespace="default")
    assert err.value.code == 409 and err.value.reason == "AlreadyExists"
    await client.delete(PODS, "p", namespace="default")
    with pytest.raises(APIError) as err:
        await client.get(PODS, "p", namespace="default")
    assert err.value.code == 404


async def test_an_informer_relists_after_410_and_reports_what_it_missed_as_events(client):
    seen = []
    informer = Informer(
        client, PODS, lambda kind, obj, old: seen.append((kind, obj["metadata"]["name"])), namespace="default"
    )
    await client.create(PODS, a_pod("before"), namespace="default")
    task = asyncio.create_task(informer.run())
    try:
        await asyncio.wait_for(informer.synced.wait(), 5)
        assert ("ADDED", "before") in seen
        # Pretend our version expired while disconnected: the next watch gets 410 and must relist.
        informer._rv = "1"
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.delete(PODS, "before", namespace="default")
        await client.create(PODS, a_pod("after"), namespace="default")
        task = asyncio.create_task(informer.run())
        for _ in range(50):
            if ("DELETED", "before") in seen and ("ADDED", "after") in seen:
                break
            await asyncio.sleep(0.1)
        assert ("DELETED", "before") in seen and ("ADDED", "after") in seen
        assert set(informer.cache) == {"default/after"}
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_an_informer_index_follows_label_changes_deletions_and_relists(client):
    def by_team(pod):
        team = (pod["metadata"].get("labels") or {}).get("team")
        return [team] if team else []

    informer = Informer(client, PODS, namespace="default", indexers={"team": by_team})
    for name, team in (("a1", "a"), ("a2", "a"), ("b1", "b")):
        await client.create(
            PODS, {**a_pod(name), "metadata": {"name": name, "labels": {"team": team}}}, namespace="default"
        )
    task = asyncio.create_task(informer.run())

    async def names_of(team, expected):
        for _ in range(50):
            got = sorted(p["metadata"]["name"] for p in informer.by_index("team", team))
            if got == expected:
                return got
            await asyncio.sleep(0.05)
        return got

    try:
        await asyncio.wait_for(informer.synced.wait(), 5)
        assert await names_of("a", ["a1", "a2"]) == ["a1", "a2"]
        await client.patch(PODS, "a2", {"metadata": {"labels": {"team": "b"}}}, namespace="default")
        assert await names_of("b", ["a2", "b1"]) == ["a2", "b1"]
        assert await names_of("a", ["a1"]) == ["a1"]
        await client.delete(PODS, "a1", namespace="default")
        assert await names_of("a", []) == []
        assert "a" not in informer._indices["team"]  # no empty buckets left behind
        informer._rv = "1"  # a relist rebuilds the index from the fresh listing
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.delete(PODS, "b1", namespace="default")
        task = asyncio.create_task(informer.run())
        assert await names_of("b", ["a2"]) == ["a2"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_changes_after_the_first_listing_wait_for_a_handler_set_later(client):
    await client.create(PODS, a_pod("listed"), namespace="default")
    informer = Informer(client, PODS, namespace="default", queue_until_handler=True)
    task = asyncio.create_task(informer.run())
    try:
        await asyncio.wait_for(informer.synced.wait(), 5)
        # A controller's start-up sweep runs here, before it sets its handlers; meanwhile a pod arrives.
        await client.create(PODS, a_pod("during-sweep"), namespace="default")
        for _ in range(50):
            if "default/during-sweep" in informer.cache:
                break
            await asyncio.sleep(0.05)
        seen = []
        informer.handler = lambda kind, obj, old: seen.append((kind, obj["metadata"]["name"]))
        for _ in range(50):
            if seen:
                break
            await asyncio.sleep(0.05)
        # The listed pod is the sweep's business; the one created during it is delivered, not dropped.
        assert seen == [("ADDED", "during-sweep")]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_repeated_events_are_aggregated_into_one_with_a_count(client):
    pod = await client.create(PODS, a_pod("p"), namespace="default")
    recorder = EventRecorder(client)
    for _ in range(3):
        await recorder.record(pod, "Waiting", "position 2 in the queue")
    await recorder.record(pod, "Scheduled", "Scheduled on node-001")
    events = (await client.list(EVENTS, namespace="default"))["items"]
    counts = {e["reason"]: e["count"] for e in events}
    assert counts == {"Waiting": 3, "Scheduled": 1}
    assert all(e["involvedObject"]["uid"] == pod["metadata"]["uid"] for e in events)


async def test_one_leader_at_a_time_and_a_standby_takes_over_when_the_lease_expires(client):
    fast = dict(lease_duration=1.0, renew_deadline=0.8, retry_period=0.1)
    a = LeaderElector(client, "default", identity="a", **fast)
    b = LeaderElector(client, "default", identity="b", **fast)
    assert await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()
    assert await a.try_acquire_or_renew()  # renewal
    await asyncio.sleep(1.2)  # a stops renewing (crashed): the lease runs out
    assert await b.try_acquire_or_renew()
    assert not await a.try_acquire_or_renew()
    await b.release()
    assert await a.try_acquire_or_renew()  # released: no need to wait


async def test_the_token_bucket_holds_requests_to_the_configured_rate():
    bucket = TokenBucket(qps=50, burst=5)
    loop = asyncio.get_running_loop()
    start = loop.time()
    for _ in range(15):
        await bucket.acquire()
    # 5 from the burst, then 10 at 50/s: at least 0.2 s.
    assert loop.time() - start >= 0.18


async def test_a_token_kept_in_a_file_is_read_again_when_it_rotates(tmp_path, monkeypatch):
    import yaml

    from fluxqueue.kube import client as client_module

    api = APIServer()
    await api.start(host="127.0.0.1", port=0)
    try:
        doc = yaml.safe_load(api.write_kubeconfig(tmp_path / "kubeconfig").read_text())
        token_file = tmp_path / "token"
        user = doc["users"][0]["user"]
        token_file.write_text(user.pop("token") + "\n")
        user["tokenFile"] = str(token_file)
        (tmp_path / "rotating").write_text(yaml.safe_dump(doc))
        c = KubeClient.from_kubeconfig(tmp_path / "rotating", qps=0, burst=1)
        try:
            await c.create(PODS, a_pod("p"), namespace="default")
            good = token_file.read_text()
            monkeypatch.setattr(client_module, "TOKEN_REREAD_SECONDS", 0.0)
            token_file.write_text("not-a-token\n")  # kubelet rotated it (to one the server refuses here)
            with pytest.raises(APIError) as refused:
                await c.get(PODS, "p", namespace="default")
            assert refused.value.code == 401
            token_file.write_text(good)
            assert (await c.get(PODS, "p", namespace="default"))["metadata"]["name"] == "p"
        finally:
            await c.close()
    finally:
        await api.stop()
