"""Pods the simulated Job controller creates go through the mutating admission webhooks, like a real
controller's: a webhook that gates them (as fluxqueue's does) leaves them Pending and unbound until the gate
is removed and a binding is posted, after which the kubelet runs them and the Job completes."""

from __future__ import annotations

import pytest
from aiohttp import web
from support.polling import caught_up, eventually
from support.webhooks import review_response, serve_https

from fluxqueue.kube import names
from fluxqueue.sim.apiserver import resources as R

NS = "default"


@pytest.fixture
async def gating_webhook():
    """HTTPS webhook: pods labelled gate=yes get the fluxqueue gate and schedulerName."""
    reviews: list[dict] = []

    async def mutate(request: web.Request) -> web.Response:
        review = await request.json()
        reviews.append(review)
        patch = [
            {"op": "add", "path": "/spec/schedulingGates", "value": [{"name": names.SCHEDULING_GATE}]},
            {"op": "replace", "path": "/spec/schedulerName", "value": names.SCHEDULER_NAME},
        ]
        return review_response(review, patch)

    app = web.Application()
    app.router.add_post("/mutate", mutate)
    async with serve_https(app, ["gate.hooks.svc"]) as served:
        yield {"url": f"{served.url}/mutate", "ca": served.ca_bundle, "reviews": reviews}


async def test_job_pods_pass_the_webhook_and_wait_gated_until_bound(apiserver, gating_webhook, start_cluster):
    api = apiserver
    await api.client.create(
        R.MUTATING_WEBHOOKS,
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "gate"},
            "webhooks": [
                {
                    "name": "gate.example.com",
                    "admissionReviewVersions": ["v1"],
                    "sideEffects": "None",
                    "failurePolicy": "Fail",
                    "timeoutSeconds": 5,
                    "clientConfig": {"url": gating_webhook["url"], "caBundle": gating_webhook["ca"]},
                    "objectSelector": {"matchLabels": {"gate": "yes"}},
                    "rules": [
                        {
                            "operations": ["CREATE"],
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "resources": ["pods"],
                            "scope": "Namespaced",
                        }
                    ],
                }
            ],
        },
    )
    cluster = await start_cluster(nodes=2, cpus=4, memory="8Gi", racks=1)
    await api.client.create(
        R.JOBS,
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "gated"},
            "spec": {
                "parallelism": 2,
                "completions": 2,
                "template": {
                    "metadata": {"labels": {"gate": "yes"}, "annotations": {names.SIM_RUNTIME: "3s"}},
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [
                            {"name": "m", "image": "busybox", "resources": {"requests": {"cpu": "1"}}}
                        ],
                    },
                },
            },
        },
        namespace=NS,
    )

    async def gated_pods():
        ps = (await api.client.list(R.PODS, namespace=NS, label_selector="job-name=gated"))["items"]
        return ps if len(ps) == 2 else None

    pods = await eventually(gated_pods)
    assert len(gating_webhook["reviews"]) == 2
    assert {r["request"]["operation"] for r in gating_webhook["reviews"]} == {"CREATE"}
    # Every part of the cluster (kubelets, the default scheduler) has seen the gated pods: nothing is done.
    informer = cluster.informer(R.PODS)
    await eventually(lambda: all(caught_up(informer, p) for p in pods))
    for p in (await api.client.list(R.PODS, namespace=NS, label_selector="job-name=gated"))["items"]:
        assert p["spec"]["schedulingGates"] == [{"name": names.SCHEDULING_GATE}]
        assert p["spec"]["schedulerName"] == names.SCHEDULER_NAME
        assert "nodeName" not in p["spec"] and p["status"]["phase"] == "Pending"

    # what fluxqueue does once it has placed the Job: remove the gate, bind each pod
    for i, p in enumerate(pods):
        name = p["metadata"]["name"]
        await api.client.patch(R.PODS, name, {"spec": {"schedulingGates": None}}, namespace=NS)
        await api.client.create(
            R.PODS,
            {
                "apiVersion": "v1",
                "kind": "Binding",
                "metadata": {"name": name},
                "target": {"kind": "Node", "name": f"node-00{i}"},
            },
            namespace=NS,
            subresource="binding",
        )

    async def complete():
        j = await api.client.get(R.JOBS, "gated", namespace=NS)
        conds = {c["type"]: c["status"] for c in (j.get("status") or {}).get("conditions") or []}
        return j if conds.get("Complete") == "True" else None

    j = await eventually(complete)
    assert j["status"]["succeeded"] == 2
    assert cluster.rejections == []
