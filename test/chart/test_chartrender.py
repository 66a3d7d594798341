"""render_chart + install: what `fluxqueue sim up` registers is the chart's own CRD and webhook."""

from __future__ import annotations

from fluxqueue.kube import names
from fluxqueue.sim.apiserver import APIServer
from fluxqueue.sim.apiserver import resources as R
from fluxqueue.sim.chartrender import controller_container, install, of_kind, render_chart, sim_values


async def test_sim_registers_the_charts_crd_and_webhook_through_the_in_process_client(tools):
    manifests = await render_chart(sim_values(), helm=str(tools.helm))
    assert manifests[0]["kind"] == "CustomResourceDefinition"  # CRDs first
    api = APIServer(tls=False)
    try:
        created = await install(
            api.client, manifests, kinds=("CustomResourceDefinition", "MutatingWebhookConfiguration")
        )
        assert [o["kind"] for o in created] == ["CustomResourceDefinition", "MutatingWebhookConfiguration"]
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


async def test_simulator_values_add_the_loopback_address_to_the_certificate(tools):
    manifests = await render_chart(sim_values(), helm=str(tools.helm))
    assert "--webhook-extra-ip=127.0.0.1" in controller_container(manifests)["args"]
    assert of_kind(manifests, "MutatingWebhookConfiguration")
