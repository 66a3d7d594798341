"""The simulated JobSet controller against the API emulator, with the Job controller, the stand-in
kube-scheduler and kubelets running the pods (time scale 100: a simulated second is 10 ms): child Jobs and
their labels, suspend and resume, the Completed and Failed conditions, restarts."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from support.polling import eventually

from fluxqueue.sim.apiserver import resources as R
from fluxqueue.sim.controllers.jobset import plan_jobset
from fluxqueue.sim.controllers.thirdparty_crds import JOBSETS

NS = "default"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "jobset.yaml"


@pytest.fixture
async def cluster(start_cluster):
    return await start_cluster(nodes=2, cpus=8, memory="16Gi", racks=1)


def replicated_job(name: str, replicas: int, pods: int, cpu: str, runtime: str, fail: bool = False) -> dict:
    ann = {"sim.fluxqueue.io/runtime": runtime}
    if fail:
        ann["sim.fluxqueue.io/fail"] = "true"
    return {
        "name": name,
        "replicas": replicas,
        "template": {
            "spec": {
                "parallelism": pods,
                "completions": pods,
                "backoffLimit": 0,
                "template": {
                    "metadata": {"annotations": ann, "labels": {"app": "train"}},
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [
                            {"name": "main", "image": "busybox", "resources": {"requests": {"cpu": cpu}}}
                        ],
                    },
                },
            }
        },
    }


def jobset(name: str, *rjobs: dict, **spec) -> dict:
    return {
        "apiVersion": "jobset.x-k8s.io/v1alpha2",
        "kind": "JobSet",
        "metadata": {"name": name},
        "spec": {"replicatedJobs": list(rjobs), **spec},
    }


async def child_jobs(api, name: str) -> dict[str, dict]:
    items = (
        await api.client.list(R.JOBS, namespace=NS, label_selector=f"jobset.sigs.k8s.io/jobset-name={name}")
    )["items"]
    return {j["metadata"]["name"]: j for j in items}


async def pods_of(api, name: str) -> list[dict]:
    sel = f"jobset.sigs.k8s.io/jobset-name={name}"
    return (await api.client.list(R.PODS, namespace=NS, label_selector=sel))["items"]


async def condition(api, name: str, typ: str) -> dict | None:
    js = await api.client.get(JOBSETS, name, namespace=NS)
    c = next((c for c in (js.get("status") or {}).get("conditions") or [] if c["type"] == typ), None)
    return c if c and c["status"] == "True" else None


async def test_one_child_job_per_replica_labelled_and_owned_and_its_pods_carry_the_labels(apiserver, cluster):
    api = apiserver
    created = await api.client.create(
        JOBSETS,
        jobset(
            "train", replicated_job("leader", 1, 1, "4", "1h"), replicated_job("workers", 2, 2, "1", "1h")
        ),
        namespace=NS,
    )
    jobs = await eventually(lambda: _when(child_jobs(api, "train"), lambda js: len(js) == 3))
    assert sorted(jobs) == ["train-leader-0", "train-workers-0", "train-workers-1"]
    w1 = jobs["train-workers-1"]
    want = {
        "jobset.sigs.k8s.io/jobset-name": "train",
        "jobset.sigs.k8s.io/replicatedjob-name": "workers",
        "jobset.sigs.k8s.io/replicatedjob-replicas": "2",
        "jobset.sigs.k8s.io/global-replicas": "3",
        "jobset.sigs.k8s.io/job-index": "1",
        "jobset.sigs.k8s.io/job-global-index": "2",
        "jobset.sigs.k8s.io/restart-attempt": "0",
        "jobset.sigs.k8s.io/job-key": hashlib.sha1(b"default/train-workers-1").hexdigest(),
    }
    assert want.items() <= w1["metadata"]["labels"].items()
    assert want.items() <= w1["metadata"]["annotations"].items()
    ref = w1["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == (
        "JobSet",
        "train",
        created["metadata"]["uid"],
        True,
    )
    assert ref["apiVersion"] == "jobset.x-k8s.io/v1alpha2"
    # the webhook's defaults: Indexed child Jobs, pods on the JobSet's subdomain (a headless Service)
    assert w1["spec"]["completionMode"] == "Indexed" and w1["spec"]["suspend"] is False
    assert w1["spec"]["template"]["spec"]["subdomain"] == "train"
    svc = await api.client.get(R.SERVICES, "train", namespace=NS)
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["selector"] == {"jobset.sigs.k8s.io/jobset-name": "train"}

    pods = await eventually(lambda: _when(pods_of(api, "train"), lambda ps: len(ps) == 5))
    by_job = {}
    for p in pods:
        labels = p["metadata"]["labels"]
        assert labels["app"] == "train"  # the user's template labels stay
        by_job.setdefault(labels["jobset.sigs.k8s.io/replicatedjob-name"], []).append(p)
    assert len(by_job["leader"]) == 1 and len(by_job["workers"]) == 4
    assert all(p["metadata"]["annotations"]["jobset.sigs.k8s.io/jobset-name"] == "train" for p in pods)
    assert {p["metadata"]["labels"]["jobset.sigs.k8s.io/job-global-index"] for p in by_job["workers"]} == {
        "1",
        "2",
    }

    js = await eventually(lambda: _when(api.client.get(JOBSETS, "train", namespace=NS), _all_active))
    statuses = {s["name"]: s for s in js["status"]["replicatedJobsStatus"]}
    assert statuses["workers"]["active"] == 2 and statuses["leader"]["active"] == 1
    assert js["status"]["restarts"] == 0


async def test_suspend_propagates_to_child_jobs_and_resume_starts_them(apiserver, cluster):
    api = apiserver
    await api.client.create(
        JOBSETS, jobset("sus", replicated_job("w", 2, 1, "1", "1h"), suspend=True), namespace=NS
    )
    await eventually(lambda: condition(api, "sus", "Suspended"))
    jobs = await child_jobs(api, "sus")
    assert len(jobs) == 2 and all(j["spec"]["suspend"] is True for j in jobs.values())
    assert await pods_of(api, "sus") == []
    js = await api.client.get(JOBSETS, "sus", namespace=NS)
    assert {s["name"]: s["suspended"] for s in js["status"]["replicatedJobsStatus"]} == {"w": 2}

    await api.client.patch(JOBSETS, "sus", {"spec": {"suspend": False}}, namespace=NS, patch_type="merge")
    running = await eventually(lambda: _when(pods_of(api, "sus"), lambda ps: len(_running(ps)) == 2))
    assert len(running) == 2
    js = await api.client.get(JOBSETS, "sus", namespace=NS)
    suspended = next(c for c in js["status"]["conditions"] if c["type"] == "Suspended")
    assert (suspended["status"], suspended["reason"]) == ("False", "ResumeJobs")
    assert all(j["spec"]["suspend"] is False for j in (await child_jobs(api, "sus")).values())

    await api.client.patch(JOBSETS, "sus", {"spec": {"suspend": True}}, namespace=NS, patch_type="merge")
    await eventually(lambda: condition(api, "sus", "Suspended"))
    await eventually(lambda: _when(pods_of(api, "sus"), lambda ps: not ps))
    assert all(j["spec"]["suspend"] is True for j in (await child_jobs(api, "sus")).values())


async def test_completed_once_every_child_job_completes(apiserver, cluster):
    api = apiserver
    await api.client.create(
        JOBSETS,
        jobset("done", replicated_job("leader", 1, 1, "2", "2s"), replicated_job("workers", 2, 2, "1", "3s")),
        namespace=NS,
    )
    completed = await eventually(lambda: condition(api, "done", "Completed"), 20)
    assert completed["reason"] == "AllJobsCompleted"
    js = await api.client.get(JOBSETS, "done", namespace=NS)
    assert js["status"]["terminalState"] == "Completed"
    assert {s["name"]: s["succeeded"] for s in js["status"]["replicatedJobsStatus"]} == {
        "leader": 1,
        "workers": 2,
    }
    assert all(p["status"]["phase"] == "Succeeded" for p in await pods_of(api, "done"))


async def test_success_policy_any_of_the_leader_completes_and_deletes_the_rest(apiserver, cluster):
    api = apiserver
    await api.client.create(
        JOBSETS,
        jobset(
            "any",
            replicated_job("leader", 1, 1, "1", "2s"),
            replicated_job("workers", 1, 2, "1", "1h"),
            successPolicy={"operator": "All", "targetReplicatedJobs": ["leader"]},
        ),
        namespace=NS,
    )
    await eventually(lambda: condition(api, "any", "Completed"), 20)
    # the finished JobSet deletes its still-active Jobs, and their pods go with them
    await eventually(lambda: _when(child_jobs(api, "any"), lambda js: sorted(js) == ["any-leader-0"]), 20)


async def test_a_failed_job_fails_the_jobset_without_a_failure_policy(apiserver, cluster):
    api = apiserver
    await api.client.create(
        JOBSETS,
        jobset(
            "bad", replicated_job("w", 1, 1, "1", "1s", fail=True), replicated_job("other", 1, 1, "1", "1h")
        ),
        namespace=NS,
    )
    failed = await eventually(lambda: condition(api, "bad", "Failed"), 20)
    assert failed["reason"] == "FailedJobs"
    assert failed["message"] == "jobset failed due to one or more job failures (first failed job: bad-w-0)"
    js = await api.client.get(JOBSETS, "bad", namespace=NS)
    assert js["status"]["terminalState"] == "Failed"
    await eventually(lambda: _when(child_jobs(api, "bad"), lambda js: "bad-other-0" not in js), 20)


async def test_restarts_recreate_every_job_with_the_next_attempt_until_max_restarts(apiserver, cluster):
    api = apiserver
    await api.client.create(
        JOBSETS,
        jobset("rs", replicated_job("w", 2, 1, "1", "1s", fail=True), failurePolicy={"maxRestarts": 2}),
        namespace=NS,
    )
    failed = await eventually(lambda: condition(api, "rs", "Failed"), 30)
    assert failed["reason"] == "ReachedMaxRestarts"
    js = await api.client.get(JOBSETS, "rs", namespace=NS)
    assert js["status"]["restarts"] == 2 and js["status"]["restartsCountTowardsMax"] == 2
    # what is left is the last attempt's: its failed Job (a sibling still running was deleted with the JobSet's
    # failure)
    jobs = await child_jobs(api, "rs")
    assert set(jobs) <= {"rs-w-0", "rs-w-1"}
    assert {j["metadata"]["labels"]["jobset.sigs.k8s.io/restart-attempt"] for j in jobs.values()} == {"2"}
    assert any(
        c["type"] == "Failed" and c["status"] == "True"
        for j in jobs.values()
        for c in (j.get("status") or {}).get("conditions") or []
    )
    events = (await api.client.list(R.EVENTS, namespace=NS, field_selector="involvedObject.name=rs"))["items"]
    assert sum(e["reason"] == "RestartJobSetFailurePolicyAction" for e in events) == 2


async def test_in_order_startup_creates_the_next_replicated_job_once_the_first_is_ready(apiserver, cluster):
    api = apiserver
    await api.client.create(
        JOBSETS,
        jobset(
            "ord",
            replicated_job("first", 1, 1, "1", "1h"),
            replicated_job("second", 1, 1, "1", "1h"),
            startupPolicy={"startupPolicyOrder": "InOrder"},
        ),
        namespace=NS,
    )
    await eventually(lambda: condition(api, "ord", "StartupPolicyCompleted"), 20)
    js = await api.client.get(JOBSETS, "ord", namespace=NS)
    conds = {c["type"]: c["status"] for c in js["status"]["conditions"]}
    assert conds["StartupPolicyInProgress"] == "False"
    jobs = await child_jobs(api, "ord")
    first, second = jobs["ord-first-0"], jobs["ord-second-0"]
    assert first["metadata"]["creationTimestamp"] <= second["metadata"]["creationTimestamp"]


async def test_depends_on_creates_the_workers_once_the_initializer_completed(apiserver, cluster):
    api = apiserver
    workers = replicated_job("workers", 1, 2, "1", "1s")
    workers["dependsOn"] = [{"name": "init", "status": "Complete"}]
    await api.client.create(
        JOBSETS, jobset("dep", replicated_job("init", 1, 1, "1", "3s"), workers), namespace=NS
    )
    await eventually(lambda: condition(api, "dep", "Completed"), 20)
    jobs = await child_jobs(api, "dep")
    init, work = jobs["dep-init-0"], jobs["dep-workers-0"]
    done = next(c for c in init["status"]["conditions"] if c["type"] == "Complete")
    assert work["metadata"]["creationTimestamp"] >= done["lastTransitionTime"]


async def test_ttl_after_finished_deletes_the_jobset_and_everything_it_made(apiserver, cluster):
    api = apiserver
    await api.client.create(
        JOBSETS, jobset("ttl", replicated_job("w", 1, 1, "1", "1s"), ttlSecondsAfterFinished=5), namespace=NS
    )
    await eventually(lambda: condition(api, "ttl", "Completed"), 20)
    await eventually(lambda: _when(api.client.list(JOBSETS, namespace=NS), lambda out: not out["items"]), 20)
    await eventually(lambda: _when(child_jobs(api, "ttl"), lambda js: not js), 20)


async def test_deleting_the_jobset_collects_its_jobs_and_pods(apiserver, cluster):
    api = apiserver
    await api.client.create(JOBSETS, jobset("gone", replicated_job("w", 2, 1, "1", "1h")), namespace=NS)
    await eventually(lambda: _when(pods_of(api, "gone"), lambda ps: len(_running(ps)) == 2))
    await api.client.delete(JOBSETS, "gone", namespace=NS)
    await eventually(lambda: _when(child_jobs(api, "gone"), lambda js: not js), 20)
    await eventually(lambda: _when(pods_of(api, "gone"), lambda ps: not ps), 20)


async def test_the_example_applies_with_kubectl_and_completes(apiserver, cluster, kubectl):
    api = apiserver
    await kubectl("apply", "-f", str(EXAMPLE))
    await eventually(lambda: condition(api, "train", "Completed"), 30)
    out = json.loads((await kubectl("get", "jobset", "train", "-o", "json")).stdout)
    assert out["spec"]["replicatedJobs"][0]["groupName"] == "default"  # the CRD's schema default
    assert out["status"]["terminalState"] == "Completed"
    table = (await kubectl("get", "jobsets")).stdout
    assert table.split()[:6] == ["NAME", "TERMINALSTATE", "RESTARTS", "COMPLETED", "SUSPENDED", "AGE"]
    pods = await pods_of(api, "train")
    assert sorted(p["metadata"]["labels"]["jobset.sigs.k8s.io/replicatedjob-name"] for p in pods) == [
        "leader",
        *["workers"] * 4,
    ]


def test_plan_of_a_new_jobset_creates_suspended_jobs_when_the_jobset_is_suspended():
    js = jobset("p", replicated_job("a", 3, 2, "1", "1s"), suspend=True)
    js["metadata"].update(namespace="ns", uid="u-1")
    plan = plan_jobset(js, [], now="2026-01-01T00:00:00Z")
    assert [j["metadata"]["name"] for j in plan.create] == ["p-a-0", "p-a-1", "p-a-2"]
    assert all(j["spec"]["suspend"] is True for j in plan.create)
    assert plan.status["conditions"][0]["type"] == "Suspended"
    assert plan.events == [("Normal", "SuspendedJobs", "jobset is suspended")]


# ----------------------------------------------------------------------------------------- helpers
async def _when(aw, pred):
    """The awaited value when ``pred`` holds for it (True for an empty one), else None."""
    value = await aw
    return (value or True) if pred(value) else None


def _running(pods: list[dict]) -> list[dict]:
    return [p for p in pods if (p.get("status") or {}).get("phase") == "Running"]


def _all_active(js: dict) -> bool:
    st = {s["name"]: s for s in (js.get("status") or {}).get("replicatedJobsStatus") or []}
    return bool(st) and all(s["active"] == s.get("ready", 0) and s["active"] > 0 for s in st.values())
