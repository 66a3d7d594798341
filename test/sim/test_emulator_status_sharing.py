"""Status writes of pods share everything but status and metadata with the stored object (patches that
reach only status and metadata do not even copy it): the stored objects are the same as with copies, and
the versions before stay as they were."""

from __future__ import annotations

import itertools
import json

import pytest

from fluxqueue.sim.apiserver import fieldmanager
from fluxqueue.sim.apiserver import resources as R
from fluxqueue.sim.apiserver.errors import APIError
from fluxqueue.sim.apiserver.store import clone
from fluxqueue.sim.apiserver.strategy import Strategy


def _pod(name: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"a": "1"}, "annotations": {"b": "2"}},
        "spec": {"containers": [{"name": "c", "image": "x", "env": [{"name": "E", "value": "1"}]}]},
    }


_PATCHES = [
    (
        "strategic",
        {"status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]}},
    ),
    (
        "strategic",
        {
            "status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True"}],
                "podIP": "10.0.0.1",
            }
        },
    ),
    (
        "json",
        [{"op": "add", "path": "/status/message", "value": "m"}, {"op": "remove", "path": "/status/podIP"}],
    ),
    ("merge", {"status": {"reason": "r"}}),
    # metadata in a status patch: labels ignored, the resourceVersion a precondition
    ("strategic", {"metadata": {"labels": {"a": "9"}}, "status": {"hostIP": "10.0.0.2"}}),
    ("merge", {"metadata": {"annotations": {"b": None}}, "status": {"phase": "Succeeded"}}),
    # patches that reach the spec too: the spec is ignored on /status, but the patch sees it
    (
        "json",
        [
            {"op": "test", "path": "/spec/containers/0/name", "value": "c"},
            {"op": "add", "path": "/status/x", "value": 1},
        ],
    ),
    ("strategic", {"spec": {"containers": [{"name": "c", "image": "y"}]}, "status": {"y": 2}}),
]


async def _run(api, keep_rest: bool, monkeypatch) -> list[dict]:
    monkeypatch.setattr(Strategy, "status_update_keeps_rest", keep_rest)
    ticks = itertools.count()
    monkeypatch.setattr(fieldmanager, "_now", lambda: f"t{next(ticks)}")
    c, e = api.client, api.engine
    await c.create(R.PODS, _pod("p"), namespace="default")
    versions = [await e.get(R.PODS, "p", "default")]
    snapshots = [clone(versions[0])]
    for ptype, body in _PATCHES:
        await c.patch(R.PODS, "p", body, namespace="default", patch_type=ptype, subresource="status")
        versions.append(await e.get(R.PODS, "p", "default"))
        snapshots.append(clone(versions[-1]))
    with pytest.raises(APIError) as err:  # a stale resourceVersion in a status patch
        await c.patch(
            R.PODS,
            "p",
            {"metadata": {"resourceVersion": "1"}, "status": {"z": 1}},
            namespace="default",
            patch_type="strategic",
            subresource="status",
        )
    assert err.value.code == 409
    # every version stored is as it was when it was stored, though the later ones share with it
    assert versions == snapshots
    return versions


async def test_shared_status_writes_store_what_copying_ones_stored(api, monkeypatch):
    shared = await _run(api, True, monkeypatch)
    await api.client.delete(R.PODS, "p", namespace="default", grace_period_seconds=0)
    copied = await _run(api, False, monkeypatch)

    def comparable(o):
        md = {
            k: v for k, v in o["metadata"].items() if k not in ("uid", "creationTimestamp", "resourceVersion")
        }
        return json.dumps({**o, "metadata": md})  # content and key order

    assert [comparable(o) for o in shared] == [comparable(o) for o in copied]
    assert shared[-1]["status"]["phase"] == "Succeeded" and shared[-1]["metadata"]["labels"] == {"a": "1"}
    assert shared[-1]["spec"]["containers"][0]["image"] == "x"
    # shared: the spec of every version is the created one's; copied: each its own
    assert all(o["spec"] is shared[0]["spec"] for o in shared)
    assert all(o["spec"] is not copied[0]["spec"] for o in copied[1:])
