"""Units of several pod sets, end to end with the real kubectl: mixed-size pod groups, JobSets, MPIJobs,
Kueue-labelled groups, and what happens when a member of a placed unit dies."""

from __future__ import annotations

import asyncpg
import pytest

from fluxqueue.kube import names
from fluxqueue.sim.cluster import ClusterSpec

pytestmark = pytest.mark.e2e


@pytest.fixture
def cluster_spec() -> ClusterSpec:
    return ClusterSpec(nodes=4, cpus=8, memory="32Gi", racks=1, heartbeat_writes_per_s=20)


def member(name: str, cpu: str, labels: dict, annotations: dict | None = None, runtime: str = "40s") -> str:
    label_lines = "".join(f'    {k}: "{v}"\n' for k, v in labels.items())
    notes = {names.SIM_RUNTIME: runtime, **(annotations or {})}
    note_lines = "".join(f'    {k}: "{v}"\n' for k, v in notes.items())
    return f"""
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: default
  labels:
{label_lines}  annotations:
{note_lines}spec:
  restartPolicy: Never
  containers:
  - name: work
    image: busybox
    resources:
      requests:
        cpu: "{cpu}"
        memory: 1Gi
---
"""


def jobset(
    name: str,
    leader_cpu: str,
    workers: int,
    worker_cpu: str,
    runtime: str = "40s",
    namespace: str = "default",
    duration: int = 120,
) -> str:
    def rjob(rname: str, parallelism: int, cpu: str) -> str:
        return f"""
  - name: {rname}
    replicas: 1
    template:
      spec:
        parallelism: {parallelism}
        completions: {parallelism}
        backoffLimit: 0
        template:
          metadata:
            annotations:
              {names.SIM_RUNTIME}: "{runtime}"
          spec:
            restartPolicy: Never
            containers:
            - name: c
              image: busybox
              resources:
                requests: {{cpu: "{cpu}", memory: 1Gi}}"""

    return f"""
apiVersion: jobset.x-k8s.io/v1alpha2
kind: JobSet
metadata:
  name: {name}
  namespace: {namespace}
  labels:
    {names.LABEL_DURATION}: "{duration}"
spec:
  replicatedJobs:{rjob("leader", 1, leader_cpu)}{rjob("workers", workers, worker_cpu)}
---
"""


MPIJOB = f"""
apiVersion: kubeflow.org/v2beta1
kind: MPIJob
metadata:
  name: pi
  namespace: default
  labels:
    {names.LABEL_DURATION}: "120"
spec:
  slotsPerWorker: 1
  runPolicy:
    cleanPodPolicy: Running
  mpiReplicaSpecs:
    Launcher:
      replicas: 1
      template:
        metadata:
          annotations:
            {names.SIM_RUNTIME}: "30s"
        spec:
          containers:
          - name: launcher
            image: mpi
            resources:
              requests: {{cpu: "1", memory: 1Gi}}
    Worker:
      replicas: 3
      template:
        metadata:
          annotations:
            {names.SIM_RUNTIME}: "120s"
        spec:
          containers:
          - name: worker
            image: mpi
            resources:
              requests: {{cpu: "6", memory: 1Gi}}
"""


def requests_fit(pods: list[dict], nodes: list[dict]) -> list[str]:
    """Nodes whose bound pods ask more CPU than they have (the per-pod check, besides the invariants)."""
    alloc = {n["metadata"]["name"]: int(n["status"]["allocatable"]["cpu"]) * 1000 for n in nodes}
    used: dict[str, int] = {}
    for p in pods:
        node = p["spec"].get("nodeName")
        if node and p["status"].get("phase") not in ("Succeeded", "Failed"):
            cpu = p["spec"]["containers"][0]["resources"]["requests"]["cpu"]
            used[node] = used.get(node, 0) + int(float(cpu) * 1000)
    return [n for n, u in used.items() if u > alloc[n]]


