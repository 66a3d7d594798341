"""The webhook over real HTTPS: AdmissionReview round trips, probes, bad requests, and latency metrics."""

import base64
import json
import ssl

import aiohttp
import pytest

from fluxqueue.metrics import Metrics
from fluxqueue.webhook.config import WebhookConfig
from fluxqueue.webhook.server import make_app, serve


def pod_review(uid="r1", labels=None):
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": "CREATE",
            "namespace": "default",
            "object": {
                "metadata": {"generateName": "p-", "labels": labels or {}},
                "spec": {"containers": [{"name": "c"}]},
            },
        },
    }


@pytest.fixture
async def server(tls):
    metrics = Metrics()
    running = await serve(make_app(WebhookConfig(), metrics=metrics), "127.0.0.1", 0, tls.server)
    running.metrics = metrics
    yield running
    await running.stop()


async def test_admission_review_round_trip_over_tls(server, tls):
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls.client)) as session:
        async with session.post(server.url + "/mutate", json=pod_review()) as r:
            assert r.status == 200 and r.content_type == "application/json"
            body = await r.json()
        assert body["kind"] == "AdmissionReview" and body["response"]["uid"] == "r1"
        ops = json.loads(base64.b64decode(body["response"]["patch"]))
        assert {"op": "add", "path": "/spec/schedulerName", "value": "fluxqueue"} in ops
        async with session.post(
            server.url + "/mutate", json=pod_review("r2", {"fluxqueue.io/group-size": "x"})
        ) as r:
            rejected = (await r.json())["response"]
        assert rejected["allowed"] is False and "group-size" in rejected["status"]["message"]
        for probe in ("/healthz", "/readyz"):
            async with session.get(server.url + probe) as r:
                assert r.status == 200
    exposition = server.metrics.exposition().decode()
    assert (
        'fluxqueue_webhook_request_duration_seconds_count{outcome="mutated",resource="pods"} 1.0'
        in exposition
    )
    assert 'outcome="rejected",resource="pods"} 1.0' in exposition


async def test_clients_that_do_not_trust_the_ca_are_refused(server):
    untrusting = ssl.create_default_context()  # system roots only
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=untrusting)) as session:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await session.post(server.url + "/mutate", json=pod_review())


async def test_garbage_bodies_get_400_not_a_crash(server, tls):
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls.client)) as session:
        async with session.post(server.url + "/mutate", data=b"{not json") as r:
            assert r.status == 400
        async with session.post(server.url + "/mutate", json={"kind": "AdmissionReview"}) as r:
            assert r.status == 400
        async with session.post(server.url + "/mutate", json=pod_review("r3")) as r:
            assert (await r.json())["response"]["uid"] == "r3"  # still serving


async def test_plain_http_serving_for_local_use():
    running = await serve(make_app(WebhookConfig(), metrics=None), "127.0.0.1", 0, None)
    try:
        assert running.url.startswith("http://")
        async with (
            aiohttp.ClientSession() as session,
            session.post(running.url + "/mutate", json=pod_review()) as r,
        ):
            assert (await r.json())["response"]["allowed"] is True
    finally:
        await running.stop()
