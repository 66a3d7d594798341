"""Issue 16, preemption of workloads that can be suspended, end to end with the real kubectl: a borrower's Jobs
(a JobSet, an MPIJob) evicted for a queue that reclaims its quota are suspended again, their pods deleted by
their own controller without counting as failures, requeued with their original submit time, and all of them
finish later; a controller killed between the suspend and the requeue converges.

Cluster (conftest): 4 nodes x 4 cpus x 16Gi; time scale 20 (a 200 s runtime is ten wall seconds).
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from test_podsets import jobset
from test_queues import job, namespace, queue

from fluxqueue.kube import names
from fluxqueue.sim.apiserver import resources as R
from fluxqueue.sim.controllers.thirdparty_crds import JOBSETS, MPIJOBS

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]


def fluxjob_phases(system, fluxjob: str, ns: str) -> list[str]:
    """The FluxJob's phases as they came, repeats folded."""
    out: list[str] = []
    for v in system.history.of(fluxjob, ns):
        phase = (v.get("status") or {}).get("phase")
        if phase and (not out or out[-1] != phase):
            out.append(phase)
    return out


async def running(system, fluxjob: str, ns: str) -> None:
    await system.wait_for(lambda: "Running" in fluxjob_phases(system, fluxjob, ns), 30, f"{fluxjob} running")


def in_order(seen: list[str], wanted: list[str]) -> bool:
    """Whether ``wanted`` occurs in ``seen`` in that order (other phases may come between)."""
    it = iter(seen)
    return all(any(s == w for s in it) for w in wanted)


async def rows(system, sql: str, *args) -> list[dict]:
    conn = await asyncpg.connect(system.dsn)
    try:
        return [dict(r) for r in await conn.fetch(sql, *args)]
    finally:
        await conn.close()


async def job_status(system, name: str, ns: str) -> dict:
    return (await system.api.client.get(R.JOBS, name, namespace=ns)).get("status") or {}


async def condition_true(system, key, name: str, ns: str, type_: str) -> bool:
    obj = await system.api.client.get(key, name, namespace=ns)
    return any(
        c.get("type") == type_ and c.get("status") == "True"
        for c in (obj.get("status") or {}).get("conditions") or []
    )


async def two_teams(system, borrower_quota: int = 8) -> None:
    await system.apply(namespace("team-a") + namespace("team-b"))
    await system.apply(
        queue("team-a", ["team-a"], {"cpu": 8}) + queue("team-b", ["team-b"], {"cpu": borrower_quota})
    )


async def holding_units(system, ns: str) -> int:
    found = await rows(
        system,
        "SELECT u.id FROM fluxqueue.units u JOIN fluxqueue.allocations a ON a.unit_id = u.id "
        "WHERE a.released_at IS NULL AND u.namespace = $1",
        ns,
    )
    return len(found)


