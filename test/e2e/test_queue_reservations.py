"""Issue 16: a queue's backfill reservation never keeps another queue below its guarantee.

A borrower's big unit that cannot start gets a reservation (EASY backfill), and units that would delay it
wait. A unit of another queue within its quota is not one of those: the pass looks at units within their
quota before borrowers (fluxqueue.queues.admission), so it is matched before the borrower's reservation is
made, in every pass, and starts on the free nodes even though it delays that reservation.

Cluster (conftest): 4 nodes x 4 cpus x 16Gi; time scale 20.
"""

from __future__ import annotations

import pytest
from test_queues import job, namespace, queue

from fluxqueue.kube import names
from fluxqueue.sim.apiserver import resources as R

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]


def long_job(name: str, ns: str, cpu: str, runtime: str, duration: int, parallelism: int = 1) -> str:
    manifest = job(name, ns, cpu=cpu, runtime=runtime).replace(
        f'{names.LABEL_DURATION}: "60"', f'{names.LABEL_DURATION}: "{duration}"'
    )
    return manifest.replace(
        "parallelism: 1\n  completions: 1", f"parallelism: {parallelism}\n  completions: {parallelism}"
    )


def phases(system, fluxjob: str, ns: str) -> list[str]:
    return [(v.get("status") or {}).get("phase") for v in system.history.of(fluxjob, ns)]


async def complete(system, name: str, ns: str) -> bool:
    obj = await system.api.client.get(R.JOBS, name, namespace=ns)
    return any(c.get("type") == "Complete" for c in (obj.get("status") or {}).get("conditions") or [])


async def test_a_borrowers_reservation_does_not_hold_back_another_queues_guaranteed_work(system):
    await system.apply(namespace("team-a") + namespace("team-b"))
    await system.apply(queue("team-a", ["team-a"], {"cpu": 8}) + queue("team-b", ["team-b"], {"cpu": 8}))
    # team-a holds 9 CPUs (1 borrowed) on three nodes for 200 s (3 of each node's 4), then asks two 3-CPU
    # pods more: its queue lets it borrow them (7 CPUs are free), but only the fourth node has room for one
    # now, so Fluxion gives it a reservation for when team-a's Jobs end.
    for i in range(3):
        await system.apply(long_job(f"a{i}", "team-a", "3", "200s", 200))
        await system.wait_for(lambda i=i: "Running" in phases(system, f"a{i}-job", "team-a"), 30, f"a{i}")
    await system.apply(long_job("big", "team-a", "3", "40s", 60, parallelism=2))
    await system.wait_for(lambda: "Reserved" in phases(system, "big-job", "team-a"), 30, "big to be reserved")
    # team-b, idle until now, asks 4 CPUs for longer than the reservation leaves (declared 600 s): plain
    # backfill would hold it back (it takes the fourth node past the reservation); within team-b's quota, it
    # starts there now.
    await system.apply(long_job("b0", "team-b", "4", "100s", 600))
    await system.wait_for(lambda: "Running" in phases(system, "b0-job", "team-b"), 30, "b0 to start")
    assert "Running" not in phases(system, "big-job", "team-a")
    # And the borrower's big Job still runs once the cluster is free for it.
    await system.wait_for(lambda: complete(system, "big", "team-a"), 100, "big to complete")
    assert await complete(system, "b0", "team-b")
