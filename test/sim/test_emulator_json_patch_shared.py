"""Admission webhooks' JSON patches copy only what they change (json_patch_shared): the same results and
errors as the copying json_patch, the patched document never touched, and a /status write patched by a
mutating webhook leaves the stored versions before it as they were."""

from __future__ import annotations

import json
import random

import pytest
from aiohttp import web
from support.webhooks import review_response, serve_https

from fluxqueue.sim.apiserver import resources as R
from fluxqueue.sim.apiserver.errors import APIError
from fluxqueue.sim.apiserver.patch import json_patch, json_patch_shared
from fluxqueue.sim.apiserver.store import clone


def _doc() -> dict:
    return {
        "metadata": {"name": "p", "labels": {"a": "1"}, "annotations": {"x/y": "z"}, "finalizers": ["f"]},
        "spec": {
            "containers": [{"name": "c", "env": [{"name": "E", "value": "1"}], "args": ["a", "b"]}],
            "gates": [{"name": "g"}],
            "n": 1,
        },
        "status": {"conditions": [{"type": "Ready", "status": "False"}]},
    }


_PATHS = [
    "",
    "/metadata",
    "/metadata/labels",
    "/metadata/labels/a",
    "/metadata/labels/b",
    "/metadata/annotations/x~1y",
    "/metadata/finalizers/0",
    "/metadata/finalizers/-",
    "/spec/containers/0/env/0/value",
    "/spec/containers/0/env/1",
    "/spec/containers/0/args/-1",
    "/spec/containers/0/args/5",
    "/spec/containers/0/args/x",
    "/spec/gates",
    "/spec/gates/0",
    "/spec/n",
    "/spec/n/deeper",
    "/status/conditions/0/status",
    "/nothere/x",
    "bad",
]
_VALUES = [None, "v", 2, 2.0, True, {"k": {"l": [1]}}, [1, {"m": "n"}]]


def _op(rnd: random.Random) -> dict:
    kind = rnd.choice(["add", "remove", "replace", "move", "copy", "test", "bogus"])
    op = {"op": kind, "path": rnd.choice(_PATHS)}
    if kind in ("add", "replace", "test"):
        op["value"] = clone(rnd.choice(_VALUES))
    if kind in ("move", "copy"):
        op["from"] = rnd.choice(_PATHS)
    return op


def _outcome(fn, doc, ops):
    try:
        return "ok", json.dumps(fn(doc, ops))  # content and key order
    except APIError as e:
        return "error", e.code, e.message
    except Exception as e:  # e.g. "move" without "from", removing the root: both must fail alike
        return type(e).__name__, str(e)


def test_shared_json_patch_answers_as_the_copying_one_and_leaves_the_document_alone():
    rnd = random.Random(11)
    doc = _doc()
    before = json.dumps(doc)
    for _ in range(4000):
        ops = [_op(rnd) for _ in range(rnd.randint(1, 4))]
        assert _outcome(json_patch_shared, doc, ops) == _outcome(json_patch, doc, ops), ops
        assert json.dumps(doc) == before, ops


def test_shared_json_patch_copies_only_the_paths_it_changes():
    doc = _doc()
    out = json_patch_shared(
        doc,
        [
            {"op": "remove", "path": "/spec/gates"},
            {"op": "add", "path": "/metadata/labels/b", "value": "2"},
            {"op": "move", "from": "/status/conditions", "path": "/spec/moved"},
            {"op": "replace", "path": "/spec/moved/0/status", "value": "True"},
        ],
    )
    assert out["spec"]["containers"] is doc["spec"]["containers"]  # untouched: shared
    assert out["metadata"]["annotations"] is doc["metadata"]["annotations"]
    assert out["metadata"]["labels"] == {"a": "1", "b": "2"} and doc["metadata"]["labels"] == {"a": "1"}
    assert out["spec"]["moved"] == [{"type": "Ready", "status": "True"}]
    assert doc["status"]["conditions"] == [
        {"type": "Ready", "status": "False"}
    ]  # moved, then copied on write
    assert "gates" in doc["spec"] and "gates" not in out["spec"]


@pytest.fixture
async def status_hook():
    """A webhook that adds a status condition and an annotation to every pod update it sees."""

    async def mutate(request: web.Request) -> web.Response:
        review = await request.json()
        return review_response(
            review,
            [
                {"op": "add", "path": "/status/conditions/-", "value": {"type": "Hooked", "status": "True"}},
                {"op": "add", "path": "/status/hooked", "value": "yes"},
            ],
        )

    app = web.Application()
    app.router.add_post("/mutate", mutate)
    async with serve_https(app, ["hook.hooks.svc"]) as served:
        yield {"url": served.url + "/mutate", "caBundle": served.ca_bundle}


async def test_status_writes_patched_by_a_webhook_leave_earlier_versions_alone(api, status_hook):
    c, e = api.client, api.engine
    await c.create(
        R.MUTATING_WEBHOOKS,
        {
            "metadata": {"name": "status"},
            "webhooks": [
                {
                    "name": "status.example.com",
                    "admissionReviewVersions": ["v1"],
                    "sideEffects": "None",
                    "clientConfig": status_hook,
                    "rules": [
                        {
                            "operations": ["UPDATE"],
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "resources": ["pods/status"],
                        }
                    ],
                }
            ],
        },
    )
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    await c.create(R.PODS, pod, namespace="default")
    running = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    await c.patch(R.PODS, "p", {"status": running}, namespace="default", subresource="status")
    first = await e.get(R.PODS, "p", "default")  # the stored object itself
    snapshot = clone(first)
    assert first["status"]["conditions"] == [
        {"type": "Ready", "status": "True"},
        {"type": "Hooked", "status": "True"},
    ]
    assert first["status"]["hooked"] == "yes"
    await c.patch(R.PODS, "p", {"status": {"message": "m"}}, namespace="default", subresource="status")
    second = await e.get(R.PODS, "p", "default")
    assert first == snapshot  # the earlier version, which watchers and caches hold, is untouched
    assert second["status"]["conditions"][-2:] == [
        {"type": "Hooked", "status": "True"},
        {"type": "Hooked", "status": "True"},
    ]
    assert second["status"]["message"] == "m" and second["spec"] == first["spec"]
