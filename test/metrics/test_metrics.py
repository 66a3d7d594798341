"""Metrics are named in Kueue's style, isolated per controller, and served with the health probes."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from fluxqueue.metrics import METRICS, QUEUE_PHASES, Metrics, metrics_app

EXPECTED = {
    "fluxqueue_queue_length": "gauge",
    "fluxqueue_submissions": "counter",
    "fluxqueue_scheduling_latency_seconds": "histogram",
    "fluxqueue_fluxion_match_duration_seconds": "histogram",
    "fluxqueue_binds": "counter",
    "fluxqueue_cancels": "counter",
    "fluxqueue_unsatisfiable": "counter",
    "fluxqueue_scheduling_pass_duration_seconds": "histogram",
    "fluxqueue_webhook_request_duration_seconds": "histogram",
}


def families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_every_metric_is_named_fluxqueue_thing_unit_with_its_type():
    found = families(Metrics().exposition().decode())
    for name, kind in EXPECTED.items():
        assert found[name].type == kind, name


def test_two_controllers_in_one_process_keep_separate_counts():
    a, b = Metrics(), Metrics()
    a.binds.inc(3)
    b.binds.inc()
    assert a.registry.get_sample_value("fluxqueue_binds_total") == 3
    assert b.registry.get_sample_value("fluxqueue_binds_total") == 1


def test_queue_length_reports_every_phase_even_when_empty():
    m = Metrics()
    m.set_queue_lengths({"Queued": 7, "Running": 2})
    m.set_queue_lengths({"Queued": 5})
    get = m.registry.get_sample_value
    assert get("fluxqueue_queue_length", {"phase": "Queued"}) == 5
    assert get("fluxqueue_queue_length", {"phase": "Running"}) == 0
    assert {
        s.labels["phase"] for s in families(m.exposition().decode())["fluxqueue_queue_length"].samples
    } >= set(QUEUE_PHASES)


def test_latency_histograms_count_observations():
    m = Metrics()
    m.scheduling_latency.observe(1.5)
    m.match_duration.labels(status="ALLOCATED").observe(0.002)
    with m.pass_duration.time():
        pass
    get = m.registry.get_sample_value
    assert get("fluxqueue_scheduling_latency_seconds_count") == 1
    assert get("fluxqueue_scheduling_latency_seconds_bucket", {"le": "2.5"}) == 1
    assert get("fluxqueue_scheduling_latency_seconds_bucket", {"le": "1.0"}) == 0
    assert get("fluxqueue_fluxion_match_duration_seconds_count", {"status": "ALLOCATED"}) == 1
    assert get("fluxqueue_scheduling_pass_duration_seconds_count") == 1


def test_default_instance_exports_process_metrics():
    # Linux /proc is where ProcessCollector reads from; the controller image is Linux.
    assert "process_resident_memory_bytes" in METRICS.exposition().decode()


@pytest.fixture
async def probe_client():
    state = {"ready": False}

    async def ready():
        return (state["ready"], "leader elected" if state["ready"] else "certificates not loaded")

    m = Metrics()
    m.submissions.labels(kind="Job").inc()
    client = TestClient(TestServer(metrics_app(m, ready=ready)))
    await client.start_server()
    yield client, state
    await client.close()


async def test_endpoints_serve_metrics_liveness_and_readiness_from_the_callback(probe_client):
    client, state = probe_client
    resp = await client.get("/metrics")
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
    text = await resp.text()
    assert 'fluxqueue_submissions_total{kind="Job"} 1.0' in text

    assert (await client.get("/healthz")).status == 200
    resp = await client.get("/readyz")
    assert resp.status == 503 and "certificates not loaded" in await resp.text()
    state["ready"] = True
    resp = await client.get("/readyz")
    assert resp.status == 200


async def test_serve_metrics_listens_on_its_own_port():
    import aiohttp

    from fluxqueue.metrics import serve_metrics

    m = Metrics()
    m.binds.inc()
    runner, port = await serve_metrics("127.0.0.1", 0, m, ready=lambda: True)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/metrics") as r:
                assert "fluxqueue_binds_total 1.0" in await r.text()
            async with session.get(f"http://127.0.0.1:{port}/readyz") as r:
                assert r.status == 200
    finally:
        await runner.cleanup()
