"""managedFields stay byte for byte what they were before the bookkeeping was made cheaper: a fixed sequence
of creates, patches (JSON, merge, strategic, /status), binds, updates and server-side applies by several
managers, with a deterministic clock, gives the managedFields recorded from the original implementation."""

from __future__ import annotations

import hashlib
import itertools
import json

import pytest

from fluxqueue.sim.apiserver import fieldmanager
from fluxqueue.sim.apiserver import resources as R
from fluxqueue.sim.apiserver.errors import APIError

# sha256 of the canonical JSON of every object's managedFields after _scenario, as the implementation
# before the caching (commit a419547) computed them
GOLDEN = "f87fde151e20430ee237aa6cab5d5c2ae392862ba9ce029632880926a348789a"


def _pod(name: str, node_ip: str = "") -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {"app": "x", "tier": "a"},
            "annotations": {"a": "1"},
            "finalizers": ["example.com/f"],
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ReplicationController", "name": "rc", "uid": f"uid-{name}"}
            ],
        },
        "spec": {
            "schedulingGates": [{"name": "g"}],
            "containers": [
                {
                    "name": "c",
                    "image": "x",
                    "ports": [{"containerPort": 80}],
                    "env": [{"name": "E", "value": "1"}],
                }
            ],
        },
    }


def _status(ip: str, phase: str) -> dict:
    return {
        "status": {
            "phase": phase,
            "hostIP": ip,
            "hostIPs": [{"ip": ip}],
            "podIP": "10.244.0." + ip.rsplit(".", 1)[1],
            "podIPs": [{"ip": "10.244.0." + ip.rsplit(".", 1)[1]}],
            "conditions": [{"type": "Ready", "status": "True" if phase == "Running" else "False"}],
            "containerStatuses": [{"name": "c", "ready": phase == "Running", "restartCount": 0}],
        }
    }


async def _scenario(c) -> list:
    ns = "default"
    out = []
    for i in range(3):
        name = f"p{i}"
        await c.create(R.PODS, _pod(name), namespace=ns, field_manager="creator")
        await c.patch(
            R.PODS,
            name,
            [
                {"op": "test", "path": "/spec/schedulingGates/0/name", "value": "g"},
                {"op": "remove", "path": "/spec/schedulingGates"},
                {"op": "add", "path": "/metadata/annotations/b", "value": "2"},
            ],
            namespace=ns,
            patch_type="json",
            field_manager="gater",
        )
        # the same change again: nothing changes, no entry moves
        await c.patch(
            R.PODS, name, {"metadata": {"annotations": {"b": "2"}}}, namespace=ns, field_manager="gater"
        )
        await c.create(
            R.PODS,
            {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name}, "target": {"name": f"n{i}"}},
            namespace=ns,
            subresource="binding",
            field_manager="binder",
        )
        for phase in ("Pending", "Running", "Running", "Succeeded"):
            await c.patch(
                R.PODS,
                name,
                _status(f"10.0.0.{i % 2 + 1}", phase),
                namespace=ns,
                patch_type="strategic",
                subresource="status",
                field_manager="kubelet",
            )
        # another manager takes a label and an annotation the creator set, and drops one
        await c.patch(
            R.PODS,
            name,
            {"metadata": {"labels": {"app": "y", "tier": None}, "annotations": {"c": "3"}}},
            namespace=ns,
            field_manager="labeler",
        )
        # a merge patch of /status by a manager of the status
        await c.patch(
            R.PODS,
            name,
            {"status": {"conditions": [{"type": "Ready", "status": "True"}], "message": "m"}},
            namespace=ns,
            subresource="status",
            field_manager="other",
        )
        # finalizers as a set: one added by a strategic patch, the first removed by a JSON patch
        await c.patch(
            R.PODS,
            name,
            {"metadata": {"finalizers": ["example.com/g"]}},
            namespace=ns,
            patch_type="strategic",
        )
        await c.patch(
            R.PODS,
            name,
            [{"op": "remove", "path": "/metadata/finalizers/0"}],
            namespace=ns,
            patch_type="json",
            field_manager="finalizer",
        )
    # server-side apply: create, re-apply with fewer fields, a conflict, a forced take-over
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "labels": {"l": "1"}}}

    async def apply(data: dict, manager: str, **kw) -> None:
        await c.patch(
            R.CONFIGMAPS,
            "cm",
            {**cm, "data": data},
            namespace=ns,
            patch_type="apply",
            field_manager=manager,
            **kw,
        )

    await apply({"a": "1", "b": "2"}, "applier")
    await apply({"a": "1"}, "applier")
    await c.patch(R.CONFIGMAPS, "cm", {"data": {"c": "3"}}, namespace=ns, field_manager="updater")
    with pytest.raises(APIError) as err:
        await apply({"a": "9"}, "second")
    assert err.value.code == 409
    await apply({"a": "9"}, "second", force=True)
    cur = await c.get(R.CONFIGMAPS, "cm", namespace=ns)
    cur["data"]["d"] = "4"
    await c.update(R.CONFIGMAPS, cur, namespace=ns, field_manager="putter")
    for name in ("p0", "p1", "p2"):
        out.append(await c.get(R.PODS, name, namespace=ns))
    out.append(await c.get(R.CONFIGMAPS, "cm", namespace=ns))
    return out


