"""The webhook registered with the API server emulator, as the chart registers it: objects created through
the API come out gated, suspended or refused exactly as the pure decision says, over verified TLS."""

import base64
import datetime as dt
from contextlib import asynccontextmanager

import pytest
from support.clitools import run_tool

from fluxqueue.certs.authority import ServingIdentity, make_ca, make_serving_cert
from fluxqueue.certs.tls import context_from_pem
from fluxqueue.sim.apiserver import APIError, APIServer
from fluxqueue.sim.apiserver import resources as R
from fluxqueue.webhook.config import WebhookConfig
from fluxqueue.webhook.server import make_app, serve

NS = "fluxqueue-system"
SVC = "fluxqueue-webhook"


def webhook_configuration(ca_pem: bytes) -> dict:
    common = {
        "clientConfig": {
            "service": {"name": SVC, "namespace": NS, "path": "/mutate", "port": 443},
            "caBundle": base64.b64encode(ca_pem).decode(),
        },
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "failurePolicy": "Fail",
        "timeoutSeconds": 5,
        "namespaceSelector": {
            "matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system", NS]}
            ]
        },
        "objectSelector": {
            "matchExpressions": [{"key": "fluxqueue.io/skip", "operator": "NotIn", "values": ["true"]}]
        },
    }
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "fluxqueue"},
        "webhooks": [
            {
                "name": "pods.webhook.fluxqueue.io",
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                        "scope": "Namespaced",
                    }
                ],
                **common,
            },
            {
                "name": "jobs.webhook.fluxqueue.io",
                "rules": [
                    {
                        "apiGroups": ["batch"],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["jobs"],
                        "scope": "Namespaced",
                    }
                ],
                **common,
            },
        ],
    }


@asynccontextmanager
async def emulator_with_webhook(over_https: bool):
    """The emulator with the real webhook registered as the chart registers it (a Service reference, its CA
    in caBundle), served over TLS with a certificate for that Service. ``over_https`` also starts the
    emulator's own HTTPS endpoint (for kubectl); the in-process client works either way."""
    now = dt.datetime.now(dt.UTC)
    ca_cert, ca_key = make_ca(now, dt.timedelta(days=1))
    cert, key = make_serving_cert(
        ca_cert, ca_key, ServingIdentity.for_service(SVC, NS), now, dt.timedelta(days=1)
    )
    webhook = await serve(
        make_app(WebhookConfig(namespace=NS), metrics=None), "127.0.0.1", 0, context_from_pem(cert, key)
    )
    api = APIServer(tls=over_https)
    if over_https:
        await api.start()
    api.register_service(NS, SVC, 443, f"https://127.0.0.1:{webhook.port}")
    try:
        for ns in ("default", NS):
            try:
                await api.client.create(
                    R.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
                )
            except APIError as exc:
                assert exc.code == 409
        await api.client.create(R.MUTATING_WEBHOOKS, webhook_configuration(ca_cert))
        yield api
    finally:
        await (
            api.engine.admission.close()
        )  # APIServer.stop() leaves the webhook-calling session open (for now)
        await api.stop()
        await webhook.stop()


@pytest.fixture
async def cluster():
    async with emulator_with_webhook(over_https=False) as api:
        yield api.client


def pod(name, labels=None):
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }


def job(name, suspend=None, parallelism=2):
    spec = {
        "parallelism": parallelism,
        "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}},
    }
    if suspend is not None:
        spec["suspend"] = suspend
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": spec}


async def test_pods_created_through_the_api_are_gated_for_fluxqueue(cluster):
    created = await cluster.create(R.PODS, pod("p1"), namespace="default")
    assert created["spec"]["schedulerName"] == "fluxqueue"
    assert created["spec"]["schedulingGates"] == [{"name": "fluxqueue.io/queued"}]
    assert created["metadata"]["labels"]["fluxqueue.io/managed"] == "true"
    generated = pod("")
    del generated["metadata"]["name"]
    generated["metadata"]["generateName"] = "gen-"
    created = await cluster.create(R.PODS, generated, namespace="default")
    assert created["metadata"]["name"].startswith("gen-") and created["spec"]["schedulingGates"]


async def test_dry_run_is_mutated_and_leaves_nothing_behind(cluster):
    dry = await cluster.create(R.PODS, pod("dry"), namespace="default", dry_run=True)
    assert dry["spec"]["schedulingGates"] == [{"name": "fluxqueue.io/queued"}]
    with pytest.raises(APIError) as err:
        await cluster.get(R.PODS, "dry", namespace="default")
    assert err.value.code == 404