async def test_reclaim_requeues_the_borrowers_jobs_and_they_all_finish_later(system):
    await two_teams(system)
    # team-b borrows the idle half of the cluster: four 4-CPU Jobs, 16 CPUs on a quota of 8
    for i in range(4):
        await system.apply(job(f"b{i}", "team-b", cpu="4", runtime="200s"))
        await running(system, f"b{i}-job", "team-b")
    submitted = {
        r["name"]: r["submitted_at"]
        for r in await rows(system, "SELECT name, submitted_at FROM fluxqueue.units")
    }
    await system.apply(
        job("a0", "team-a", cpu="4", runtime="40s") + job("a1", "team-a", cpu="4", runtime="40s")
    )

    async def all_succeeded() -> bool:
        for name, ns in [("a0", "team-a"), ("a1", "team-a")] + [(f"b{i}", "team-b") for i in range(4)]:
            if not await condition_true(system, R.JOBS, name, ns, "Complete"):
                return False
        return True

    await system.wait_for(all_succeeded, 90, "every Job of both teams to complete")
    history = await rows(system, "SELECT * FROM fluxqueue.preemption_history ORDER BY id")
    # The two most recently started of team-b's Jobs, one for each of team-a's (within its quota of 8)
    assert sorted((h["victim"], h["cause"]) for h in history) == [
        ("team-b/b2-job", "reclaim"),
        ("team-b/b3-job", "reclaim"),
    ], history
    assert all(h["evicted_at"] is not None for h in history)
    for victim in ("b2", "b3"):
        # Preempted (suspended, its pods stopping), then queued again, then run to the end
        phases = fluxjob_phases(system, f"{victim}-job", "team-b")
        assert in_order(phases, ["Running", "Preempted", "Queued", "Succeeded"]), phases
        assert phases[-1] == "Succeeded", phases
        row = await system.unit_row(f"{victim}-job", "team-b")
        assert row["state"] == "Succeeded" and row["requeues"] == 1, row
        assert row["submitted_at"] == submitted[f"{victim}-job"]  # its place in the queue kept
        # The pods the suspension deleted are not failures: the Job (backoffLimit 0) completed
        status = await job_status(system, victim, "team-b")
        assert not status.get("failed"), status
        events = {e["reason"]: e["message"] for e in await system.events(victim, "team-b")}
        assert "preempted to make room for team-a/a" in events.get("Preempted", ""), events
        told = {e["reason"] for e in await system.events(f"{victim}-job", "team-b")}
        assert {"Preempted", "Requeued"} <= told, told
        fj = await system.fluxjob(f"{victim}-job", "team-b")
        assert fj["status"]["requeues"] == 1, fj["status"]
        runs = await rows(
            system, "SELECT * FROM fluxqueue.runs WHERE namespace = 'team-b' AND name = $1", f"{victim}-job"
        )
        assert [r["run"] for r in runs] == [1, 2] and runs[0]["reason"].startswith(
            "requeued after it was preempted"
        )
    # The borrower's requeued Jobs started again only once team-a's were done (they could not borrow then)
    ends = {
        r["name"]: r["finished_at"]
        for r in await rows(system, "SELECT name, finished_at FROM fluxqueue.units")
    }
    for victim in ("b2", "b3"):
        assert ends[f"{victim}-job"] > max(ends["a0-job"], ends["a1-job"])
    # Nobody else was evicted
    for i in (0, 1):
        assert (await system.unit_row(f"b{i}-job", "team-b"))["requeues"] == 0


def mpijob(name: str, ns: str, workers: int, runtime: str) -> str:
    def replicas(role: str, n: int) -> str:
        return f"""
    {role}:
      replicas: {n}
      template:
        metadata:
          annotations:
            {names.SIM_RUNTIME}: "{runtime}"
        spec:
          containers:
          - name: {role.lower()}
            image: mpi
            resources:
              requests: {{cpu: "4", memory: 1Gi}}"""

    return f"""
apiVersion: kubeflow.org/v2beta1
kind: MPIJob
metadata:
  name: {name}
  namespace: {ns}
  labels:
    {names.LABEL_DURATION}: "600"
spec:
  slotsPerWorker: 1
  runPolicy:
    cleanPodPolicy: Running
    backoffLimit: 0
  mpiReplicaSpecs:{replicas("Launcher", 1)}{replicas("Worker", workers)}
---
"""


@pytest.mark.parametrize(
    ("kind", "manifest", "key", "done"),
    [
        # No failurePolicy: the first failed child Job fails the JobSet (a suspension must not count as one)
        (
            "jobset",
            jobset("train", "4", 2, "4", "200s", namespace="team-b", duration=600),
            JOBSETS,
            "Completed",
        ),
        ("mpijob", mpijob("train", "team-b", 2, "200s"), MPIJOBS, "Succeeded"),
    ],
    ids=["jobset", "mpijob"],
)
async def test_a_preempted_jobset_or_mpijob_is_suspended_whole_and_requeued(
    system, kind, manifest, key, done
):
    """A 12-CPU workload of team-b (three 4-CPU pods) started last is the one victim (as few as evicting the
    older 4-CPU Job, and it lost the least work); all of its pods go, it waits while team-a runs, then it runs
    again to completion."""
    await two_teams(system)
    await system.apply(job("b0", "team-b", cpu="4", runtime="200s"))
    await running(system, "b0-job", "team-b")
    await system.apply(manifest)
    await running(system, f"train-{kind}", "team-b")
    await system.apply(job("a0", "team-a", cpu="4", runtime="40s"))
    await system.wait_for(
        lambda: condition_true(system, R.JOBS, "a0", "team-a", "Complete"), 60, "a0 to complete"
    )
    history = await rows(system, "SELECT * FROM fluxqueue.preemption_history")
    assert [h["victim"] for h in history] == [f"team-b/train-{kind}"], history
    await system.wait_for(
        lambda: condition_true(system, key, "train", "team-b", done), 90, f"the {kind} to finish {done}"
    )
    assert not await condition_true(system, key, "train", "team-b", "Failed")
    await system.wait_for(
        lambda: fluxjob_phases(system, f"train-{kind}", "team-b")[-1] == "Succeeded", 20, "its FluxJob to end"
    )
    phases = fluxjob_phases(system, f"train-{kind}", "team-b")
    assert in_order(phases, ["Running", "Preempted", "Queued", "Succeeded"]) and phases[-1] == "Succeeded", (
        phases
    )
    row = await system.unit_row(f"train-{kind}", "team-b")
    assert row["requeues"] == 1
    past = await rows(system, "SELECT bindings FROM fluxqueue.past_allocations WHERE unit_id = $1", row["id"])
    assert len(past) == 1
    assert (await system.unit_row("b0-job", "team-b"))["requeues"] == 0


