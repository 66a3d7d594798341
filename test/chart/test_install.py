"""`helm install` of the chart into the Kubernetes API emulator with the real helm binary: every object the
chart renders is created and readable back, and an upgrade keeps the generated database password."""

from __future__ import annotations

import base64

import pytest
from support.clitools import run_tool

from fluxqueue.kube import names
from fluxqueue.sim.apiserver import APIServer
from fluxqueue.sim.apiserver import resources as R
from fluxqueue.sim.chartrender import WEBHOOK_RULES

NS = "fluxqueue-system"

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
async def cluster(tmp_path):
    api = APIServer()
    await api.start()
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
    yield api, kubeconfig
    await api.stop()


async def helm(tools, kubeconfig, *args: str) -> str:
    return (await run_tool(tools.helm, *args, kubeconfig=kubeconfig, limit_s=120)).stdout


async def test_helm_install_creates_every_object_of_the_chart(tools, cluster):
    api, kubeconfig = cluster
    from support.helm import CHART_DIR

    out = await helm(
        tools,
        kubeconfig,
        "install",
        "fluxqueue",
        str(CHART_DIR),
        "-n",
        NS,
        "--create-namespace",
        "--set",
        "controller.replicas=2",
        "--timeout",
        "60s",
    )
    assert "STATUS: deployed" in out
    c = api.client

    crd = await c.get(R.CRDS, names.CRD_NAME)
    assert crd["spec"]["names"]["shortNames"] == [names.CRD_SHORT_NAME]
    webhook = await c.get(R.MUTATING_WEBHOOKS, "fluxqueue-webhook")
    assert len(webhook["webhooks"]) == len(WEBHOOK_RULES)
    assert {h["failurePolicy"] for h in webhook["webhooks"]} == {"Ignore"}
    deployment = await c.get(R.DEPLOYMENTS, "fluxqueue-controller", namespace=NS)
    assert deployment["spec"]["replicas"] == 2
    assert (await c.get(R.STATEFULSETS, "fluxqueue-postgresql", namespace=NS))["spec"]["replicas"] == 1
    for service in ("fluxqueue-webhook", "fluxqueue-metrics", "fluxqueue-postgresql"):
        await c.get(R.SERVICES, service, namespace=NS)
    await c.get(R.SERVICEACCOUNTS, "fluxqueue", namespace=NS)
    await c.get(R.CLUSTERROLES, "fluxqueue-controller")
    await c.get(R.CLUSTERROLEBINDINGS, "fluxqueue-controller")
    await c.get(R.ROLES, "fluxqueue-controller", namespace=NS)
    await c.get(R.ROLEBINDINGS, "fluxqueue-controller", namespace=NS)
    await c.get(R.POD_DISRUPTION_BUDGETS, "fluxqueue-controller", namespace=NS)
    secret = await c.get(R.SECRETS, "fluxqueue-postgresql", namespace=NS)
    password = base64.b64decode(secret["data"]["password"])

    # FluxJobs are servable once the chart's CRD is in.
    fj = {
        "apiVersion": f"{names.CRD_GROUP}/{names.CRD_VERSION}",
        "kind": names.CRD_KIND,
        "metadata": {"name": "probe", "namespace": NS},
        "spec": {},
    }
    await c.create(R.FLUXJOBS, fj, namespace=NS)

    # An upgrade keeps the generated password (lookup of the live Secret) and changes what was asked.
    await helm(
        tools,
        kubeconfig,
        "upgrade",
        "fluxqueue",
        str(CHART_DIR),
        "-n",
        NS,
        "--reuse-values",
        "--set",
        "webhook.failurePolicy=Fail",
    )
    secret = await c.get(R.SECRETS, "fluxqueue-postgresql", namespace=NS)
    assert base64.b64decode(secret["data"]["password"]) == password
    webhook = await c.get(R.MUTATING_WEBHOOKS, "fluxqueue-webhook")
    assert {h["failurePolicy"] for h in webhook["webhooks"]} == {"Fail"}

    await helm(tools, kubeconfig, "uninstall", "fluxqueue", "-n", NS, "--timeout", "60s")
    listed = await c.list(R.MUTATING_WEBHOOKS)
    assert not listed["items"]
