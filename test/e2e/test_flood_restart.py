"""Crashes during a flood: the controller and Fluxion die while hundreds of units are being queued, placed,
bound and reported (the batched submissions, placements and bindings, the deferred status writes and the
Events held for FluxJobs not created yet all in flight), and the system still converges: every unit ends
once, every pod is bound once, no node is ever over-committed, no gang is bound in part (the invariants the
``system`` fixture checks after the test).
"""

from __future__ import annotations

import asyncio
import random

import asyncpg
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
    created: list[tuple[object, str]] = []

    async def submit(items: list[tuple[object, dict]]) -> None:
        nonlocal in_flight
        for resource, obj in items:
            await admitting.wait()
            in_flight += 1
            try:
                await client.create(resource, obj, namespace="default")
                created.append((resource, obj["metadata"]["name"]))
            except APIError as exc:  # never expected: the webhook must not refuse any of these
                raise AssertionError(f"{obj['metadata']['name']}: {exc}") from exc
            finally:
                in_flight -= 1

    items = workload(random.Random(6))
    # Eight submitters at once, as a flood of clients would be.
    submitting = asyncio.gather(*(submit(items[k::8]) for k in range(8)))
    # Crash while units are being queued, placed and bound; the second time Fluxion goes down too (its
    # allocations must come back from the database), the third while pods finish and others wait.
    # Users delete some of their work meanwhile, while no controller runs and while one does.
    deleted: set[str] = set()

    async def delete_some(singles: int, jobs: int) -> None:
        for resource, name in list(created):
            if name in deleted or (not singles and not jobs):
                continue
            if resource == R.PODS and name.startswith("single-") and singles:
                singles -= 1
            elif resource == R.JOBS and jobs:
                jobs -= 1
            else:
                continue
            await client.delete(resource, name, namespace="default", propagation_policy="Background")
            deleted.add(name)

    for round_, pause in enumerate((0.4, 1.0, 2.0)):
        await asyncio.sleep(pause)
        admitting.clear()
        await system.wait_for(lambda: in_flight == 0, 10, "admissions in flight to finish")
        await system.kill_controller()
        if round_ == 0:
            await delete_some(singles=10, jobs=1)
        if round_ == 1:
            await system.fluxion.stop()
            system.fluxion = FluxionServer(host="127.0.0.1", port=0)
            await system.fluxion.start()
        await system.start_controller(identity="controller-0", fluxion_address=system.fluxion.address)
        admitting.set()
        if round_ == 1:
            await delete_some(singles=10, jobs=1)
    await submitting

    expected = {f"single-{i}-pod" for i in range(SINGLES) if f"single-{i}" not in deleted}
    expected |= {f"gang-{g}-group" for g in range(GANGS)}
    expected |= {f"job-{j}-job" for j in range(JOBS) if f"job-{j}" not in deleted}
    assert len(deleted) == 22

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
    # What was deleted ended (Cancelled, or Succeeded when it had finished first), and nothing is held any more:
    # every allocation is released in the database and cancelled in Fluxion.
    for name in deleted:
        unit = f"{name}-job" if name.startswith("job-") else f"{name}-pod"
        try:
            await system.wait_for(
                lambda unit=unit: _unit_state_in(system, unit, ("Cancelled", "Succeeded")),
                20,
                f"{unit} to end",
            )
        except AssertionError:
            row = await system.unit_row(unit)
            try:
                pod = await client.get(R.PODS, name, namespace="default")
            except APIError as exc:
                pod = str(exc)
            raise AssertionError(f"{unit}: {dict(row) if row else None} pod={pod}") from None

    async def nothing_held() -> bool:
        conn = await asyncpg.connect(system.dsn)
        try:
            held = await conn.fetchval("SELECT count(*) FROM fluxqueue.allocations WHERE released_at IS NULL")
        finally:
            await conn.close()
        return held == 0 and not system.fluxion.matcher.jobs

    await system.wait_for(nothing_held, 20, "every allocation released and cancelled in Fluxion")
    pods = [p for p in await system.pods() if p["metadata"]["name"].startswith(("single-", "gang-", "job-"))]
    pods = [p for p in pods if p["metadata"]["name"] not in deleted and not _of_deleted_job(p, deleted)]
    assert len(pods) == (SINGLES - 20) + 4 * GANGS + 3 * (JOBS - 2)
    assert all(p["spec"].get("schedulerName") == names.SCHEDULER_NAME for p in pods)
    assert all(p["spec"].get("nodeName") for p in pods)
    assert all((p.get("status") or {}).get("phase") == "Succeeded" for p in pods)


async def _unit_state_in(system, name: str, states: tuple[str, ...]) -> bool:
    row = await system.unit_row(name)
    return row is not None and row["state"] in states


def _of_deleted_job(pod: dict, deleted: set[str]) -> bool:
    return (pod["metadata"].get("labels") or {}).get("job-name") in deleted