async def test_a_controller_killed_between_suspend_and_requeue_converges(system):
    """Preempted in the database and suspended, then the controller dies before the victim's pods are gone:
    the next leader requeues it once they are (allocation archived once, Fluxion never holding both runs),
    and everything finishes."""
    await two_teams(system)
    for i in range(4):
        await system.apply(job(f"b{i}", "team-b", cpu="4", runtime="200s"))
        await running(system, f"b{i}-job", "team-b")
    ender = system.controller.scheduler.end
    stop_here = asyncio.Event()

    async def crash_before_requeue(unit):
        stop_here.set()
        await asyncio.Event().wait()  # never returns: the controller is killed here

    ender.requeue = crash_before_requeue
    await system.apply(job("a0", "team-a", cpu="4", runtime="40s"))
    await system.wait_for(stop_here.is_set, 40, "the victim's pods to be gone (requeue reached)")
    victim = await system.unit_row("b3-job", "team-b")
    assert victim["state"] == "Preempted"
    await system.kill_controller()
    await system.start_controller()

    async def finished() -> bool:
        names_ = [("a0", "team-a")] + [(f"b{i}", "team-b") for i in range(4)]
        return all([await condition_true(system, R.JOBS, n, ns, "Complete") for n, ns in names_])

    await system.wait_for(finished, 90, "every Job to complete")
    row = await system.unit_row("b3-job", "team-b")
    assert row["requeues"] == 1 and row["state"] == "Succeeded"
    assert (
        len(await rows(system, "SELECT 1 FROM fluxqueue.past_allocations WHERE unit_id = $1", row["id"])) == 1
    )


async def test_database_connections_cut_while_jobs_are_preempted_and_requeued_converge(system):
    """Every connection of the controller cut again and again while team-a reclaims from team-b (decisions,
    suspends, requeues under way): nothing lost, nothing run twice at once, each eviction carried out once, and
    every Job completes."""
    await two_teams(system)
    for i in range(4):
        await system.apply(job(f"b{i}", "team-b", cpu="4", runtime="200s"))
        await running(system, f"b{i}-job", "team-b")
    await system.apply(
        job("a0", "team-a", cpu="4", runtime="40s") + job("a1", "team-a", cpu="4", runtime="40s")
    )
    conn = await asyncpg.connect(system.dsn)
    try:
        for _ in range(8):
            await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            await system.passes(1, within=30)  # the controller reconnected and finished a pass
    finally:
        await conn.close()

    async def finished() -> bool:
        names_ = [("a0", "team-a"), ("a1", "team-a")] + [(f"b{i}", "team-b") for i in range(4)]
        return all([await condition_true(system, R.JOBS, n, ns, "Complete") for n, ns in names_])

    await system.wait_for(finished, 120, "every Job to complete")
    history = await rows(system, "SELECT victim, evicted_at FROM fluxqueue.preemption_history")
    assert history and all(h["evicted_at"] is not None for h in history), history
    requeued = await rows(system, "SELECT name, requeues FROM fluxqueue.units WHERE requeues > 0")
    assert sum(r["requeues"] for r in requeued) == len(history), (requeued, history)
    for i in range(4):
        assert not (await job_status(system, f"b{i}", "team-b")).get("failed")
