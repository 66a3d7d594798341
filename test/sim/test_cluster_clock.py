"""Simulated time: one timer heap serves every delay, scaled by the cluster's time scale."""

from __future__ import annotations

import asyncio
import time

import pytest
from support.polling import Budget

from fluxqueue.sim.clock import SimClock, Timers
from fluxqueue.sim.cluster import node_names
from fluxqueue.sim.kubelet import lease_duration_s


async def test_timers_fire_in_simulated_time_order_and_can_be_cancelled():
    timers = Timers(SimClock(time_scale=100))
    timers.start()
    fired: list[tuple[str, float]] = []
    t0 = time.monotonic()

    def note(name: str) -> None:
        fired.append((name, time.monotonic() - t0))

    async def note_async(name: str) -> None:
        note(name)

    timers.after(20, note, "b")  # 20 simulated seconds = 0.2 s
    timers.after(5, note_async, "a")
    cancelled = timers.after(10, note, "never")
    cancelled.cancel()
    await asyncio.sleep(0.35)
    await timers.stop()
    assert [n for n, _ in fired] == ["a", "b"]
    assert fired[0][1] == pytest.approx(0.05, abs=0.04) and fired[1][1] == pytest.approx(0.2, abs=0.06)


def test_node_names_are_zero_padded():
    assert node_names(3) == ["node-000", "node-001", "node-002"]
    assert node_names(5000)[-1] == "node-4999" and node_names(5000)[0] == "node-0000"


def test_lease_duration_follows_the_heartbeat_write_cap():
    assert lease_duration_s(16, 100, 1) == 40  # the kubelet default when the cap does not bind
    # 5,000 nodes at 100 writes/s: each lease renewed every 50 s, so it must last 200 s
    assert lease_duration_s(5000, 100, 1) == 200


async def test_the_cluster_also_runs_on_copied_reads(apiserver):
    """shared_reads=False: informers use the client's list/watch copies; behaviour is the same."""
    from fluxqueue.sim.apiserver import resources as R
    from fluxqueue.sim.cluster import ClusterSpec, SimCluster

    cluster = SimCluster(apiserver, ClusterSpec(nodes=1, cpus=2, racks=1), time_scale=100, shared_reads=False)
    await cluster.start()
    try:
        await apiserver.client.create(
            R.PODS,
            {
                "metadata": {"name": "copy", "annotations": {"sim.fluxqueue.io/runtime": "2s"}},
                "spec": {
                    "nodeName": "node-000",
                    "restartPolicy": "Never",
                    "containers": [{"name": "m", "image": "busybox"}],
                },
            },
            namespace="default",
        )
        budget = Budget(5)
        phase = None
        while phase != "Succeeded" and not budget.exhausted():
            await asyncio.sleep(0.05)
            phase = (await apiserver.client.get(R.PODS, "copy", namespace="default"))["status"].get("phase")
        assert phase == "Succeeded"
    finally:
        await cluster.stop()
