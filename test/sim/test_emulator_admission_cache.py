"""Which webhooks a request goes to is remembered per resource and operation until a webhook configuration
changes: a changed, added or deleted configuration, a relabelled namespace and the object's own labels
count at the next request, as without the cache."""

from __future__ import annotations

from fluxqueue.sim.apiserver import resources as R

MWC = R.MUTATING_WEBHOOKS
VWC = R.VALIDATING_WEBHOOKS


def _hook(name: str, ops: list[str], **extra) -> dict:
    return {
        "name": name,
        "clientConfig": {"url": "https://127.0.0.1:1/never"},
        "rules": [{"operations": ops, "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        **extra,
    }


def _cfg(kind: str, name: str, hooks: list[dict]) -> dict:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name},
        "webhooks": hooks,
    }


def _pod(labels: dict) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": labels}, "spec": {}}


async def test_matching_webhooks_follow_configuration_and_label_changes(api):
    c, e = api.client, api.engine
    adm = e.admission
    pods = e.resolve(R.PODS)
    await c.create(R.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}})

    def names(key, op="CREATE", obj=None, sub=None):
        return [h["name"] for h in adm._matching(key, pods, op, obj or _pod({}), None, "n", sub)]

    assert names(MWC) == []
    await c.create(MWC, _cfg("MutatingWebhookConfiguration", "b", [_hook("b.x", ["CREATE"])]))
    assert names(MWC) == ["b.x"]
    assert names(MWC) == ["b.x"]  # from the cache
    assert names(MWC, "UPDATE") == [] and names(MWC, sub="status") == [] and names(VWC) == []
    # another configuration (sorted by name), an object selector, a namespace selector
    await c.create(
        MWC,
        _cfg(
            "MutatingWebhookConfiguration",
            "a",
            [
                _hook("a.obj", ["*"], objectSelector={"matchLabels": {"app": "x"}}),
                _hook("a.ns", ["CREATE"], namespaceSelector={"matchLabels": {"team": "t"}}),
            ],
        ),
    )
    assert names(MWC) == ["b.x"]
    assert names(MWC, obj=_pod({"app": "x"})) == ["a.obj", "b.x"]
    assert names(MWC, "UPDATE", obj=_pod({"app": "x"})) == ["a.obj"]
    await c.patch(R.NAMESPACES, "n", {"metadata": {"labels": {"team": "t"}}})
    assert names(MWC) == ["a.ns", "b.x"]
    await c.patch(R.NAMESPACES, "n", {"metadata": {"labels": {"team": "u"}}})
    assert names(MWC) == ["b.x"]
    # a configuration changed, then deleted
    cfg = await c.get(MWC, "b")
    cfg["webhooks"][0]["rules"][0]["operations"] = ["UPDATE"]
    await c.update(MWC, cfg)
    assert names(MWC) == [] and names(MWC, "UPDATE") == ["b.x"]
    await c.delete(MWC, "b")
    assert names(MWC, "UPDATE") == []
    await c.delete(MWC, "a")
    assert names(MWC, obj=_pod({"app": "x"})) == []
    # validating configurations are their own
    await c.create(VWC, _cfg("ValidatingWebhookConfiguration", "v", [_hook("v.x", ["CREATE"])]))
    assert names(VWC) == ["v.x"] and names(MWC) == []
