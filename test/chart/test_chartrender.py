"""What `fluxqueue sim` registers and runs is what `helm template` of the chart renders, for every shape of
values: the CRD, the MutatingWebhookConfiguration, the controller's and Fluxion's command lines and env."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml
from support.helm import container, of_kind, render_chart

from fluxqueue.kube import names
from fluxqueue.sim import chartrender
from fluxqueue.sim.apiserver import APIServer
from fluxqueue.sim.apiserver import resources as R
from fluxqueue.sim.harness.system import SimConfig, SimSystem

REPO = Path(__file__).resolve().parents[2]

# Every branch of the templates the Python follows, and what the simulator itself renders.
VARIANTS: dict[str, tuple[dict, str, str]] = {
    "defaults": ({}, "fluxqueue", "fluxqueue-system"),
    "simulator": (SimSystem(SimConfig()).chart_values(), "fluxqueue", "fluxqueue-system"),
    "other release and namespace": (chartrender.sim_values(), "prod", "batch"),
    "name overrides": ({"nameOverride": "fq", "fullnameOverride": ""}, "r1", "ns1"),
    "full name override": ({"fullnameOverride": "sched-"}, "r1", "ns1"),
    "webhook by url, excluded namespaces, extra selectors": (
        {
            "webhook": {
                "url": "https://dev.example:9443/",
                "failurePolicy": "Fail",
                "timeoutSeconds": 10,
                "excludeNamespaces": ["monitoring", "kube-system"],
                "namespaceSelectorExpressions": [{"key": "team", "operator": "Exists"}],
                "service": {"port": 8443},
                "certificates": {
                    "secretName": "my-tls",
                    "extraDNSNames": ["a.example", "b.example"],
                    "extraIPAddresses": ["10.0.0.1"],
                    "caValidityDays": 30,
                },
            }
        },
        "fluxqueue",
        "fluxqueue-system",
    ),
    "fluxion deployment, no election, external database, extras": (
        {
            "logLevel": "debug",
            "fluxion": {"mode": "deployment", "port": 5000, "policy": "lonode", "extraArgs": ["--x=1"]},
            "controller": {
                "leaderElection": {"enabled": False},
                "extraArgs": ["--resync=30"],
                "extraEnv": [{"name": "A", "value": "b"}],
                "qps": 1000000,
                "burst": 2000.0,
                "groupTimeoutSeconds": 0.5,
            },
            "postgresql": {"enabled": False},
            "externalDatabase": {"existingSecret": "db", "existingSecretKey": "uri"},
        },
        "fluxqueue",
        "fluxqueue-system",
    ),
}


@pytest.fixture(scope="module")
def rendered(tools) -> dict[str, list[dict]]:
    async def all_variants():
        jobs = [render_chart(v, r, ns, helm=str(tools.helm)) for v, r, ns in VARIANTS.values()]
        return dict(zip(VARIANTS, await asyncio.gather(*jobs), strict=True))

    return asyncio.run(all_variants())


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_helm_template_renders_the_objects_the_simulator_registers(rendered, variant):
    values, release, namespace = VARIANTS[variant]
    manifests = rendered[variant]
    crds = of_kind(manifests, "CustomResourceDefinition")
    assert chartrender.crds() == crds, "stale chart CRD: run python hack/gen-crd.py"
    by_helm = crds + of_kind(manifests, "MutatingWebhookConfiguration")
    assert chartrender.registered_objects(values, release, namespace) == by_helm


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_helm_template_renders_the_command_lines_the_simulator_runs(rendered, variant):
    values, release, namespace = VARIANTS[variant]
    controller = container(rendered[variant], "controller")
    fluxion = container(rendered[variant], "fluxion")
    assert chartrender.controller_container(values, release, namespace) == {
        k: controller[k] for k in ("name", "args", "env")
    }
    assert chartrender.fluxion_container(values, release, namespace) == {
        k: fluxion[k] for k in ("name", "args")
    }


def _leaves(tree: dict, prefix: tuple[str, ...] = ()):
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            yield from _leaves(value, (*prefix, key))
        else:
            yield (*prefix, key), value


def test_the_defaults_are_the_charts_values_yaml():
    chart_values = yaml.safe_load((REPO / "chart" / "values.yaml").read_text())
    for path, value in _leaves(chartrender.DEFAULTS):
        node = chart_values
        for key in path:
            node = node[key]
        assert node == value, ".".join(path)


def test_the_chart_version_and_labels_are_chart_yamls():
    chart = yaml.safe_load((REPO / "chart" / "Chart.yaml").read_text())
    assert (chart["name"], chart["version"], chart["appVersion"]) == (
        chartrender.CHART_NAME,
        chartrender.CHART_VERSION,
        chartrender.APP_VERSION,
    )


def test_an_external_database_without_a_secret_is_one_clear_error():
    from fluxqueue.errors import ConfigError

    with pytest.raises(ConfigError, match=r"externalDatabase.existingSecret is required"):
        chartrender.controller_container({"postgresql": {"enabled": False}})


async def test_the_simulator_registers_the_crd_and_webhook_through_the_in_process_client():
    objects = chartrender.registered_objects(chartrender.sim_values())
    assert [o["kind"] for o in objects] == [
        "CustomResourceDefinition",
        "CustomResourceDefinition",
        "MutatingWebhookConfiguration",
    ]
    assert [o["metadata"]["name"] for o in objects[:2]] == ["fluxjobs.fluxqueue.io", "queues.fluxqueue.io"]
    api = APIServer(tls=False)
    try:
        await chartrender.install(api.client, objects)
        webhook = await api.client.get(R.MUTATING_WEBHOOKS, "fluxqueue-webhook")
        # Exactly the production object: a Service reference the simulator maps with register_service.
        assert webhook["webhooks"][0]["clientConfig"]["service"]["name"] == "fluxqueue-webhook"
        await api.client.create(
            R.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}
        )
        fj = {
            "apiVersion": f"{names.CRD_GROUP}/{names.CRD_VERSION}",
            "kind": names.CRD_KIND,
            "metadata": {"name": "probe", "namespace": "team-a"},
            "spec": {},
        }
        await api.client.create(R.FLUXJOBS, fj, namespace="team-a")
    finally:
        await api.stop()


def test_simulator_values_add_the_loopback_address_to_the_certificate():
    assert (
        "--webhook-extra-ip=127.0.0.1" in chartrender.controller_container(chartrender.sim_values())["args"]
    )
