"""Issue 17: job dependencies (fluxqueue.io/dependency, sbatch --dependency) end to end with the real kubectl.

Cluster (conftest): 4 nodes x 4 cpus x 16Gi; time scale 20 (a 20 s runtime is one wall second).
"""

from __future__ import annotations

import asyncio
import itertools
import os

import asyncpg
import pytest

from fluxqueue.kube import names
from fluxqueue.sim.apiserver import resources as R

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def job(
    name: str,
    *,
    dependency: str | None = None,
    runtime: str = "20s",
    fail: bool = False,
    cpu: str = "1",
    generate: bool = False,
    node: str | None = None,
) -> str:
    notes = {names.SIM_RUNTIME: runtime}
    if fail:
        notes[names.SIM_FAIL] = "true"
    note_lines = "".join(f'        {k}: "{v}"\n' for k, v in notes.items())
    job_notes = f'  annotations:\n    {names.ANNOTATION_DEPENDENCY}: "{dependency}"\n' if dependency else ""
    naming = f"generateName: {name}" if generate else f"name: {name}"
    selector = f'      nodeSelector:\n        kubernetes.io/hostname: "{node}"\n' if node else ""
    return f"""
apiVersion: batch/v1
kind: Job
metadata:
  {naming}
  namespace: default
  labels:
    {names.LABEL_DURATION}: "60"
{job_notes}spec:
  backoffLimit: 0
  template:
    metadata:
      annotations:
{note_lines}    spec:
      restartPolicy: Never
{selector}      containers:
      - name: c
        image: busybox
        resources:
          requests: {{cpu: "{cpu}", memory: 1Gi}}
---
"""


def group_member(name: str, group: str, size: int, runtime: str = "20s") -> str:
    return f"""
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: default
  labels:
    {names.LABEL_GROUP_NAME}: "{group}"
    {names.LABEL_GROUP_SIZE}: "{size}"
  annotations:
    {names.SIM_RUNTIME}: "{runtime}"
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: busybox
    resources:
      requests: {{cpu: "1", memory: 1Gi}}
---
"""


async def times(system, fluxjob: str) -> dict:
    row = await system.unit_row(fluxjob)
    assert row is not None, f"no unit {fluxjob}"
    return row


async def job_suspended(system, name: str) -> bool:
    obj = await system.api.client.get(R.JOBS, name, namespace="default")
    return obj["spec"].get("suspend") is True


async def test_afterok_holds_a_job_until_its_target_succeeds_and_says_so(system):
    await system.apply(job("prep", runtime="40s") + job("train", dependency="afterok:prep"))
    held = await system.wait_phase("train-job", "Held")
    await system.wait_for(
        lambda: _reason_is(system, "train-job", "waiting for default/prep to succeed"), 10, "the held reason"
    )
    assert held["spec"]["dependency"] == "afterok:prep"
    listing = await system.kubectl("get", "fj")
    assert any(line.startswith("train-job") and "Held" in line for line in listing.splitlines()), listing

    async def told() -> bool:
        return "Held" in [e["reason"] for e in await system.events("train-job")]

    await system.wait_for(told, 10, "the Held Event")
    await system.wait_phase("train-job", "Succeeded", within=30)
    prep, train = await times(system, "prep-job"), await times(system, "train-job")
    assert prep["state"] == "Succeeded"
    assert train["scheduled_at"] >= prep["finished_at"]
    assert train["submitted_at"] < train["queued_at"]  # queued once released, its submit time kept


async def _reason_is(system, name: str, reason: str) -> bool:
    fj = await system.fluxjob(name)
    return ((fj or {}).get("status") or {}).get("reason") == reason


async def test_a_target_submitted_after_its_dependent_is_waited_for(system):
    await system.apply(job("report", dependency="afterany:late"))
    await system.wait_phase("report-job", "Held")
    await system.wait_for(
        lambda: _reason_is(system, "report-job", "waiting for default/late (not submitted yet) to end"), 10
    )
    await system.passes(2)
    assert await job_suspended(system, "report")
    await system.apply(job("late", fail=True))
    await system.wait_phase("late-job", "Failed", within=30)
    await system.wait_phase("report-job", "Succeeded", within=30)  # afterany: any outcome


