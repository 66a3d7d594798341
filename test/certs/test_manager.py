"""CertificateManager against the Kubernetes API emulator: the Secret shared by replicas, the caBundle
injected into the chart's own webhook configuration, and the emulator's TLS-verified webhook call."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt

import pytest
from cryptography import x509

from fluxqueue.certs import CertificateManager, RotationPolicy, ServingIdentity
from fluxqueue.certs.authority import load_bundle
from fluxqueue.certs.store import material_from_secret
from fluxqueue.kube import names
from fluxqueue.metrics import Metrics
from fluxqueue.sim.apiserver import APIServer
from fluxqueue.sim.apiserver import resources as R
from fluxqueue.sim.chartrender import controller_container, sim_values, webhook_configuration
from fluxqueue.webhook.config import WebhookConfig
from fluxqueue.webhook.server import make_app, serve

NS = "fluxqueue-system"
SECRET = "fluxqueue-webhook-tls"
WEBHOOK = "fluxqueue-webhook"
IDENTITY = ServingIdentity.for_service("fluxqueue-webhook", NS, extra_ips=("127.0.0.1",))


@pytest.fixture(scope="module")
def chart_webhook() -> dict:
    """The chart's webhook configuration (what helm renders: test/chart/test_chartrender.py)."""
    return webhook_configuration(sim_values(), namespace=NS)


@pytest.fixture
async def api():
    server = APIServer(tls=False)  # the in-process client is enough: same pipeline as HTTP
    for ns in (NS, "team-a"):
        await server.client.create(
            R.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
        )
    yield server
    await server.stop()


def manager(api, clock=None, policy=None) -> CertificateManager:
    kwargs = {"clock": clock} if clock else {}
    return CertificateManager(
        api.client,
        namespace=NS,
        secret_name=SECRET,
        webhook_configuration=WEBHOOK,
        identity=IDENTITY,
        policy=policy,
        **kwargs,
    )


def job(name: str) -> dict:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": "team-a"},
        "spec": {
            "parallelism": 2,
            "completions": 2,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "c",
                            "image": "busybox",
                            "resources": {"requests": {"cpu": "1", "memory": "1Gi"}},
                        }
                    ],
                }
            },
        },
    }


async def test_chart_webhook_intercepts_a_job_over_tls_verified_with_the_injected_ca(api, chart_webhook):
    await api.client.create(R.MUTATING_WEBHOOKS, chart_webhook)
    certs = manager(api)
    await certs.start()
    server = await serve(
        make_app(WebhookConfig(namespace=NS)), "127.0.0.1", 0, ssl_context=certs.server_ssl_context
    )
    try:
        api.register_service(NS, "fluxqueue-webhook", 443, f"https://127.0.0.1:{server.port}")
        assert certs.ready

        config = await api.client.get(R.MUTATING_WEBHOOKS, WEBHOOK)
        bundle = base64.b64encode(certs.ca_bundle).decode()
        assert [h["clientConfig"]["caBundle"] for h in config["webhooks"]] == [bundle] * len(
            config["webhooks"]
        )

        created = await api.client.create(R.JOBS, job("first"), namespace="team-a")
        assert created["spec"]["suspend"] is True
        assert created["spec"]["template"]["spec"]["schedulerName"] == names.SCHEDULER_NAME

        # The release namespace is never intercepted (namespaceSelector from the chart).
        own = job("own")
        own["metadata"]["namespace"] = NS
        created = await api.client.create(R.JOBS, own, namespace=NS)
        assert not created["spec"].get("suspend")
    finally:
        await certs.stop()
        await server.stop()


async def test_without_the_injected_ca_the_emulator_refuses_the_webhook_and_ignore_lets_the_job_through(
    api, chart_webhook
):
    # No manager ran: caBundle is empty, so TLS verification of our self-signed serving cert fails.
    await api.client.create(R.MUTATING_WEBHOOKS, chart_webhook)
    rogue = manager(api)
    await rogue._tls.aload(*_material_for_other_ca())
    server = await serve(
        make_app(WebhookConfig(namespace=NS)), "127.0.0.1", 0, ssl_context=rogue.server_ssl_context
    )
    try:
        api.register_service(NS, "fluxqueue-webhook", 443, f"https://127.0.0.1:{server.port}")
        created = await api.client.create(R.JOBS, job("slipped"), namespace="team-a")
        assert not created["spec"].get("suspend")  # failurePolicy Ignore: never blocks creation
    finally:
        await server.stop()


