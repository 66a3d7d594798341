"""The simulated Job controller against the API emulator: suspend/resume, parallelism, Indexed, backoff,
deadlines and TTL, with kubelets running the pods (time scale 100: a simulated second is 10 ms)."""

from __future__ import annotations

import pytest
from support.polling import caught_up, eventually

from fluxqueue.sim.apiserver import APIError
from fluxqueue.sim.apiserver import resources as R

NS = "default"


@pytest.fixture
async def cluster(start_cluster):
    return await start_cluster(nodes=3, cpus=8, memory="16Gi", racks=1)


def job_body(name: str, runtime: str = "5s", fail: bool = False, node: str = "node-000", **spec):
    ann = {"sim.fluxqueue.io/runtime": runtime}
    if fail:
        ann["sim.fluxqueue.io/fail"] = "true"
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "template": {
                "metadata": {"annotations": ann},
                "spec": {
                    "nodeName": node,
                    "restartPolicy": "Never",
                    "containers": [
                        {"name": "main", "image": "busybox", "resources": {"requests": {"cpu": "1"}}}
                    ],
                },
            },
            **spec,
        },
    }


async def pods_of(api, job: str) -> list[dict]:
    return (
        await api.client.list(R.PODS, namespace=NS, label_selector=f"batch.kubernetes.io/job-name={job}")
    )["items"]


async def conditions(api, job: str) -> dict[str, dict]:
    j = await api.client.get(R.JOBS, job, namespace=NS)
    return {
        c["type"]: c for c in (j.get("status") or {}).get("conditions") or [] if c.get("status") == "True"
    }


async def test_suspended_job_has_no_pods_until_resumed_and_resuspending_deletes_them(apiserver, cluster):
    api = apiserver
    await api.client.create(
        R.JOBS, job_body("sus", runtime="1h", suspend=True, parallelism=2, completions=2), namespace=NS
    )
    await eventually(lambda: _has(api, "sus", "Suspended"))
    # The controller has seen its own status write and has nothing left to do: no sync created pods.
    jc = next(c for c in cluster.controllers if c.name == "job-controller")
    suspended = await api.client.get(R.JOBS, "sus", namespace=NS)
    await eventually(lambda: caught_up(cluster.informer(R.JOBS), suspended) and len(jc.queue) == 0)
    assert await pods_of(api, "sus") == []
    j = await api.client.get(R.JOBS, "sus", namespace=NS)
    assert "startTime" not in j["status"]

    await api.client.patch(R.JOBS, "sus", {"spec": {"suspend": False}}, namespace=NS)
    running = await eventually(lambda: _running(api, "sus", 2))
    assert len(running) == 2
    j = await api.client.get(R.JOBS, "sus", namespace=NS)
    assert j["status"]["startTime"] and j["status"]["active"] == 2
    resumed = {c["type"]: c for c in j["status"]["conditions"]}["Suspended"]
    assert resumed["status"] == "False" and resumed["reason"] == "JobResumed"

    await api.client.patch(R.JOBS, "sus", {"spec": {"suspend": True}}, namespace=NS)
    await eventually(lambda: _no_pods(api, "sus"))
    j = await api.client.get(R.JOBS, "sus", namespace=NS)
    assert j["status"]["active"] == 0 and j["status"].get("failed", 0) == 0
    assert {c["type"]: c["status"] for c in j["status"]["conditions"]}["Suspended"] == "True"


async def test_parallelism_and_completions(apiserver, cluster):
    api = apiserver
    seen_active: list[int] = []
    await api.client.create(
        R.JOBS, job_body("par", runtime="20s", parallelism=2, completions=5), namespace=NS
    )

    async def done():
        j = await api.client.get(R.JOBS, "par", namespace=NS)
        seen_active.append(
            len([p for p in await pods_of(api, "par") if p["status"].get("phase") in ("Pending", "Running")])
        )
        return j if "Complete" in await conditions(api, "par") else None

    j = await eventually(done, 20)
    assert max(seen_active) <= 2
    assert j["status"]["succeeded"] == 5 and j["status"]["active"] == 0 and j["status"]["completionTime"]
    pods = await pods_of(api, "par")
    assert len(pods) == 5 and all(p["status"]["phase"] == "Succeeded" for p in pods)
    assert all(
        "batch.kubernetes.io/job-tracking" not in (p["metadata"].get("finalizers") or []) for p in pods
    )
    assert {c for c in await conditions(api, "par")} >= {"SuccessCriteriaMet", "Complete"}


async def test_indexed_job_pods_carry_indices_and_hostnames(apiserver, cluster):
    api = apiserver
    await api.client.create(
        R.JOBS,
        job_body("idx", runtime="2s", parallelism=3, completions=3, completionMode="Indexed"),
        namespace=NS,
    )
    await eventually(lambda: _has(api, "idx", "Complete"), 15)
    pods = await pods_of(api, "idx")
    by_index = {p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]: p for p in pods}
    assert sorted(by_index) == ["0", "1", "2"]
    for i, p in by_index.items():
        assert p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] == i
        assert p["spec"]["hostname"] == f"idx-{i}"
        assert p["metadata"]["name"].startswith(f"idx-{i}-")
    j = await api.client.get(R.JOBS, "idx", namespace=NS)
    assert j["status"]["completedIndexes"] == "0-2"


async def test_backoff_limit_fails_the_job(apiserver, cluster):
    api = apiserver
    await api.client.create(R.JOBS, job_body("bad", runtime="1s", fail=True, backoffLimit=1), namespace=NS)
    conds = await eventually(lambda: _has(api, "bad", "Failed"), 20)
    assert conds["Failed"]["reason"] == "BackoffLimitExceeded"
    assert conds["FailureTarget"]["reason"] == "BackoffLimitExceeded"
    j = await api.client.get(R.JOBS, "bad", namespace=NS)
    assert j["status"]["failed"] == 2 and "completionTime" not in j["status"]
    pods = await pods_of(api, "bad")
    assert len(pods) == 2 and all(p["status"]["phase"] == "Failed" for p in pods)
    assert all(p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 1 for p in pods)


async def test_active_deadline_kills_the_running_pod(apiserver, cluster):
    api = apiserver
    await api.client.create(R.JOBS, job_body("slow", runtime="1h", activeDeadlineSeconds=20), namespace=NS)
    await eventually(lambda: _running(api, "slow", 1))
    conds = await eventually(lambda: _has(api, "slow", "Failed"), 15)
    assert conds["Failed"]["reason"] == "DeadlineExceeded"
    await eventually(lambda: _no_pods_running(api, "slow"))


async def test_ttl_after_finished_deletes_the_job_and_its_pods(apiserver, cluster):
    api = apiserver
    await api.client.create(R.JOBS, job_body("ttl", runtime="1s", ttlSecondsAfterFinished=30), namespace=NS)

    async def gone():
        try:
            await api.client.get(R.JOBS, "ttl", namespace=NS)
            return False
        except APIError as exc:
            return exc.code == 404

    await eventually(gone, 15)
    await eventually(lambda: _no_pods(api, "ttl"), 10)


# ----- helpers
async def _has(api, job, typ):
    conds = await conditions(api, job)
    return conds if typ in conds else None


async def _running(api, job, n):
    pods = [
        p
        for p in await pods_of(api, job)
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    ]
    return pods if len(pods) >= n else None


async def _no_pods(api, job):
    return not await pods_of(api, job)


async def _no_pods_running(api, job):
    return not [p for p in await pods_of(api, job) if p["status"].get("phase") in ("Pending", "Running")]