async def test_a_failing_target_dooms_its_afterok_dependent_which_never_runs(system):
    await system.apply(job("step1", fail=True) + job("step2", dependency="afterok:step1"))
    fj = await system.wait_phase("step2-job", "Cancelled", within=30)
    assert fj["status"]["reason"] == "DependencyNeverSatisfied: default/step1 failed (afterok)"
    assert await job_suspended(system, "step2")
    assert not await system.pods(selector="job-name=step2")

    async def told() -> bool:
        # The Event is posted beside the status write: it may land just after the phase is seen.
        events = await system.events("step2-job") + await system.events("step2")
        return "DependencyNeverSatisfied" in [e["reason"] for e in events]

    await system.wait_for(told, 10, "the DependencyNeverSatisfied Event")
    assert (await times(system, "step2-job"))["scheduled_at"] is None


async def test_afternotok_runs_a_retry_step_only_when_the_step_failed(system):
    await system.apply(
        job("flaky", fail=True)
        + job("flaky-retry", dependency="afternotok:flaky")
        + job("solid")
        + job("solid-retry", dependency="afternotok:solid")
    )
    await system.wait_phase("flaky-retry-job", "Succeeded", within=30)
    fj = await system.wait_phase("solid-retry-job", "Cancelled", within=30)
    assert fj["status"]["reason"] == "DependencyNeverSatisfied: default/solid succeeded (afternotok)"


async def test_after_plus_minutes_starts_that_long_after_the_target_started(system):
    # 1 minute of workload time is 3 wall seconds at time scale 20.
    await system.apply(job("server", runtime="200s") + job("client", dependency="after:server+1"))
    await system.wait_phase("client-job", ("Scheduled", "Running"), within=30)
    server, client = await times(system, "server-job"), await times(system, "client-job")
    assert (client["scheduled_at"] - server["scheduled_at"]).total_seconds() >= 3.0
    assert server["state"] == "Running"  # after: started, not ended


async def test_commas_need_every_condition_and_question_marks_any(system):
    await system.apply(
        job("a", runtime="20s")
        + job("b", runtime="120s")
        + job("both", dependency="afterok:a,afterok:b")
        + job("either", dependency="afterok:a?afterok:b")
    )
    await system.wait_phase("either-job", ("Scheduled", "Running"), within=30)
    a, b, either = (
        await times(system, "a-job"),
        await times(system, "b-job"),
        await times(system, "either-job"),
    )
    assert a["state"] == "Succeeded" and either["scheduled_at"] >= a["finished_at"]
    assert b["state"] in ("Scheduled", "Running")
    assert await system.phase("both-job") == "Held"
    await system.wait_phase("both-job", "Succeeded", within=40)
    both, b = await times(system, "both-job"), await times(system, "b-job")
    assert both["scheduled_at"] >= b["finished_at"]


async def test_deleting_the_target_dooms_an_afterok_dependent(system):
    await system.apply(job("input", runtime="600s") + job("consumer", dependency="afterok:input"))
    await system.wait_phase("input-job", "Running", within=30)
    await system.wait_phase("consumer-job", "Held")
    await system.kubectl("delete", "job", "input", "--wait=false")
    fj = await system.wait_phase("consumer-job", "Cancelled", within=30)
    assert fj["status"]["reason"] == "DependencyNeverSatisfied: default/input was cancelled (afterok)"


async def test_a_cycle_is_reported_and_neither_runs(system):
    await system.apply(job("ping", dependency="afterok:pong") + job("pong", dependency="afterany:ping"))
    for name in ("ping-job", "pong-job"):
        fj = await system.wait_phase(name, "Cancelled", within=30)
        assert "dependency cycle" in fj["status"]["reason"]
    assert await job_suspended(system, "ping") and await job_suspended(system, "pong")


