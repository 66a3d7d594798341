"""Server-side apply and managedFields through the in-process client."""

from __future__ import annotations

import pytest

from fluxqueue.sim.apiserver import APIError
from fluxqueue.sim.apiserver import resources as R


def cm(labels: dict[str, str], data: dict[str, str]) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cm", "labels": labels},
        "data": data,
    }


async def apply_cm(c, labels: dict[str, str], data: dict[str, str], force: bool = False) -> dict:
    """Server-side apply of the ConfigMap "cm" as field manager "me"."""
    return await c.patch(
        R.CONFIGMAPS,
        "cm",
        cm(labels, data),
        namespace="default",
        patch_type="apply",
        field_manager="me",
        force=force,
    )


async def test_apply_creates_then_removes_fields_it_stopped_applying(api):
    c = api.client
    first = await apply_cm(c, {"a": "1", "b": "1"}, {"x": "1", "y": "1"})
    assert first["metadata"]["labels"] == {"a": "1", "b": "1"}
    mine = first["metadata"]["managedFields"]
    assert [(m["manager"], m["operation"]) for m in mine] == [("me", "Apply")]
    second = await apply_cm(c, {"a": "1"}, {"x": "2"})
    assert second["metadata"]["labels"] == {"a": "1"} and second["data"] == {"x": "2"}


async def test_fields_another_manager_owns_survive_and_conflict(api):
    c = api.client
    await apply_cm(c, {"a": "1"}, {"x": "1"})
    await c.patch(R.CONFIGMAPS, "cm", {"data": {"other": "v"}}, namespace="default", field_manager="editor")
    with pytest.raises(APIError) as e:
        await apply_cm(c, {"a": "1"}, {"x": "1", "other": "mine"})
    assert e.value.code == 409 and 'conflict with "editor"' in e.value.message
    # same value: shared ownership, no conflict; dropping it later keeps it (the editor still owns it)
    await apply_cm(c, {"a": "1"}, {"x": "1", "other": "v"})
    out = await apply_cm(c, {"a": "1"}, {"x": "1"})
    assert out["data"] == {"x": "1", "other": "v"}
    forced = await apply_cm(c, {"a": "1"}, {"x": "1", "other": "forced"}, force=True)
    assert forced["data"]["other"] == "forced"
    owners = {m["manager"]: m["fieldsV1"] for m in forced["metadata"]["managedFields"]}
    assert "f:other" in owners["me"]["f:data"] and "editor" not in owners


async def test_apply_merges_containers_by_name(api):
    c = api.client
    dep = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {
            "selector": {"matchLabels": {"app": "d"}},
            "template": {
                "metadata": {"labels": {"app": "d"}},
                "spec": {"containers": [{"name": "a", "image": "x"}]},
            },
        },
    }
    await c.patch(R.DEPLOYMENTS, "d", dep, namespace="default", patch_type="apply", field_manager="one")
    side = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {"template": {"spec": {"containers": [{"name": "b", "image": "y"}]}}},
    }
    out = await c.patch(
        R.DEPLOYMENTS, "d", side, namespace="default", patch_type="apply", field_manager="two"
    )
    assert [x["name"] for x in out["spec"]["template"]["spec"]["containers"]] == ["a", "b"]
    assert out["metadata"]["generation"] == 2