async def test_a_mixed_size_pod_group_whose_small_members_arrive_first_lands_each_pod_where_it_fits(system):
    group = {names.LABEL_GROUP_NAME: "mpi", names.LABEL_GROUP_SIZE: "3"}
    await system.apply(member("mpi-worker-0", "1", group) + member("mpi-worker-1", "1", group))
    await system.wait_phase("mpi-group", "Waiting")
    await system.apply(member("mpi-launcher", "8", group))
    fj = await system.wait_phase("mpi-group", ("Scheduled", "Running"))
    assert "mpi-launcher 1 x 8 CPU, 1Gi" in fj["status"]["podSets"]
    assert "mpi-worker 2 x 1 CPU, 1Gi" in fj["status"]["podSets"]

    async def all_bound():
        pods = await system.pods(selector="fluxqueue.io/group-name=mpi")
        return len(pods) == 3 and all(p["spec"].get("nodeName") for p in pods)

    await system.wait_for(all_bound, 20, "all three members bound")
    pods = await system.pods(selector="fluxqueue.io/group-name=mpi")
    launcher = next(p for p in pods if p["metadata"]["name"] == "mpi-launcher")
    workers = [p for p in pods if p["metadata"]["name"] != "mpi-launcher"]
    # The launcher takes a node whole; the workers are elsewhere.
    assert all(w["spec"]["nodeName"] != launcher["spec"]["nodeName"] for w in workers)
    assert requests_fit(pods, (await system.api.client.list(("", "v1", "nodes")))["items"]) == []
    out = await system.kubectl("get", "fluxjobs", "mpi-group")
    assert "mpi-launcher 1 x 8 CPU" in out or "mpi-worker 2 x 1 CPU" in out
    await system.wait_phase("mpi-group", "Succeeded", within=30)


async def test_a_kueue_labelled_group_waits_for_its_second_member(system):
    kueue = {"kueue.x-k8s.io/pod-group-name": "kq"}
    count = {"kueue.x-k8s.io/pod-group-total-count": "2"}
    await system.apply(member("kq-0", "2", kueue, count))
    await system.wait_phase("kq-group", "Waiting")
    await system.passes(2)
    assert not [
        p for p in await system.pods(selector="kueue.x-k8s.io/pod-group-name=kq") if p["spec"].get("nodeName")
    ]
    await system.apply(member("kq-1", "2", kueue, count))
    await system.wait_phase("kq-group", "Succeeded", within=30)


async def test_a_jobset_with_a_big_leader_and_small_workers_is_one_unit_and_completes(system):
    # One slot shape per jobspec (flux-sched's traverser): the four 1-CPU workers share one 8-core slot.
    await system.apply(jobset("train", "8", 4, "1"))
    fj = await system.wait_phase("train-jobset", ("Scheduled", "Running"))
    assert fj["status"]["podSets"] == "leader 1 x 8 CPU, 1Gi, workers 4 x 1 CPU, 1Gi"
    assert await system.fluxjob("train-leader-0-job") is None  # child Jobs are not units of their own

    async def all_bound():
        pods = await system.pods(selector="jobset.sigs.k8s.io/jobset-name=train")
        return len(pods) == 5 and all(p["spec"].get("nodeName") for p in pods)

    await system.wait_for(all_bound, 20, "the JobSet's five pods bound")
    pods = await system.pods(selector="jobset.sigs.k8s.io/jobset-name=train")
    assert requests_fit(pods, (await system.api.client.list(("", "v1", "nodes")))["items"]) == []
    await system.wait_phase("train-jobset", "Succeeded", within=40)
    row = await system.unit_row("train-jobset")
    assert row["kind"] == "JobSet"


async def test_an_mpijob_places_launcher_and_workers_as_one_unit(system):
    await system.apply(MPIJOB)
    fj = await system.wait_phase("pi-mpijob", ("Scheduled", "Running"))
    assert fj["status"]["podSets"] == "launcher 1 x 1 CPU, 1Gi, worker 3 x 6 CPU, 1Gi"

    async def all_bound():
        pods = await system.pods(selector="training.kubeflow.org/job-name=pi")
        live = [p for p in pods if p["status"].get("phase") not in ("Succeeded", "Failed")]
        return len(pods) >= 4 and all(p["spec"].get("nodeName") for p in pods) and len(live) >= 3

    await system.wait_for(all_bound, 20, "launcher and workers bound")
    workers = [
        p
        for p in await system.pods(selector="training.kubeflow.org/job-role=worker")
        if p["spec"].get("nodeName")
    ]
    assert len({w["spec"]["nodeName"] for w in workers}) == 3  # 6 CPUs each: one worker per 8-CPU node
    await system.wait_phase("pi-mpijob", "Succeeded", within=40)


