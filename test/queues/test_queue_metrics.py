"""Each tenant queue's gauges (fluxqueue_queue_*), in the units Prometheus users expect (CPU in cores)."""

from __future__ import annotations

from fluxqueue.controller.instruments import Instruments
from fluxqueue.controller.queueing import queue_status
from fluxqueue.metrics import Metrics
from fluxqueue.queues.share import CPU, GPU, MEMORY
from fluxqueue.queues.spec import queue_spec

GI = 2**30


def test_a_queues_usage_quota_units_and_share_are_exported():
    m = Metrics()
    Instruments(m).set_queue("team-a", {CPU: 16000, MEMORY: 4 * GI, GPU: 2}, {CPU: 4000}, 4, 3, 0.75)
    get = m.registry.get_sample_value
    assert get("fluxqueue_queue_usage", {"queue": "team-a", "resource": "cpu"}) == 16
    assert get("fluxqueue_queue_usage", {"queue": "team-a", "resource": "memory"}) == 4 * GI
    assert get("fluxqueue_queue_usage", {"queue": "team-a", "resource": "nvidia.com/gpu"}) == 2
    assert get("fluxqueue_queue_quota", {"queue": "team-a", "resource": "cpu"}) == 4
    assert get("fluxqueue_queue_units", {"queue": "team-a", "state": "running"}) == 4
    assert get("fluxqueue_queue_units", {"queue": "team-a", "state": "pending"}) == 3
    assert get("fluxqueue_queue_fair_share", {"queue": "team-a"}) == 0.75


def test_a_queues_status_says_usage_against_quota_and_what_is_wrong_with_it():
    spec = queue_spec({"metadata": {"name": "q"}, "spec": {"quota": {"cpu": "4", "disk": "1"}, "weight": 2}})
    status = queue_status(spec, {CPU: 6000, MEMORY: GI, GPU: 0}, {CPU: 1500}, 2, 1, 0.125)
    assert status["usage"] == {"cpu": "6", "memory": "1Gi"}
    assert status["pending"] == {"cpu": "1500m", "memory": "0"}
    assert status["usageSummary"] == "cpu 6/4, memory 1Gi"
    assert (status["runningUnits"], status["pendingUnits"], status["share"]) == (2, 1, "0.125")
    [valid] = status["conditions"]
    assert valid["status"] == "False" and "disk is not accounted" in valid["message"]