@pytest.fixture
def clock(monkeypatch):
    """managedFields times from a counter: each new time says which write of the scenario set it."""
    ticks = itertools.count()
    monkeypatch.setattr(fieldmanager, "_now", lambda: f"2026-01-01T00:00:{next(ticks):02d}Z")


@pytest.mark.parametrize("generation", [8192, 2])
async def test_managed_fields_are_what_they_were(api, clock, monkeypatch, generation):
    # generation 2: the remembered documents change generation all the time (answers must not change)
    monkeypatch.setattr(fieldmanager, "_GENERATION", generation)
    objs = await _scenario(api.client)
    managed = [o["metadata"]["managedFields"] for o in objs]
    blob = json.dumps(managed, separators=(",", ":")).encode()
    # something real to read when the hash differs
    pod = managed[0]
    assert [(e["manager"], e["operation"], e.get("subresource", "")) for e in pod] == [
        ("creator", "Update", ""),
        ("gater", "Update", ""),
        ("binder", "Update", ""),
        ("kubelet", "Update", "status"),
        ("labeler", "Update", ""),
        ("other", "Update", "status"),
        ("fluxqueue-sim", "Update", ""),
    ]
    assert [(e["manager"], e["time"]) for e in managed[3]] == [
        ("applier", "2026-01-01T00:00:25Z"),
        ("updater", "2026-01-01T00:00:26Z"),
        ("second", "2026-01-01T00:00:27Z"),
        ("putter", "2026-01-01T00:00:28Z"),
    ]
    assert hashlib.sha256(blob).hexdigest() == GOLDEN, json.dumps(managed, indent=1)


def _build_fields_v1_reference(paths):
    """_build_fields_v1 as it was (one walk from the root per path), to compare the faster one with."""
    root: dict = {}
    ends: set[int] = set()
    exact = True
    for p in sorted(paths):
        node = root
        last = len(p) - 1
        for i, part in enumerate(p):
            node = node.setdefault(part, {})
            if i < last:
                if part.startswith("k:"):
                    node.setdefault(".", {})
                    if id(node) not in ends:
                        exact = False
                elif id(node) in ends:
                    exact = False
        ends.add(id(node))
    return root, exact


def test_fields_v1_documents_are_built_as_before():
    import random

    rnd = random.Random(7)
    parts = ["f:a", "f:b", "f:spec", 'k:{"name":"x"}', 'k:{"name":"y"}', "v:1", 'v:"s"', "f:z"]
    for _ in range(3000):
        paths = {
            tuple(rnd.choice(parts) for _ in range(rnd.randint(1, 5))) for _ in range(rnd.randint(0, 12))
        }
        # closing a random part of the set under prefixes gives the exact documents too
        for p in list(paths):
            if rnd.random() < 0.5:
                paths.update(p[:i] for i in range(1, len(p)))
        got, want = fieldmanager._build_fields_v1(paths), _build_fields_v1_reference(paths)
        assert json.dumps(got) == json.dumps(want)  # same document, same key order
        assert got == want


