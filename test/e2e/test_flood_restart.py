"""Crashes during a flood: the controller and Fluxion die while hundreds of units are being queued, placed,
bound and reported (the batched submissions, placements and bindings, the deferred status writes and the
Events held for FluxJobs not created yet all in flight), and the system still converges: every unit ends
once, every pod is bound once, no node is ever over-committed, no gang is bound in part (the invariants the
``system`` fixture checks after the test).
"""

from __future__ import annotations

import asyncio
import random

import pytest

from fluxqueue.fluxion.server import FluxionServer
from fluxqueue.kube import names
from fluxqueue.sim.apiserver import APIError
from fluxqueue.sim.apiserver import resources as R
from fluxqueue.sim.cluster import ClusterSpec

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

SINGLES = 240
GANGS = 16  # of 4 pods
JOBS = 8  # of parallelism 3


@pytest.fixture
def cluster_spec() -> ClusterSpec:
    # 160 cores for 328 one-core pods: about half of them have to wait for the others to finish.
    return ClusterSpec(nodes=20, cpus=8, memory="64Gi", racks=2, heartbeat_writes_per_s=20)


def _pod(name: str, labels: dict[str, str], runtime: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels, "annotations": {names.SIM_RUNTIME: runtime}},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}
            ],
        },
    }


def _job(name: str, runtime: str) -> dict:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {names.LABEL_DURATION: "60"}},
        "spec": {
            "parallelism": 3,
            "completions": 3,
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": {names.SIM_RUNTIME: runtime}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "c",
                            "image": "busybox",
                            "resources": {"requests": {"cpu": "1", "memory": "1Gi"}},
                        }
                    ],
                },
            },
        },
    }


def workload(rng: random.Random) -> list[tuple[object, dict]]:
    """(resource, object) to create, shuffled: singles, gang members and Jobs interleaved."""
    out: list[tuple[object, dict]] = []
    for i in range(SINGLES):
        out.append((R.PODS, _pod(f"single-{i}", {names.LABEL_DURATION: "60"}, f"{rng.randint(20, 60)}s")))
    for g in range(GANGS):
        labels = {
            names.LABEL_GROUP_NAME: f"gang-{g}",
            names.LABEL_GROUP_SIZE: "4",
            names.LABEL_DURATION: "60",
        }
        for m in range(4):
            out.append((R.PODS, _pod(f"gang-{g}-{m}", labels, "40s")))
    for j in range(JOBS):
        out.append((R.JOBS, _job(f"job-{j}", "40s")))
    rng.shuffle(out)
    return out


async def test_controller_and_fluxion_crashing_during_a_flood_lose_nothing_and_place_nothing_twice(system):
    await system.kill_controller()
    await system.start_controller(identity="controller-0")
    client = system.api.client
    # Admission itself is not what is tested here: with failurePolicy Ignore a pod admitted while no replica
    # answers runs unqueued, by design. So submissions pause while the (only) replica is down, and each crash
    # comes with no admission in flight, but with everything after admission in flight.
    admitting = asyncio.Event()
    admitting.set()
    in_flight = 0

    async def submit(items: list[tuple[object, dict]]) -> None:
        nonlocal in_flight
        for resource, obj in items:
            await admitting.wait()
            in_flight += 1
            try:
                await client.create(resource, obj, namespace="default")
            except APIError as exc:  # never expected: the webhook must not refuse any of these
                raise AssertionError(f"{obj['metadata']['name']}: {exc}") from exc
            finally:
                in_flight -= 1

    items = workload(random.Random(6))
    # Eight submitters at once, as a flood of clients would be.
    submitting = asyncio.gather(*(submit(items[k::8]) for k in range(8)))
    # Crash while units are being queued, placed and bound; the second time Fluxion goes down too (its
    # allocations must come back from the database), the third while pods finish and others wait.
    for round_, pause in enumerate((0.4, 1.0, 2.0)):
        await asyncio.sleep(pause)
        admitting.clear()
        await system.wait_for(lambda: in_flight == 0, 10, "admissions in flight to finish")
        await system.kill_controller()
        if round_ == 1:
            await system.fluxion.stop()
            system.fluxion = FluxionServer(host="127.0.0.1", port=0)
            await system.fluxion.start()
        await system.start_controller(identity="controller-0", fluxion_address=system.fluxion.address)
        admitting.set()
    await submitting

    expected = {f"single-{i}-pod" for i in range(SINGLES)}
    expected |= {f"gang-{g}-group" for g in range(GANGS)}
    expected |= {f"job-{j}-job" for j in range(JOBS)}

    async def not_succeeded() -> dict[str, str | None]:
        """FluxJob -> its phase, for those not Succeeded yet."""
        listing = await client.list(R.FLUXJOBS, namespace="default")
        phases = {fj["metadata"]["name"]: (fj.get("status") or {}).get("phase") for fj in listing["items"]}
        return {name: phases.get(name) for name in sorted(expected) if phases.get(name) != "Succeeded"}

    async def all_succeeded() -> bool:
        return not await not_succeeded()

    try:
        await system.wait_for(all_succeeded, 120, f"all {len(expected)} FluxJobs Succeeded")
    except AssertionError:
        left = list((await not_succeeded()).items())[:10]
        states = [((await system.unit_row(name)) or {}).get("state") for name, _ in left]
        raise AssertionError(
            f"not Succeeded (FluxJob phase, unit state): {dict(zip(left, states, strict=True))}"
        ) from None
    pods = [p for p in await system.pods() if p["metadata"]["name"].startswith(("single-", "gang-", "job-"))]
    assert len(pods) == SINGLES + 4 * GANGS + 3 * JOBS
    assert all(p["spec"].get("schedulerName") == names.SCHEDULER_NAME for p in pods)
    assert all(p["spec"].get("nodeName") for p in pods)
    assert all((p.get("status") or {}).get("phase") == "Succeeded" for p in pods)
