"""Patches copy less of the stored object (a merge patch of /status shares what it leaves alone, other
patches do not copy managedFields): results as with a full copy, earlier stored versions untouched,
managedFields as before."""

from __future__ import annotations

import asyncio

import pytest
from support.crds import widget_crd

from fluxqueue.sim.apiserver import resources as R
from fluxqueue.sim.apiserver.errors import APIError
from fluxqueue.sim.apiserver.patch import json_merge_patch, json_merge_patch_shared
from fluxqueue.sim.apiserver.store import clone

WIDGETS = ("example.com", "v1", "widgets")


def pod(name: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "x"}},
        "spec": {"containers": [{"name": "c", "image": "x"}]},
    }


def test_shared_merge_patch_equals_the_copying_one():
    target = {"a": {"b": [1, {"c": 2}], "d": {"e": 1}}, "f": "g", "h": {"i": 1}}
    before = clone(target)
    for patch in (
        {"a": {"d": {"e": 2, "x": None}}, "f": None},
        {"a": None, "h": {"j": [3]}},
        {"new": {"deep": {"er": 1}}},
        [1, 2],
    ):
        got = json_merge_patch_shared(target, patch)
        assert got == json_merge_patch(target, patch)
        assert target == before
    got = json_merge_patch_shared(target, {"a": {"d": {"e": 5}}})
    assert got["h"] is target["h"] and got["a"]["b"] is target["a"]["b"]  # shared, not copied
    assert got["a"] is not target["a"] and got["a"]["d"] is not target["a"]["d"]


async def test_pod_status_patches_leave_earlier_versions_alone(api):
    c, e = api.client, api.engine
    await c.create(R.PODS, pod("p"), namespace="default")
    running = {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [{"name": "c", "ready": True, "state": {"running": {"startedAt": "t0"}}}],
    }
    first = await c.patch(R.PODS, "p", {"status": running}, namespace="default", subresource="status")
    stored_first = await e.get(R.PODS, "p", "default")
    snapshot = clone(stored_first)
    # a second patch touching part of the status, trying spec and labels too (ignored on /status)
    second = await c.patch(
        R.PODS,
        "p",
        {
            "status": {"phase": "Succeeded", "conditions": None},
            "spec": {"nodeName": "n"},
            "metadata": {"labels": None},
        },
        namespace="default",
        subresource="status",
        copy=False,
    )
    assert stored_first == snapshot  # the earlier stored version was not changed
    want = {k: v for k, v in first["status"].items() if k != "conditions"}
    assert second["status"] == {**want, "phase": "Succeeded"}
    assert second["status"]["containerStatuses"] == running["containerStatuses"]
    assert second["spec"] == first["spec"] and "nodeName" not in second["spec"]
    assert second["metadata"]["labels"] == {"app": "x"}
    assert int(second["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
    status_entry = [m for m in second["metadata"]["managedFields"] if m.get("subresource") == "status"]
    assert [m["manager"] for m in status_entry] == ["fluxqueue-sim"]
    owned = status_entry[0]["fieldsV1"]["f:status"]
    assert "f:phase" in owned and "f:containerStatuses" in owned and "f:conditions" not in owned
    # the same patch again is a no-op: same stored object, no new version
    again = await c.patch(
        R.PODS, "p", {"status": {"phase": "Succeeded"}}, namespace="default", subresource="status", copy=False
    )
    assert again is second


async def test_custom_resource_status_patch(api):
    crd = widget_crd(
        {
            "type": "object",
            "properties": {
                "spec": {"type": "object", "properties": {"size": {"type": "integer"}}},
                "status": {
                    "type": "object",
                    "properties": {
                        "phase": {"type": "string", "default": "New"},
                        "nodes": {"type": "array", "items": {"type": "string"}},
                    },
                },
            },
        },
        status_subresource=True,
    )
    await api.client.create(R.CRDS, crd)
    for _ in range(100):
        if api.engine.registry.get(WIDGETS) is not None:
            break
        await asyncio.sleep(0.02)
    w = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 2}}
    await api.client.create(WIDGETS, w, namespace="default")
    one = await api.client.patch(
        WIDGETS, "w", {"status": {"nodes": ["a"], "junk": 1}}, namespace="default", subresource="status"
    )
    assert one["status"] == {"nodes": ["a"], "phase": "New"}  # pruned and defaulted
    stored = await api.engine.get(WIDGETS, "w", "default")
    snapshot = clone(stored)
    two = await api.client.patch(
        WIDGETS, "w", {"status": {"phase": "Done"}}, namespace="default", subresource="status"
    )
    assert two["status"] == {"nodes": ["a"], "phase": "Done"} and two["spec"] == {"size": 2}
    assert stored == snapshot


async def test_patches_keep_managed_fields_in_place_and_may_still_name_them(api):
    c = api.client
    await c.create(R.PODS, pod("m"), namespace="default", field_manager="creator")
    before = await c.get(R.PODS, "m", namespace="default")
    ops = [{"op": "add", "path": "/metadata/annotations", "value": {"a": "1"}}]
    after = await c.patch(R.PODS, "m", ops, namespace="default", patch_type="json", field_manager="gate")
    md = after["metadata"]
    assert list(md).index("managedFields") == list(before["metadata"]).index("managedFields")
    assert [m["manager"] for m in md["managedFields"]] == ["creator", "gate"]
    assert md["managedFields"][1]["fieldsV1"] == {"f:metadata": {"f:annotations": {"f:a": {}}}}
    # a JSON patch may test managedFields: it sees the stored ones
    test = [
        {"op": "test", "path": "/metadata/managedFields/0/manager", "value": "creator"},
        {"op": "add", "path": "/metadata/labels/b", "value": "2"},
    ]
    tested = await c.patch(R.PODS, "m", test, namespace="default", patch_type="json", field_manager="t")
    assert tested["metadata"]["labels"] == {"app": "x", "b": "2"}
    bad = [{"op": "test", "path": "/metadata/managedFields/0/manager", "value": "nobody"}]
    with pytest.raises(APIError) as e:
        await c.patch(R.PODS, "m", bad, namespace="default", patch_type="json")
    assert e.value.code == 422
    # a merge patch of other metadata: managedFields stay the stored ones plus the change
    merged = await c.patch(R.PODS, "m", {"metadata": {"labels": {"c": "3"}}}, namespace="default")
    assert [m["manager"] for m in merged["metadata"]["managedFields"]][:2] == ["creator", "gate"]
    assert merged["metadata"]["labels"] == {"app": "x", "b": "2", "c": "3"}