async def test_bad_labels_are_refused_with_the_message(cluster):
    with pytest.raises(APIError) as err:
        await cluster.create(
            R.PODS,
            pod("bad", {"fluxqueue.io/group-name": "g", "fluxqueue.io/group-size": "abc"}),
            namespace="default",
        )
    assert "fluxqueue.io/group-size must be a positive integer, got 'abc'" in err.value.message


async def test_skipped_and_system_namespace_pods_are_untouched(cluster):
    skipped = await cluster.create(R.PODS, pod("s", {"fluxqueue.io/skip": "true"}), namespace="default")
    assert (
        not skipped["spec"].get("schedulingGates") and skipped["spec"]["schedulerName"] == "default-scheduler"
    )
    ours = await cluster.create(R.PODS, pod("ctl"), namespace=NS)
    assert not ours["spec"].get("schedulingGates")


async def test_jobs_are_suspended_and_a_user_suspended_job_is_queued_on_unsuspend(cluster):
    j = await cluster.create(R.JOBS, job("train"), namespace="default")
    assert j["spec"]["suspend"] is True
    assert j["spec"]["template"]["spec"]["schedulerName"] == "fluxqueue"
    assert j["spec"]["template"]["metadata"]["labels"]["fluxqueue.io/managed"] == "true"

    held = await cluster.create(R.JOBS, job("held", suspend=True), namespace="default")
    assert held["metadata"]["annotations"]["fluxqueue.io/user-suspended"] == "true"
    after = await cluster.patch(
        R.JOBS, "held", {"spec": {"suspend": False}}, namespace="default", patch_type="merge"
    )
    assert after["spec"]["suspend"] is True
    assert "fluxqueue.io/user-suspended" not in (after["metadata"].get("annotations") or {})

    # The controller's release (unsuspend of a queued managed Job) passes through.
    released = await cluster.patch(
        R.JOBS,
        "train",
        {"metadata": {"annotations": {"fluxqueue.io/nodes": "node-1"}}, "spec": {"suspend": False}},
        namespace="default",
        patch_type="merge",
    )
    assert released["spec"]["suspend"] is False


@pytest.fixture
async def served(tmp_path):
    """The emulator over HTTPS (for kubectl) with the webhook registered, and a kubeconfig for it."""
    async with emulator_with_webhook(over_https=True) as api:
        yield api.write_kubeconfig(tmp_path / "kubeconfig")


async def kubectl(tools, kubeconfig, *args, stdin: str | None = None):
    r = await run_tool(tools.kubectl, *args, kubeconfig=kubeconfig, stdin=stdin, check=False)
    return r.returncode, r.stdout, r.stderr


async def test_kubectl_users_see_the_rejection_and_the_queued_objects(served, tools):
    bad = """
apiVersion: v1
kind: Pod
metadata:
  name: bad
  labels: {fluxqueue.io/group-name: mpi, fluxqueue.io/group-size: abc}
spec:
  containers: [{name: c, image: busybox}]
"""
    code, _, err = await kubectl(tools, served, "apply", "-f", "-", stdin=bad)
    assert code != 0
    assert "fluxqueue.io/group-size must be a positive integer, got 'abc'" in err

    good = """
apiVersion: batch/v1
kind: Job
metadata: {name: train}
spec:
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox}]
"""
    code, out, err = await kubectl(tools, served, "apply", "-f", "-", stdin=good)
    assert code == 0, err
    code, out, err = await kubectl(
        tools,
        served,
        "get",
        "job",
        "train",
        "-o",
        "jsonpath={.spec.suspend} {.spec.template.spec.schedulerName}",
    )
    assert (code, out) == (0, "true fluxqueue"), err
    held = good.replace("name: train", "name: held").replace(
        "parallelism: 2", "parallelism: 2\n  suspend: true"
    )
    code, out, err = await kubectl(tools, served, "apply", "-f", "-", stdin=held)
    assert code == 0, err
    code, out, err = await kubectl(
        tools,
        served,
        "get",
        "job",
        "held",
        "-o",
        "jsonpath={.metadata.annotations.fluxqueue\\.io/user-suspended}",
    )
    assert (code, out) == (0, "true"), err