def _material_for_other_ca():
    from fluxqueue.certs.authority import plan

    m = plan(None, IDENTITY, dt.datetime.now(dt.UTC), RotationPolicy())
    return m.tls_cert, m.tls_key


async def test_racing_replicas_agree_on_one_ca(api, chart_webhook):
    await api.client.create(R.MUTATING_WEBHOOKS, chart_webhook)
    replicas = [manager(api) for _ in range(3)]
    replicas[0].metrics = Metrics()
    served = await asyncio.gather(*(r.reconcile() for r in replicas))
    secret = await api.client.get(R.SECRETS, SECRET, namespace=NS)
    stored = material_from_secret(secret)
    assert {m.ca_cert for m in served} == {stored.ca_cert}
    assert {m.tls_cert for m in served} == {stored.tls_cert}
    assert {r._tls.cert_pem for r in replicas} == {stored.tls_cert}
    assert all(r.ready for r in replicas)
    expiry = replicas[0].metrics.registry.get_sample_value(
        "fluxqueue_webhook_certificate_expiry_timestamp_seconds"
    )
    assert expiry == x509.load_pem_x509_certificate(stored.tls_cert).not_valid_after_utc.timestamp()


async def test_rotation_by_one_replica_is_picked_up_by_another_without_restart(api, chart_webhook):
    await api.client.create(R.MUTATING_WEBHOOKS, chart_webhook)
    policy = RotationPolicy(
        ca_validity=dt.timedelta(days=30),
        serving_validity=dt.timedelta(days=9),
        grace=dt.timedelta(minutes=10),
    )
    now = [dt.datetime.now(dt.UTC)]
    a, b = manager(api, lambda: now[0], policy), manager(api, lambda: now[0], policy)
    first = await a.reconcile()
    await b.reconcile()
    assert b.reloads == 1

    now[0] += dt.timedelta(days=21)  # CA: 9 of 30 days left -> staged; leaf expired -> re-issued now
    rotated = await a.reconcile()
    assert rotated.ca_cert != first.ca_cert
    bundle = load_bundle(rotated.ca_bundle)
    assert bundle[0] == x509.load_pem_x509_certificate(rotated.ca_cert)
    assert x509.load_pem_x509_certificate(first.ca_cert) in bundle  # old CA kept during rollover

    await b.reconcile()  # the other replica's periodic re-read
    assert b._tls.cert_pem == rotated.tls_cert and b.reloads == 2
    config = await api.client.get(R.MUTATING_WEBHOOKS, WEBHOOK)
    assert {h["clientConfig"]["caBundle"] for h in config["webhooks"]} == {
        base64.b64encode(rotated.ca_bundle).decode()
    }


async def test_an_emptied_secret_heals_and_the_webhook_is_readied_once_it_exists(api, chart_webhook):
    await api.client.create(
        R.SECRETS,
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": SECRET, "namespace": NS}},
        namespace=NS,
    )
    certs = manager(api)
    await certs.reconcile()
    assert material_from_secret(await api.client.get(R.SECRETS, SECRET, namespace=NS)) is not None
    assert not certs.ready  # the webhook configuration does not exist yet
    await api.client.create(R.MUTATING_WEBHOOKS, chart_webhook)
    await certs.reconcile()
    assert certs.ready


async def test_options_parse_the_flags_the_chart_renders(api, chart_webhook, tools):
    import argparse

    from fluxqueue.certs.options import add_arguments, manager_from_args

    args = controller_container(sim_values(), namespace=NS)["args"]
    flags = [a for a in args if a.split("=")[0] in _cert_flags()]
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(flags)
    certs = manager_from_args(args, api.client, NS)
    assert certs.secret_name == SECRET and certs.webhook_configuration == WEBHOOK
    assert certs.identity == IDENTITY
    assert certs.policy.ca_validity == dt.timedelta(days=1825)
    await api.client.create(R.MUTATING_WEBHOOKS, chart_webhook)
    await certs.reconcile()
    assert certs.ready


def _cert_flags() -> set[str]:
    import argparse

    from fluxqueue.certs.options import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return {s for a in parser._actions for s in a.option_strings if s.startswith("--")}
