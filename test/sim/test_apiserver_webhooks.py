"""Mutating admission over TLS: a real HTTPS webhook (own CA, caBundle), service references, failure policies."""

from __future__ import annotations

import asyncio
import base64
import socket

import pytest
from aiohttp import web
from support.webhooks import review_response, serve_https

from fluxqueue.sim.apiserver import APIError
from fluxqueue.sim.apiserver import resources as R
from fluxqueue.sim.apiserver.tls import serving_bundle


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def webhook():
    """An HTTPS admission webhook that labels pods and records the reviews it got."""
    seen: list[dict] = []

    async def mutate(request: web.Request) -> web.Response:
        review = await request.json()
        seen.append(review)
        return review_response(
            review, [{"op": "add", "path": "/metadata/labels", "value": {"mutated": "yes"}}]
        )

    async def deny(request: web.Request) -> web.Response:
        return review_response(await request.json(), status={"code": 403, "message": "no thanks"})

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(1.5)
        return await mutate(request)

    app = web.Application()
    app.router.add_post("/slow", slow)
    app.router.add_post("/mutate", mutate)
    app.router.add_post("/deny", deny)
    async with serve_https(app, ["hook.hooks.svc"]) as served:
        yield {"url": served.url, "ca": served.ca_bundle, "seen": seen}


def hook_config(name: str, client_config: dict, failure_policy: str = "Fail", **extra) -> dict:
    return {
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": f"{name}.example.com",
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": failure_policy,
                "timeoutSeconds": 2,
                "clientConfig": client_config,
                "rules": [
                    {
                        "operations": ["CREATE"],
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "resources": ["pods"],
                        "scope": "Namespaced",
                    }
                ],
                **extra,
            }
        ],
    }


