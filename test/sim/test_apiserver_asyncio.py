"""kubernetes-asyncio against the emulator over HTTPS: create, list, patch, watch, resumption and 410 Gone."""

from __future__ import annotations

import asyncio

import pytest
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.rest import ApiException

from fluxqueue.sim.apiserver import APIServer
from fluxqueue.sim.apiserver import resources as R


@pytest.fixture
async def core(apiserver: APIServer):
    api_client = await config.new_client_from_config(config_file=str(apiserver.kubeconfig_path))
    try:
        yield client.CoreV1Api(api_client), api_client
    finally:
        await api_client.close()


def pod(name: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "x"}]},
    }


async def test_create_list_patch_and_409(core):
    v1, _ = core
    created = await v1.create_namespaced_pod("default", pod("a"))
    assert created.metadata.uid and created.spec.scheduler_name == "default-scheduler"
    lst = await v1.list_namespaced_pod("default", label_selector="")
    assert [p.metadata.name for p in lst.items] == ["a"]
    patched = await v1.patch_namespaced_pod("a", "default", {"metadata": {"labels": {"x": "1"}}})
    assert patched.metadata.labels == {"x": "1"}
    created.metadata.labels = {"stale": "1"}
    with pytest.raises(ApiException) as e:
        await v1.replace_namespaced_pod("a", "default", created)
    assert e.value.status == 409
    with pytest.raises(ApiException) as e:
        await v1.read_namespaced_pod("nope", "default")
    assert e.value.status == 404


async def test_watch_resumes_from_resource_version(core, apiserver):
    v1, _ = core
    lst = await v1.list_namespaced_config_map("default")
    rv = lst.metadata.resource_version
    for i in range(3):
        await apiserver.client.create(R.CONFIGMAPS, {"metadata": {"name": f"cm{i}"}}, namespace="default")
    seen = []
    w = watch.Watch()
    async with w.stream(
        v1.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=5
    ) as stream:
        async for ev in stream:
            seen.append((ev["type"], ev["object"].metadata.name))
            if len(seen) == 3:
                break
    assert seen == [("ADDED", "cm0"), ("ADDED", "cm1"), ("ADDED", "cm2")]


async def test_watch_from_a_compacted_version_is_410(tmp_path):
    api = APIServer(watch_history=5)
    await api.start()
    api.write_kubeconfig(tmp_path / "kc")
    try:
        first = await api.client.create(R.CONFIGMAPS, {"metadata": {"name": "x0"}}, namespace="default")
        for i in range(1, 10):
            await api.client.create(R.CONFIGMAPS, {"metadata": {"name": f"x{i}"}}, namespace="default")
        api_client = await config.new_client_from_config(config_file=str(tmp_path / "kc"))
        try:
            v1 = client.CoreV1Api(api_client)
            w = watch.Watch()
            with pytest.raises(ApiException) as e:
                async with w.stream(
                    v1.list_namespaced_config_map,
                    "default",
                    resource_version=first["metadata"]["resourceVersion"],
                    timeout_seconds=5,
                ) as stream:
                    async for _ev in stream:
                        pass
            assert e.value.status == 410
        finally:
            await api_client.close()
    finally:
        await api.stop()


async def test_http_watch_delivers_live_events_and_bookmarks(core, apiserver):
    _, api_client = core
    v1 = client.CoreV1Api(api_client)
    events = []

    async def consume():
        w = watch.Watch()
        async with w.stream(
            v1.list_pod_for_all_namespaces, allow_watch_bookmarks=True, timeout_seconds=5
        ) as stream:
            async for ev in stream:
                events.append(ev["type"])
                if "BOOKMARK" in events and "ADDED" in events:
                    return

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.2)
    await apiserver.client.create(R.PODS, pod("live"), namespace="kube-system")
    await asyncio.wait_for(task, 5)
    assert events[0] == "ADDED"


async def test_https_requires_the_token_and_plain_http_serves_without(apiserver, tmp_path):
    import ssl

    import aiohttp

    ctx = ssl.create_default_context(cadata=apiserver.ca_pem.decode())
    async with aiohttp.ClientSession() as s:
        async with s.get(apiserver.url + "/api/v1/namespaces", ssl=ctx) as r:
            assert r.status == 401 and (await r.json())["reason"] == "Unauthorized"
        headers = {"Authorization": f"Bearer {apiserver.token}"}
        async with s.get(apiserver.url + "/api/v1/namespaces", ssl=ctx, headers=headers) as r:
            assert r.status == 200 and len((await r.json())["items"]) == 4
    plain = APIServer(tls=False)
    await plain.start()
    try:
        async with aiohttp.ClientSession() as s, s.get(plain.url + "/version") as r:
            assert plain.url.startswith("http://") and (await r.json())["minor"] == "35"
    finally:
        await plain.stop()