def test_documents_in_use_stay_known_across_generations(monkeypatch):
    """A document still in use moves to the current generation: reading it back does not walk it again,
    however many other documents were built since."""
    monkeypatch.setattr(fieldmanager, "_GENERATION", 4)
    monkeypatch.setattr(fieldmanager, "_SHARED", {})
    monkeypatch.setattr(fieldmanager, "_PATHS", {})
    monkeypatch.setattr(fieldmanager, "_OLD", [{}, {}])
    hot = frozenset({("f:spec", "f:x"), ("f:metadata", "f:labels", "f:a")})
    doc = fieldmanager.to_fields_v1(hot)
    walks = []
    real = fieldmanager.from_fields_v1
    monkeypatch.setattr(
        fieldmanager, "from_fields_v1", lambda d, prefix=(): walks.append(d) or real(d, prefix)
    )
    for i in range(100):
        fieldmanager.to_fields_v1({("f:status", f"f:s{i}")})
        assert fieldmanager.paths_of(doc) == hot
        assert fieldmanager.to_fields_v1(set(hot)) is doc
    assert walks == []
    # one nobody asked about for two generations is forgotten: read back by walking it, still right
    cold = fieldmanager.to_fields_v1({("f:cold",)})
    for i in range(20):
        fieldmanager.to_fields_v1({("f:other", f"f:s{i}")})
    assert fieldmanager.paths_of(cold) == {("f:cold",)} and walks == [cold]


def _rand_pod(rnd) -> dict:
    def scalar():
        return rnd.choice(["a", "b", 1, 1.0, True, None, ""])

    def items(key, n):
        return [
            {
                key: rnd.choice(["x", "y", "z", 1, 1.0]),
                "status": scalar(),
                **({"extra": {"d": scalar()}} if rnd.random() < 0.5 else {}),
            }
            if rnd.random() < 0.9
            else rnd.choice(["atom", {"nokey": 1}])
            for _ in range(n)
        ]

    status = {
        "phase": scalar(),
        "conditions": items("type", rnd.randint(0, 4)),
        "podIPs": items("ip", rnd.randint(0, 2)),
    }
    if rnd.random() < 0.3:
        status.pop("conditions")
    pod = {
        "metadata": {
            "labels": {"a": scalar()} if rnd.random() < 0.7 else {},
            "finalizers": rnd.sample(["f", "g", "h"], rnd.randint(0, 3)),
        },
        "spec": {
            "containers": [
                {"name": rnd.choice(["c", "d"]), "ports": items("containerPort", rnd.randint(0, 2))}
                for _ in range(rnd.randint(0, 2))
            ],
            "n": scalar(),
        },
        "status": status,
    }
    return pod


def test_diff_finds_what_flattening_both_and_comparing_finds():
    import random

    rnd = random.Random(3)
    for _ in range(3000):
        old, new = _rand_pod(rnd), _rand_pod(rnd)
        if rnd.random() < 0.5:  # mostly alike, as successive versions are
            new = json.loads(json.dumps(old))
            new["status"]["conditions"] = old["status"].get("conditions", [])[:1] + _rand_pod(rnd)[
                "status"
            ].get("conditions", [])
        for status, flat in ((False, fieldmanager.flatten), (True, fieldmanager.flatten_status)):
            o, n = flat(old, "Pod"), flat(new, "Pod")
            want_changed = {q for q, v in n.items() if q not in o or o[q] != v}
            want_removed = {q for q in o if q not in n}
            assert fieldmanager.diff(old, new, "Pod", status) == (want_changed, want_removed), (old, new)