def pod(name: str) -> dict:
    return {"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


async def test_mutating_webhook_over_tls_patches_pods(api, webhook):
    c = api.client
    await c.create(
        R.MUTATING_WEBHOOKS,
        hook_config("labeler", {"url": webhook["url"] + "/mutate", "caBundle": webhook["ca"]}),
    )
    p = await c.create(
        R.PODS,
        {"metadata": {"generateName": "w-"}, "spec": pod("x")["spec"]},
        namespace="default",
        dry_run=True,
    )
    assert p["metadata"]["labels"] == {"mutated": "yes"}
    req = webhook["seen"][0]["request"]
    assert req["operation"] == "CREATE" and req["dryRun"] is True and req["namespace"] == "default"
    assert req["kind"] == {"group": "", "version": "v1", "kind": "Pod"}
    assert req["resource"] == {"group": "", "version": "v1", "resource": "pods"}
    assert req["userInfo"]["username"] == "admin" and req["oldObject"] is None
    # admission runs before name generation and system fields (prior-art §12)
    assert req["object"]["metadata"].get("name", "") == "" and "uid" not in req["object"]["metadata"]
    assert req["object"]["spec"]["schedulerName"] == "default-scheduler"
    # not a pod: not called
    await c.create(R.CONFIGMAPS, {"metadata": {"name": "cm"}}, namespace="default")
    assert len(webhook["seen"]) == 1


async def test_service_reference_is_resolved_and_verified(api, webhook):
    c = api.client
    api.register_service("hooks", "hook", 443, webhook["url"])
    svc = {
        "service": {"namespace": "hooks", "name": "hook", "path": "/mutate", "port": 443},
        "caBundle": webhook["ca"],
    }
    await c.create(
        R.MUTATING_WEBHOOKS,
        hook_config(
            "svc", svc, objectSelector={"matchExpressions": [{"key": "skip", "operator": "DoesNotExist"}]}
        ),
    )
    assert (await c.create(R.PODS, pod("a"), namespace="default"))["metadata"]["labels"] == {"mutated": "yes"}
    skipped = pod("b")
    skipped["metadata"]["labels"] = {"skip": "1"}
    assert (await c.create(R.PODS, skipped, namespace="default"))["metadata"]["labels"] == {"skip": "1"}


async def test_wrong_ca_bundle_fails_the_request(api, webhook):
    other_ca = serving_bundle(common_name="someone-else").ca_pem
    cfg = {"url": webhook["url"] + "/mutate", "caBundle": base64.b64encode(other_ca).decode()}
    await api.client.create(R.MUTATING_WEBHOOKS, hook_config("badca", cfg))
    with pytest.raises(APIError) as e:
        await api.client.create(R.PODS, pod("a"), namespace="default")
    assert e.value.code == 500 and 'failed calling webhook "badca.example.com"' in e.value.message


async def test_down_webhook_with_failure_policy_fail_rejects(api):
    cfg = {"url": f"https://127.0.0.1:{_free_port()}/mutate"}
    await api.client.create(R.MUTATING_WEBHOOKS, hook_config("down", cfg, "Fail"))
    with pytest.raises(APIError) as e:
        await api.client.create(R.PODS, pod("a"), namespace="default")
    assert e.value.code == 500 and e.value.reason == "InternalError"
    assert 'failed calling webhook "down.example.com"' in e.value.message
    assert (await api.client.list(R.PODS))["items"] == []


async def test_down_webhook_with_failure_policy_ignore_lets_the_request_through(api):
    cfg = {"url": f"https://127.0.0.1:{_free_port()}/mutate"}
    await api.client.create(R.MUTATING_WEBHOOKS, hook_config("down", cfg, "Ignore"))
    p = await api.client.create(R.PODS, pod("a"), namespace="default")
    assert p["metadata"]["name"] == "a"


async def test_unregistered_service_is_a_failed_call(api):
    svc = {"service": {"namespace": "x", "name": "nowhere", "path": "/m"}}
    await api.client.create(R.MUTATING_WEBHOOKS, hook_config("nosvc", svc, "Fail"))
    with pytest.raises(APIError) as e:
        await api.client.create(R.PODS, pod("a"), namespace="default")
    assert e.value.code == 500 and 'service "nowhere" not found' in e.value.message


async def test_denial_and_side_effects_on_dry_run(api, webhook):
    c = api.client
    await c.create(
        R.VALIDATING_WEBHOOKS,
        hook_config("denier", {"url": webhook["url"] + "/deny", "caBundle": webhook["ca"]}),
    )
    with pytest.raises(APIError) as e:
        await c.create(R.PODS, pod("a"), namespace="default")
    assert (
        e.value.code == 403
        and e.value.message == 'admission webhook "denier.example.com" denied the request: no thanks'
    )
    await c.delete(R.VALIDATING_WEBHOOKS, "denier")
    await c.create(
        R.MUTATING_WEBHOOKS,
        hook_config(
            "side", {"url": webhook["url"] + "/mutate", "caBundle": webhook["ca"]}, sideEffects="Some"
        ),
    )
    with pytest.raises(APIError) as e:
        await c.create(R.PODS, pod("a"), namespace="default", dry_run=True)
    assert e.value.code == 400 and "does not support dry run" in e.value.message


async def test_namespace_selector_and_exact_match_policy(api, webhook):
    c = api.client
    cfg = hook_config(
        "scoped",
        {"url": webhook["url"] + "/mutate", "caBundle": webhook["ca"]},
        namespaceSelector={
            "matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]}
            ]
        },
    )
    await c.create(R.MUTATING_WEBHOOKS, cfg)
    assert (await c.create(R.PODS, pod("a"), namespace="kube-system"))["metadata"].get("labels") is None
    assert (await c.create(R.PODS, pod("a"), namespace="default"))["metadata"]["labels"] == {"mutated": "yes"}
    # a rule for another version matches under Equivalent (the default) but not under Exact
    cfg2 = hook_config(
        "exact", {"url": webhook["url"] + "/mutate", "caBundle": webhook["ca"]}, matchPolicy="Exact"
    )
    cfg2["webhooks"][0]["rules"][0]["apiVersions"] = ["v2"]
    cfg2["webhooks"][0]["namespaceSelector"] = {"matchLabels": {"kubernetes.io/metadata.name": "kube-public"}}
    await c.create(R.MUTATING_WEBHOOKS, cfg2)
    assert (await c.create(R.PODS, pod("b"), namespace="kube-public"))["metadata"].get("labels") == {
        "mutated": "yes"
    }
    calls = len(webhook["seen"])
    await c.delete(R.MUTATING_WEBHOOKS, "scoped")
    assert (await c.create(R.PODS, pod("c"), namespace="kube-public"))["metadata"].get("labels") is None
    assert len(webhook["seen"]) == calls


async def test_webhook_slower_than_its_timeout_fails_the_request(api, webhook):
    cfg = hook_config("slow", {"url": webhook["url"] + "/slow", "caBundle": webhook["ca"]}, timeoutSeconds=1)
    await api.client.create(R.MUTATING_WEBHOOKS, cfg)
    with pytest.raises(APIError) as e:
        await api.client.create(R.PODS, pod("a"), namespace="default")
    assert e.value.code == 500 and "context deadline exceeded" in e.value.message