async def test_a_jobset_needing_the_whole_cluster_waits_unbound_while_a_gang_runs_then_runs_whole(system):
    group = {names.LABEL_GROUP_NAME: "busy", names.LABEL_GROUP_SIZE: "2"}
    await system.apply(
        member("busy-0", "2", group, runtime="60s") + member("busy-1", "2", group, runtime="60s")
    )
    await system.wait_phase("busy-group", ("Scheduled", "Running"))
    await system.apply(jobset("whole", "8", 3, "8"))
    await system.wait_phase("whole-jobset", ("Queued", "Reserved"))
    await system.passes(2)
    assert not [
        p
        for p in await system.pods(selector="jobset.sigs.k8s.io/jobset-name=whole")
        if p["spec"].get("nodeName")
    ]
    assert await system.phase("busy-group") in ("Scheduled", "Running")
    await system.wait_phase("busy-group", "Succeeded", within=30)
    await system.wait_phase("whole-jobset", ("Scheduled", "Running", "Succeeded"), within=20)

    async def whole_bound():
        pods = await system.pods(selector="jobset.sigs.k8s.io/jobset-name=whole")
        return len(pods) == 4 and all(p["spec"].get("nodeName") for p in pods)

    await system.wait_for(whole_bound, 20, "all four JobSet pods bound")
    await system.wait_phase("whole-jobset", "Succeeded", within=40)


async def test_a_pod_group_whose_member_fails_ends_failed_and_frees_its_allocation(system):
    group = {names.LABEL_GROUP_NAME: "frail", names.LABEL_GROUP_SIZE: "2"}
    await system.apply(
        member("frail-0", "1", group, runtime="120s")
        + member("frail-1", "1", group, {names.SIM_FAIL: "true"}, runtime="2s")
    )
    fj = await system.wait_phase("frail-group", "Failed", within=30)
    assert "frail-1 failed" in fj["status"]["reason"]

    async def released():
        conn = await asyncpg.connect(system.dsn)
        try:
            held = await conn.fetchval(
                "SELECT count(*) FROM fluxqueue.allocations a JOIN fluxqueue.units u ON u.id = a.unit_id "
                "WHERE u.name = 'frail-group' AND a.released_at IS NULL"
            )
        finally:
            await conn.close()
        pods = await system.pods(selector="fluxqueue.io/group-name=frail")
        live = [p for p in pods if p["status"].get("phase") not in ("Succeeded", "Failed")]
        return held == 0 and not live

    await system.wait_for(released, 30, "the other member deleted and the allocation given back")


async def test_a_jobs_failed_pod_is_reported_and_its_replacement_bound_within_the_allocation(system):
    await system.apply(f"""
apiVersion: batch/v1
kind: Job
metadata:
  name: flaky
  namespace: default
  labels:
    {names.LABEL_DURATION}: "120"
spec:
  parallelism: 1
  completions: 1
  backoffLimit: 1
  template:
    metadata:
      annotations:
        {names.SIM_RUNTIME}: "2s"
        {names.SIM_FAIL}: "true"
    spec:
      restartPolicy: Never
      containers:
      - name: c
        image: busybox
        resources:
          requests: {{cpu: "1", memory: 1Gi}}
""")
    await system.wait_phase("flaky-job", "Failed", within=40)
    conn = await asyncpg.connect(system.dsn)
    try:
        bound = await conn.fetchval(
            "SELECT count(*) FROM fluxqueue.pod_bindings b JOIN fluxqueue.units u ON u.id = b.unit_id "
            "WHERE u.name = 'flaky-job'"
        )
    finally:
        await conn.close()
    assert bound == 2  # the pod, then its replacement, both in the Job's one allocation
    failed = [e for e in await system.events("flaky-job") if e["reason"] == "PodFailed"]
    assert failed and "failed on" in failed[0]["message"]


async def test_a_pod_group_member_deleted_while_the_group_runs_fails_the_group(system):
    group = {names.LABEL_GROUP_NAME: "torn", names.LABEL_GROUP_SIZE: "2"}
    await system.apply(
        member("torn-0", "1", group, runtime="120s") + member("torn-1", "1", group, runtime="120s")
    )
    await system.wait_phase("torn-group", "Running", within=30)
    await system.kubectl("delete", "pod", "torn-1", "--wait=false")
    fj = await system.wait_phase("torn-group", "Failed", within=30)
    assert "torn-1 was deleted while it ran" in fj["status"]["reason"]
