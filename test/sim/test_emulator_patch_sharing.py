"""JSON and merge patches of pods share what they leave alone with the stored object (PodStrategy
defaults_fill_only): the stored objects are the same as with copies, defaults come back where a patch
removed them, and the versions before stay as they were."""

from __future__ import annotations

import itertools
import json

from fluxqueue.sim.apiserver import fieldmanager
from fluxqueue.sim.apiserver import resources as R
from fluxqueue.sim.apiserver.errors import APIError
from fluxqueue.sim.apiserver.podrules import PodStrategy
from fluxqueue.sim.apiserver.store import clone


def _pod() -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "labels": {"a": "1"}, "annotations": {"b": "2"}},
        "spec": {
            "schedulingGates": [{"name": "g"}, {"name": "h"}],
            "containers": [
                {
                    "name": "c",
                    "image": "x:1",
                    "ports": [{"containerPort": 80}],
                    "resources": {"limits": {"cpu": "1"}},
                }
            ],
            "tolerations": [{"key": "k", "operator": "Exists"}],
        },
    }


_PATCHES = [
    (
        "json",
        [
            {"op": "test", "path": "/spec/schedulingGates/0/name", "value": "g"},
            {"op": "remove", "path": "/spec/schedulingGates/0"},
            {"op": "add", "path": "/metadata/annotations/c", "value": "3"},
        ],
    ),
    ("merge", {"metadata": {"labels": {"a": None, "d": "4"}}}),
    # defaulted fields removed: defaulting puts them back, in the patched copies only
    ("json", [{"op": "remove", "path": "/spec/containers/0/imagePullPolicy"}]),
    ("json", [{"op": "remove", "path": "/spec/containers/0/ports/0/protocol"}]),
    ("merge", {"spec": {"dnsPolicy": None}}),
    ("json", [{"op": "replace", "path": "/spec/containers/0/image", "value": "x:2"}]),
    ("json", [{"op": "test", "path": "/metadata/managedFields/0/manager", "value": "fluxqueue-sim"}]),
    ("json", [{"op": "remove", "path": "/spec/schedulingGates"}]),
    ("merge", {"metadata": {"annotations": {"e": "5"}}}),
]


async def _run(api, share: bool, monkeypatch) -> list[dict]:
    monkeypatch.setattr(PodStrategy, "defaults_fill_only", share)
    ticks = itertools.count()
    monkeypatch.setattr(fieldmanager, "_now", lambda: f"t{next(ticks)}")
    c, e = api.client, api.engine
    await c.create(R.PODS, _pod(), namespace="default")
    versions = [await e.get(R.PODS, "p", "default")]
    snapshots = [clone(versions[0])]
    for ptype, body in _PATCHES:
        await c.patch(R.PODS, "p", body, namespace="default", patch_type=ptype)
        versions.append(await e.get(R.PODS, "p", "default"))
        snapshots.append(clone(versions[-1]))
    for ptype, body in (
        ("json", [{"op": "test", "path": "/spec/containers/0/image", "value": "nope"}]),
        ("json", [{"op": "add", "path": "/spec/schedulingGates", "value": [{"name": "new"}]}]),
        ("merge", {"spec": {"containers": [{"name": "c", "image": "y"}, {"name": "d", "image": "y"}]}}),
    ):
        try:
            await c.patch(R.PODS, "p", body, namespace="default", patch_type=ptype)
        except APIError as err:
            assert err.code in (422,)
        else:
            raise AssertionError(f"{body} was let through")
    assert await e.get(R.PODS, "p", "default") is versions[-1]
    # every version stored is as it was when it was stored, though the later ones share with it
    assert versions == snapshots
    await c.delete(R.PODS, "p", namespace="default", grace_period_seconds=0)
    return versions


async def test_shared_patches_store_what_copying_ones_stored(api, monkeypatch):
    shared = await _run(api, True, monkeypatch)
    copied = await _run(api, False, monkeypatch)

    def comparable(o):
        md = {
            k: v for k, v in o["metadata"].items() if k not in ("uid", "creationTimestamp", "resourceVersion")
        }
        st = {k: v for k, v in (o.get("status") or {}).items() if k != "conditions"}
        return json.dumps({**o, "metadata": md, "status": st})  # content and key order

    assert [comparable(o) for o in shared] == [comparable(o) for o in copied]
    last = shared[-1]
    assert last["metadata"]["labels"] == {"d": "4"}
    assert last["metadata"]["annotations"] == {"b": "2", "c": "3", "e": "5"}
    c0 = last["spec"]["containers"][0]
    assert c0["image"] == "x:2" and c0["imagePullPolicy"] == "IfNotPresent"
    assert c0["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert "schedulingGates" not in last["spec"]
    assert last["spec"]["dnsPolicy"] == "ClusterFirst"
    # shared: a patch of the metadata alone leaves the spec the stored one's; copied: never
    assert shared[2]["spec"] is shared[1]["spec"] and copied[2]["spec"] is not copied[1]["spec"]


async def test_type_errors_in_shared_patches_are_found_as_before(api, monkeypatch):
    """A shared patch result is type checked only where it is not the stored object's: the same 400s."""
    bad = [
        ("json", [{"op": "replace", "path": "/spec/containers/0/image", "value": 5}]),
        ("json", [{"op": "add", "path": "/spec/containers/0/ports/0/containerPort", "value": "80"}]),
        ("merge", {"spec": {"terminationGracePeriodSeconds": "x"}}),
        ("merge", {"metadata": {"labels": {"a": 1}}, "spec": {"priority": "high"}}),
        ("json", [{"op": "add", "path": "/metadata/annotations", "value": ["x"]}]),
    ]
    answers = {}
    for share in (True, False):
        monkeypatch.setattr(PodStrategy, "defaults_fill_only", share)
        await api.client.create(
            R.PODS, {**_pod(), "metadata": {"name": f"t-{share}".lower()}}, namespace="default"
        )
        got = []
        for ptype, body in bad:
            try:
                await api.client.patch(
                    R.PODS, f"t-{share}".lower(), body, namespace="default", patch_type=ptype
                )
            except APIError as err:
                got.append((err.code, err.message.replace(f"t-{share}".lower(), "NAME")))
            else:
                got.append(None)
        answers[share] = got
    assert answers[True] == answers[False]
    assert all(a is not None and a[0] == 400 and "cannot unmarshal" in a[1] for a in answers[True]), answers