async def test_a_malformed_dependency_is_refused_at_admission_naming_the_annotation_and_the_bad_part(system):
    env_out = await _apply_error(system, job("bad", dependency="afterok:a?afterfoo:b"))
    assert "fluxqueue.io/dependency" in env_out
    assert "afterfoo" in env_out
    pod = group_member("bad-pod", "g", 2).replace(
        "  annotations:\n", f'  annotations:\n    {names.ANNOTATION_DEPENDENCY}: "afterok:"\n', 1
    )
    env_out = await _apply_error(system, pod)
    assert "fluxqueue.io/dependency" in env_out and "'afterok:'" in env_out


async def _apply_error(system, manifest: str) -> str:
    """kubectl apply's error output (the API server's refusal, with the webhook's message)."""
    env = dict(os.environ, KUBECONFIG=str(system.kubeconfig), HOME=str(system.tmp))
    proc = await asyncio.create_subprocess_exec(
        str(system.tools.kubectl),
        "apply",
        "-f",
        "-",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await proc.communicate(manifest.encode())
    assert proc.returncode != 0, f"accepted: {out.decode()}"
    return err.decode() + out.decode()


async def test_singleton_runs_one_workload_of_a_name_at_a_time(system):
    for _ in range(3):
        await system.kubectl(
            "create", "-f", "-", stdin=job("nightly-", dependency="singleton", generate=True)
        )
    conn = await asyncpg.connect(system.dsn)
    try:

        async def all_done() -> bool:
            n = await conn.fetchval(
                "SELECT count(*) FROM fluxqueue.units WHERE object_name LIKE 'nightly-%' AND state = 'Succeeded'"
            )
            return n == 3

        await system.wait_for(all_done, 40, "three singletons done")
        rows = await conn.fetch(
            "SELECT scheduled_at, finished_at FROM fluxqueue.units WHERE object_name LIKE 'nightly-%' "
            "ORDER BY scheduled_at"
        )
    finally:
        await conn.close()
    for earlier, later in itertools.pairwise(rows):
        assert later["scheduled_at"] >= earlier["finished_at"], "two singletons of one name ran at once"


async def test_a_job_waits_for_a_pod_group(system):
    await system.apply(
        job("analyse", dependency="afterok:gang")
        + group_member("gang-0", "gang", 2)
        + group_member("gang-1", "gang", 2)
    )
    await system.wait_phase("analyse-job", "Held")
    await system.wait_phase("gang-group", "Succeeded", within=30)
    await system.wait_phase("analyse-job", "Succeeded", within=30)
    gang, analyse = await times(system, "gang-group"), await times(system, "analyse-job")
    assert analyse["scheduled_at"] >= gang["finished_at"]


async def test_a_pod_group_with_a_dependency_is_held_once_complete(system):
    member = group_member("post-0", "post", 2).replace(
        "  annotations:\n", f'  annotations:\n    {names.ANNOTATION_DEPENDENCY}: "afterok:pre"\n', 1
    )
    member2 = member.replace("post-0", "post-1")
    await system.apply(job("pre", runtime="40s") + member + member2)
    await system.wait_phase("post-group", "Held")
    await system.wait_phase("post-group", "Succeeded", within=40)
    pre, post = await times(system, "pre-job"), await times(system, "post-group")
    assert post["scheduled_at"] >= pre["finished_at"]


async def test_held_units_survive_a_controller_restart(system):
    await system.apply(job("long", runtime="100s") + job("after-long", dependency="afterok:long"))
    await system.wait_phase("after-long-job", "Held")
    await system.restart_controller()
    assert await system.phase("after-long-job") == "Held"
    assert (await times(system, "after-long-job"))["state"] == "Held"
    await system.wait_phase("after-long-job", "Succeeded", within=40)
    long_, after = await times(system, "long-job"), await times(system, "after-long-job")
    assert long_["state"] == "Succeeded" and after["scheduled_at"] >= long_["finished_at"]


async def test_fluxqueue_queue_and_psql_show_what_held_units_wait_for(system):
    await system.apply(job("first", runtime="200s") + job("second", dependency="afterok:first"))
    await system.wait_phase("second-job", "Held")
    conn = await asyncpg.connect(system.dsn)
    try:
        waits = await conn.fetch("SELECT * FROM fluxqueue.waits WHERE waiting = 'second-job'")
        held = await conn.fetch("SELECT * FROM fluxqueue.held")
    finally:
        await conn.close()
    assert [(w["condition"], w["target"], w["target_fluxjob"]) for w in waits] == [
        ("afterok", "first", "first-job")
    ]
    assert [h["name"] for h in held] == ["second-job"]


async def test_deleting_a_held_job_cancels_it_and_releases_its_dependents(system):
    await system.apply(
        job("base", runtime="600s")
        + job("middle", dependency="afterok:base")
        + job("top", dependency="afterany:middle")
    )
    await system.wait_phase("top-job", "Held")
    await system.wait_phase("middle-job", "Held")
    await system.kubectl("delete", "job", "middle", "--wait=false")
    await system.wait_for(
        lambda: _state_is(system, "middle-job", "Cancelled"), 20, "the held Job's unit cancelled"
    )
    await system.wait_phase("top-job", ("Scheduled", "Running", "Succeeded"), within=30)  # afterany: it ended


async def _state_is(system, name: str, state: str) -> bool:
    row = await system.unit_row(name)
    return row is not None and row["state"] == state


async def test_a_pod_group_member_naming_another_dependency_is_told_so(system):
    def annotated(name: str, value: str) -> str:
        return group_member(name, "mixed", 2).replace(
            "  annotations:\n", f'  annotations:\n    {names.ANNOTATION_DEPENDENCY}: "{value}"\n', 1
        )

    await system.apply(job("pre2", runtime="20s") + annotated("mixed-0", "afterok:pre2"))
    await system.wait_phase("mixed-group", "Waiting")
    await system.apply(annotated("mixed-1", "afterany:other"))

    async def warned() -> bool:
        return any(
            e["reason"] == "InvalidSettings" and "disagree on fluxqueue.io/dependency" in e["message"]
            for e in await system.events("mixed-1")
        )

    await system.wait_for(warned, 20, "the disagreeing member warned")
    await system.wait_phase("mixed-group", "Succeeded", within=30)  # the group's (first member's) dependency


async def test_a_jobset_waits_for_a_job(system):
    from test_podsets import jobset

    manifest = jobset("trainset", "1", 2, "1", runtime="20s").replace(
        "  labels:\n", f'  annotations:\n    {names.ANNOTATION_DEPENDENCY}: "afterok:data"\n  labels:\n', 1
    )
    await system.apply(job("data", runtime="40s") + manifest)
    held = await system.wait_phase("trainset-jobset", "Held")
    assert held["spec"]["dependency"] == "afterok:data"
    await system.wait_phase("trainset-jobset", "Succeeded", within=40)
    data, trainset = await times(system, "data-job"), await times(system, "trainset-jobset")
    assert trainset["scheduled_at"] >= data["finished_at"]


async def test_a_pod_group_whose_dependency_can_never_hold_ends_and_its_pods_are_deleted(system):
    def annotated(name: str) -> str:
        return group_member(name, "doomed", 2).replace(
            "  annotations:\n", f'  annotations:\n    {names.ANNOTATION_DEPENDENCY}: "afterok:broken"\n', 1
        )

    await system.apply(job("broken", fail=True) + annotated("doomed-0") + annotated("doomed-1"))
    fj = await system.wait_phase("doomed-group", "Cancelled", within=30)
    assert fj["status"]["reason"] == "DependencyNeverSatisfied: default/broken failed (afterok)"

    async def pods_gone() -> bool:
        return not await system.pods(selector=f"{names.LABEL_GROUP_NAME}=doomed")

    await system.wait_for(pods_gone, 20, "the doomed group's pods deleted")
    # After a restart no new group is made of them, and nothing of it ran.
    await system.restart_controller()
    await system.passes(2)
    conn = await asyncpg.connect(system.dsn)
    try:
        rows = await conn.fetch("SELECT state, scheduled_at FROM fluxqueue.units WHERE group_name = 'doomed'")
    finally:
        await conn.close()
    assert [(r["state"], r["scheduled_at"]) for r in rows] == [("Cancelled", None)]
