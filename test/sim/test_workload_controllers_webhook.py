"""What the simulated JobSet controller and MPI Operator create passes the mutating admission webhooks, as a
real controller's requests do: a webhook matching Jobs and Pods (fluxqueue's matches both) reviews a JobSet's
child Jobs, an MPIJob's launcher Job and the worker pods the operator creates itself, and what it patches in
is what the kubelets run."""

from __future__ import annotations

import pytest
from aiohttp import web
from support.polling import eventually
from support.webhooks import review_response, serve_https

from fluxqueue.sim.apiserver import resources as R
from fluxqueue.sim.controllers.thirdparty_crds import JOBSETS, MPIJOBS

NS = "default"
SEEN = "example.com/reviewed"


@pytest.fixture
async def marking_webhook(apiserver):
    """Marks every Job and Pod it reviews with the annotation SEEN and records the review."""
    reviews: list[dict] = []

    async def mutate(request: web.Request) -> web.Response:
        review = await request.json()
        reviews.append(review)
        has_annotations = bool((review["request"]["object"]["metadata"]).get("annotations"))
        op = (
            {"op": "add", "path": "/metadata/annotations/" + SEEN.replace("/", "~1"), "value": "yes"}
            if has_annotations
            else {"op": "add", "path": "/metadata/annotations", "value": {SEEN: "yes"}}
        )
        return review_response(review, [op])

    app = web.Application()
    app.router.add_post("/mutate", mutate)
    async with serve_https(app, ["mark.hooks.svc"]) as served:
        rule = {"operations": ["CREATE"], "scope": "Namespaced"}
        await apiserver.client.create(
            R.MUTATING_WEBHOOKS,
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "MutatingWebhookConfiguration",
                "metadata": {"name": "mark"},
                "webhooks": [
                    {
                        "name": "mark.example.com",
                        "admissionReviewVersions": ["v1"],
                        "sideEffects": "None",
                        "failurePolicy": "Fail",
                        "timeoutSeconds": 5,
                        "clientConfig": {"url": f"{served.url}/mutate", "caBundle": served.ca_bundle},
                        "rules": [
                            {**rule, "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]},
                            {**rule, "apiGroups": ["batch"], "apiVersions": ["v1"], "resources": ["jobs"]},
                        ],
                    }
                ],
            },
        )
        yield reviews


def _container(cpu: str) -> dict:
    return {"name": "main", "image": "busybox", "resources": {"requests": {"cpu": cpu}}}


def _reviewed(reviews: list[dict], kind: str) -> set[str]:
    return {
        r["request"]["object"]["metadata"].get("name")
        or r["request"]["object"]["metadata"].get("generateName")
        for r in reviews
        if r["request"]["kind"]["kind"] == kind
    }


async def test_an_mpijobs_launcher_job_and_worker_pods_pass_the_webhook(
    apiserver, marking_webhook, start_cluster
):
    api = apiserver
    await start_cluster(nodes=2, cpus=8, memory="16Gi", racks=1)
    template = {
        "metadata": {"annotations": {"sim.fluxqueue.io/runtime": "2s"}},
        "spec": {"containers": [_container("1")]},
    }
    await api.client.create(
        MPIJOBS,
        {
            "apiVersion": "kubeflow.org/v2beta1",
            "kind": "MPIJob",
            "metadata": {"name": "hooked"},
            "spec": {
                "runPolicy": {"cleanPodPolicy": "None"},
                "mpiReplicaSpecs": {
                    "Launcher": {"replicas": 1, "template": template},
                    "Worker": {"replicas": 2, "template": template},
                },
            },
        },
        namespace=NS,
    )
    sel = "training.kubeflow.org/job-name=hooked"
    pods = await eventually(
        lambda: _all(api.client.list(R.PODS, namespace=NS, label_selector=sel), 3, "Succeeded"), 20
    )
    assert all(p["metadata"]["annotations"][SEEN] == "yes" for p in pods)
    assert {"hooked-worker-0", "hooked-worker-1"} <= _reviewed(marking_webhook, "Pod")
    assert "hooked-launcher" in _reviewed(marking_webhook, "Job")
    launcher = await api.client.get(R.JOBS, "hooked-launcher", namespace=NS)
    assert launcher["metadata"]["annotations"][SEEN] == "yes"


async def test_a_jobsets_child_jobs_and_their_pods_pass_the_webhook(
    apiserver, marking_webhook, start_cluster
):
    api = apiserver
    await start_cluster(nodes=2, cpus=8, memory="16Gi", racks=1)
    await api.client.create(
        JOBSETS,
        {
            "apiVersion": "jobset.x-k8s.io/v1alpha2",
            "kind": "JobSet",
            "metadata": {"name": "hooked"},
            "spec": {
                "replicatedJobs": [
                    {
                        "name": "w",
                        "replicas": 2,
                        "template": {
                            "spec": {
                                "template": {
                                    "metadata": {"annotations": {"sim.fluxqueue.io/runtime": "2s"}},
                                    "spec": {"restartPolicy": "Never", "containers": [_container("1")]},
                                }
                            }
                        },
                    }
                ]
            },
        },
        namespace=NS,
    )
    sel = "jobset.sigs.k8s.io/jobset-name=hooked"
    pods = await eventually(
        lambda: _all(api.client.list(R.PODS, namespace=NS, label_selector=sel), 2, "Succeeded"), 20
    )
    assert all(p["metadata"]["annotations"][SEEN] == "yes" for p in pods)
    assert {"hooked-w-0", "hooked-w-1"} <= _reviewed(marking_webhook, "Job")
    jobs = (await api.client.list(R.JOBS, namespace=NS, label_selector=sel))["items"]
    assert all(j["metadata"]["annotations"][SEEN] == "yes" for j in jobs)


async def _all(aw, count: int, phase: str):
    items = (await aw)["items"]
    return items if len(items) == count and all(p["status"].get("phase") == phase for p in items) else None
