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
from test_scheduling import job, pod

from fluxqueue.fluxion.server import FluxionServer
from fluxqueue.kube import names
from fluxqueue.sim.apiserver import APIError
from fluxqueue.sim.apiserver import resources as R
from fluxqueue.sim.cluster import ClusterSpec

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

SINGLES = 240
GANGS = 16  # of 4 pods of two pod sets: three 1-CPU workers and a 3-CPU launcher, in any order
JOBS = 8  # of parallelism 3


@pytest.fixture
def cluster_spec() -> ClusterSpec:
    # 160 cores for 360 cores of pods: about half of them have to wait for the others to finish.
    return ClusterSpec(nodes=20, cpus=8, memory="64Gi", racks=2, heartbeat_writes_per_s=20)


def _pod(name: str, labels: dict[str, str], runtime: str, cpu: str = "1") -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels, "annotations": {names.SIM_RUNTIME: runtime}},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {"name": "c", "image": "busybox", "resources": {"requests": {"cpu": cpu, "memory": "1Gi"}}}
            ],
        },
    }


def _job(name: str, runtime: str) -> dict:
    """A Job of three one-core pods (its template is a single pod's)."""
    pod = _pod(name, {}, runtime)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {names.LABEL_DURATION: "60"}},
        "spec": {
            "parallelism": 3,
            "completions": 3,
            "backoffLimit": 0,
            "template": {"metadata": {"annotations": pod["metadata"]["annotations"]}, "spec": pod["spec"]},
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
            out.append((R.PODS, _pod(f"gang-{g}-{m}", labels, "40s", cpu="3" if m == 3 else "1")))
    for j in range(JOBS):
        out.append((R.JOBS, _job(f"job-{j}", "40s")))
    rng.shuffle(out)
    return out


class Flood:
    """The workload submitted by eight clients at once, with what a test needs around it."""

    def __init__(self, system, seed: int = 6):
        self.system = system
        self.client = system.api.client
        self.items = workload(random.Random(seed))
        # Admission itself is not what is tested here: with failurePolicy Ignore a pod admitted while no
        # replica answers runs unqueued, by design. So submissions pause while the (only) replica is down:
        # each crash comes with no admission in flight, but with everything after admission in flight.
        self.admitting = asyncio.Event()
        self.admitting.set()
        self.in_flight = 0
        self.created: list[tuple[object, str]] = []
        self.deleted: set[str] = set()
        self.task: asyncio.Future | None = None

    def start(self) -> None:
        self.task = asyncio.gather(*(self._submit(self.items[k::8]) for k in range(8)))

    async def _submit(self, items: list[tuple[object, dict]]) -> None:
        for resource, obj in items:
            await self.admitting.wait()
            self.in_flight += 1
            try:
                await self.client.create(resource, obj, namespace="default")
                self.created.append((resource, obj["metadata"]["name"]))
            except APIError as exc:  # never expected: the webhook must not refuse any of these
                raise AssertionError(f"{obj['metadata']['name']}: {exc}") from exc
            finally:
                self.in_flight -= 1

    async def pause(self) -> None:
        self.admitting.clear()
        await self.system.wait_for(lambda: self.in_flight == 0, 10, "admissions in flight to finish")

    def resume(self) -> None:
        self.admitting.set()

    async def delete_some(self, singles: int, jobs: int) -> None:
        """Delete some of what was created (single pods and Jobs), as users do."""
        for resource, name in list(self.created):
            if name in self.deleted:
                continue
            if resource == R.PODS and name.startswith("single-") and singles:
                singles -= 1
            elif resource == R.JOBS and jobs:
                jobs -= 1
            else:
                continue
            await self.client.delete(resource, name, namespace="default", propagation_policy="Background")
            self.deleted.add(name)

    def expected(self) -> set[str]:
        """FluxJobs that must end Succeeded: everything not deleted."""
        out = {f"single-{i}-pod" for i in range(SINGLES) if f"single-{i}" not in self.deleted}
        out |= {f"gang-{g}-group" for g in range(GANGS)}
        out |= {f"job-{j}-job" for j in range(JOBS) if f"job-{j}" not in self.deleted}
        return out

    async def _groups_seen(self, fluxjobs: list[str]) -> dict[str, dict]:
        """For a failure message: each stuck group's members as the database, the controller and the API
        server see them."""
        out = {}
        conn = await asyncpg.connect(self.system.dsn)
        try:
            for name in fluxjobs:
                if not name.endswith("-group"):
                    continue
                rows = await conn.fetch(
                    "SELECT m.pod, m.pod_uid FROM fluxqueue.group_members m JOIN fluxqueue.units u "
                    "ON u.id = m.unit_id WHERE u.name = $1",
                    name,
                )
                group = name.removesuffix("-group")
                pods = [
                    p
                    for p in await self.system.pods()
                    if (p["metadata"].get("labels") or {}).get(names.LABEL_GROUP_NAME) == group
                ]
                reactor = self.system.controller.reactor if self.system.controller else None
                out[name] = {
                    "joined": sorted(r["pod"] for r in rows),
                    "pods": {
                        p["metadata"]["name"]: (
                            p.get("status", {}).get("phase"),
                            bool(p["spec"].get("schedulingGates")),
                            p["spec"].get("nodeName"),
                            reactor is not None and p["metadata"]["uid"] in reactor.members,
                        )
                        for p in pods
                    },
                }
        finally:
            await conn.close()
        return out

    async def finish(self) -> None:
        """Wait for the submissions, then for every expected FluxJob to be Succeeded, every deleted unit to
        have ended and every allocation to be released (database) and cancelled (Fluxion); then check the
        pods."""
        assert self.task is not None
        await self.task
        expected = self.expected()

        async def not_succeeded() -> dict[str, str | None]:
            listing = await self.client.list(R.FLUXJOBS, namespace="default")
            phases = {f["metadata"]["name"]: (f.get("status") or {}).get("phase") for f in listing["items"]}
            return {name: phases.get(name) for name in sorted(expected) if phases.get(name) != "Succeeded"}

        async def all_succeeded() -> bool:
            return not await not_succeeded()

        try:
            await self.system.wait_for(all_succeeded, 120, f"all {len(expected)} FluxJobs Succeeded")
        except AssertionError:
            left = list((await not_succeeded()).items())[:10]
            states = [((await self.system.unit_row(name)) or {}).get("state") for name, _ in left]
            raise AssertionError(
                f"not Succeeded (FluxJob phase, unit state): {dict(zip(left, states, strict=True))}; "
                f"groups: {await self._groups_seen([name for name, _ in left])}"
            ) from None
        # What was deleted ended (Cancelled, or Succeeded when it had finished first).
        for name in self.deleted:
            unit = f"{name}-job" if name.startswith("job-") else f"{name}-pod"
            await self.system.wait_for(
                lambda unit=unit: _unit_state_in(self.system, unit, ("Cancelled", "Succeeded")),
                20,
                f"{unit} to end",
            )

        async def held() -> tuple[list[int], list[int]]:
            """(units whose allocation the database holds, job ids Fluxion holds)."""
            conn = await asyncpg.connect(self.system.dsn)
            try:
                rows = await conn.fetch("SELECT unit_id FROM fluxqueue.allocations WHERE released_at IS NULL")
            finally:
                await conn.close()
            return [r["unit_id"] for r in rows], sorted(self.system.fluxion.matcher.jobs)

        async def nothing_held() -> bool:
            return await held() == ([], [])

        try:
            await self.system.wait_for(nothing_held, 20, "every allocation released and cancelled in Fluxion")
        except AssertionError:
            units, jobs = await held()
            raise AssertionError(
                f"still held: units {units[:10]} in the database, jobs {jobs[:10]} in Fluxion"
            ) from None
        pods = [
            p
            for p in await self.system.pods()
            if p["metadata"]["name"].startswith(("single-", "gang-", "job-"))
        ]
        pods = [
            p
            for p in pods
            if p["metadata"]["name"] not in self.deleted and not _of_deleted_job(p, self.deleted)
        ]
        deleted_singles = sum(1 for n in self.deleted if n.startswith("single-"))
        deleted_jobs = sum(1 for n in self.deleted if n.startswith("job-"))
        assert len(pods) == (SINGLES - deleted_singles) + 4 * GANGS + 3 * (JOBS - deleted_jobs)
        assert all(p["spec"].get("schedulerName") == names.SCHEDULER_NAME for p in pods)
        assert all(p["spec"].get("nodeName") for p in pods)
        assert all((p.get("status") or {}).get("phase") == "Succeeded" for p in pods)


async def test_controller_and_fluxion_crashing_during_a_flood_lose_nothing_and_place_nothing_twice(system):
    await system.kill_controller()
    await system.start_controller(identity="controller-0")
    flood = Flood(system)
    flood.start()
    # Crash while units are being queued, placed and bound; the second time Fluxion goes down too (its
    # allocations must come back from the database), the third while pods finish and others wait. Users
    # delete some of their work meanwhile, while no controller runs and while one does.
    for round_, pause in enumerate((0.4, 1.0, 2.0)):
        await asyncio.sleep(pause)
        await flood.pause()
        await system.kill_controller()
        if round_ == 0:
            await flood.delete_some(singles=10, jobs=1)
        if round_ == 1:
            await system.fluxion.stop()
            system.fluxion = FluxionServer(host="127.0.0.1", port=0)
            await system.fluxion.start()
        await system.start_controller(identity="controller-0", fluxion_address=system.fluxion.address)
        flood.resume()
        if round_ == 1:
            await flood.delete_some(singles=10, jobs=1)
    assert len(flood.deleted) == 22
    await flood.finish()


async def test_database_connections_lost_during_a_flood_lose_nothing_and_place_nothing_twice(system):
    # PostgreSQL restarts or fails over: every connection of the controller is cut, twice, while the flood
    # is queued, placed and bound. The controller reconnects and converges without a restart of its own.
    flood = Flood(system, seed=7)
    flood.start()
    conn = await asyncpg.connect(system.dsn)
    try:
        for pause in (0.5, 1.0):
            await asyncio.sleep(pause)
            cut = await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            assert cut > 0
    finally:
        await conn.close()
    await flood.finish()


async def _unit_state_in(system, name: str, states: tuple[str, ...]) -> bool:
    row = await system.unit_row(name)
    return row is not None and row["state"] in states


def _of_deleted_job(pod: dict, deleted: set[str]) -> bool:
    return (pod["metadata"].get("labels") or {}).get("job-name") in deleted


async def test_a_group_member_whose_join_failed_is_joined_again_without_waiting_for_a_sweep(system):
    # The database goes away for a moment while a member's event is handled: the handler fails, and the event
    # is handled again after a backoff (the sweep, a safety net, is an hour away here).
    controller = await system.restart_controller(sweep_interval=3600.0)
    store = controller.store
    joins = store.join_group
    failures = []

    async def join_once_failing(*args):
        if not failures:
            failures.append(args[1])
            raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")
        return await joins(*args)

    store.join_group = join_once_failing
    group = {names.LABEL_GROUP_NAME: "retried", names.LABEL_GROUP_SIZE: "2"}
    await system.apply("---".join(pod(f"retried-{i}", labels=group) for i in (0, 1)))
    await system.wait_phase("retried-group", "Succeeded", within=30)
    assert len(failures) == 1
    assert controller.reactor.sweeps == 1  # only the start-up sweep ran


async def test_a_job_whose_submission_failed_is_submitted_again_without_waiting_for_a_sweep(system):
    controller = await system.restart_controller(sweep_interval=3600.0)
    store = controller.store
    submit = store.submit
    failures = []

    async def submit_failing(sub):
        # More failures than the Job has events (created, suspended): only a retry can get past them.
        if len(failures) < 4:
            failures.append(sub.name)
            raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")
        return await submit(sub)

    store.submit = submit_failing
    await system.apply(job("resubmitted", parallelism=2, completions=2, runtime="2s"))
    await system.wait_phase("resubmitted-job", "Succeeded", within=30)
    assert failures == ["resubmitted-job"] * 4
    assert controller.reactor.sweeps == 1  # only the start-up sweep ran
