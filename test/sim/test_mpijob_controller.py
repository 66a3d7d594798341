"""The simulated MPI Operator (v2beta1 MPIJobs) against the API emulator, with the Job controller, the
stand-in kube-scheduler and kubelets running the pods (time scale 100: a simulated second is 10 ms): the
launcher Job and worker pods, their labels, suspend, the Succeeded/Failed conditions and cleanPodPolicy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.polling import eventually

from fluxqueue.sim.apiserver import resources as R
from fluxqueue.sim.controllers.mpijob import plan_mpijob
from fluxqueue.sim.controllers.thirdparty_crds import MPIJOBS

NS = "default"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mpijob.yaml"


@pytest.fixture
async def cluster(start_cluster):
    return await start_cluster(nodes=2, cpus=8, memory="16Gi", racks=1)


def replica(replicas: int, cpu: str, runtime: str, fail: bool = False, **extra) -> dict:
    ann = {"sim.fluxqueue.io/runtime": runtime}
    if fail:
        ann["sim.fluxqueue.io/fail"] = "true"
    return {
        "replicas": replicas,
        "template": {
            "metadata": {"annotations": ann, "labels": {"app": "pi"}},
            "spec": {
                "containers": [{"name": "main", "image": "mpi", "resources": {"requests": {"cpu": cpu}}}],
                **extra,
            },
        },
    }


def mpijob(
    name: str, workers: int = 2, launcher_runtime: str = "2s", worker_runtime: str = "1h", **spec
) -> dict:
    run_policy = spec.pop("runPolicy", {})
    return {
        "apiVersion": "kubeflow.org/v2beta1",
        "kind": "MPIJob",
        "metadata": {"name": name},
        "spec": {
            "slotsPerWorker": 1,
            "runPolicy": run_policy,
            "mpiReplicaSpecs": {
                "Launcher": replica(1, "500m", launcher_runtime, fail=spec.pop("launcher_fails", False)),
                "Worker": replica(workers, "2", worker_runtime),
            },
            **spec,
        },
    }


async def workers_of(api, name: str) -> list[dict]:
    sel = f"training.kubeflow.org/job-name={name},training.kubeflow.org/job-role=worker"
    return (await api.client.list(R.PODS, namespace=NS, label_selector=sel))["items"]


async def launcher_pods(api, name: str) -> list[dict]:
    sel = f"training.kubeflow.org/job-name={name},training.kubeflow.org/job-role=launcher"
    return (await api.client.list(R.PODS, namespace=NS, label_selector=sel))["items"]


async def condition(api, name: str, typ: str, status: str = "True") -> dict | None:
    job = await api.client.get(MPIJOBS, name, namespace=NS)
    c = next((c for c in (job.get("status") or {}).get("conditions") or [] if c["type"] == typ), None)
    return c if c and c["status"] == status else None


async def test_launcher_job_and_worker_pods_are_named_labelled_and_owned(apiserver, cluster):
    api = apiserver
    created = await api.client.create(MPIJOBS, mpijob("pi", workers=3, launcher_runtime="1h"), namespace=NS)
    running = await eventually(lambda: condition(api, "pi", "Running"), 20)
    assert running["reason"] == "MPIJobRunning"
    workers = {p["metadata"]["name"]: p for p in await workers_of(api, "pi")}
    assert sorted(workers) == ["pi-worker-0", "pi-worker-1", "pi-worker-2"]
    w2 = workers["pi-worker-2"]
    assert {
        "training.kubeflow.org/operator-name": "mpi-operator",
        "training.kubeflow.org/job-name": "pi",
        "training.kubeflow.org/job-role": "worker",
        "training.kubeflow.org/replica-index": "2",
        "app": "pi",
    }.items() <= w2["metadata"]["labels"].items()
    ref = w2["metadata"]["ownerReferences"][0]
    assert (ref["apiVersion"], ref["kind"], ref["name"], ref["uid"], ref["controller"]) == (
        "kubeflow.org/v2beta1",
        "MPIJob",
        "pi",
        created["metadata"]["uid"],
        True,
    )
    assert (w2["spec"]["hostname"], w2["spec"]["subdomain"]) == ("pi-worker-2", "pi")
    assert w2["spec"]["restartPolicy"] == "Never"  # the Worker replica's default
    assert w2["spec"]["schedulerName"] == "default-scheduler"

    launcher = await api.client.get(R.JOBS, "pi-launcher", namespace=NS)
    assert launcher["metadata"]["labels"]["app"] == "pi"
    assert launcher["metadata"]["ownerReferences"][0]["kind"] == "MPIJob"
    (lpod,) = await launcher_pods(api, "pi")
    assert lpod["metadata"]["labels"]["training.kubeflow.org/operator-name"] == "mpi-operator"
    assert lpod["spec"]["hostname"] == "pi-launcher" and lpod["spec"]["restartPolicy"] == "OnFailure"
    assert (await api.client.get(R.SERVICES, "pi", namespace=NS))["spec"]["clusterIP"] == "None"

    job = await api.client.get(MPIJOBS, "pi", namespace=NS)
    assert {c["type"] for c in job["status"]["conditions"]} >= {"Created", "Running"}
    assert job["status"]["replicaStatuses"]["Worker"] == {"active": 3}
    assert job["status"]["replicaStatuses"]["Launcher"] == {"active": 1}
    assert job["status"]["startTime"]


async def test_worker_templates_keep_the_users_scheduler_name(apiserver, start_cluster):
    api = apiserver
    await start_cluster(nodes=1, cpus=8, memory="16Gi", racks=1, default_scheduler=False)
    body = mpijob("sched", workers=1)
    for r in body["spec"]["mpiReplicaSpecs"].values():
        r["template"]["spec"]["schedulerName"] = "fluxqueue"
    await api.client.create(MPIJOBS, body, namespace=NS)
    (worker,) = await eventually(lambda: workers_of(api, "sched"))
    assert worker["spec"]["schedulerName"] == "fluxqueue"
    (lpod,) = await eventually(lambda: launcher_pods(api, "sched"))
    assert lpod["spec"]["schedulerName"] == "fluxqueue"


async def test_succeeded_when_the_launcher_succeeds_and_clean_pod_policy_running_deletes_workers(
    apiserver, cluster
):
    api = apiserver
    await api.client.create(MPIJOBS, mpijob("ok", runPolicy={"cleanPodPolicy": "Running"}), namespace=NS)
    done = await eventually(lambda: condition(api, "ok", "Succeeded"), 20)
    assert (
        done["reason"] == "MPIJobSucceeded" and done["message"] == "MPIJob default/ok successfully completed."
    )
    job = await api.client.get(MPIJOBS, "ok", namespace=NS)
    assert job["status"]["completionTime"]
    assert job["status"]["replicaStatuses"]["Launcher"] == {"succeeded": 1}
    assert {c["type"]: c["status"] for c in job["status"]["conditions"]}["Running"] == "False"
    await eventually(lambda: _when(workers_of(api, "ok"), lambda ps: not ps), 20)


async def test_clean_pod_policy_none_is_the_default_and_leaves_the_workers(apiserver, cluster):
    api = apiserver
    await api.client.create(MPIJOBS, mpijob("keep"), namespace=NS)
    await eventually(lambda: condition(api, "keep", "Succeeded"), 20)
    job = await api.client.get(MPIJOBS, "keep", namespace=NS)
    assert "cleanPodPolicy" not in job["spec"]["runPolicy"]
    workers = await workers_of(api, "keep")
    assert len(workers) == 2 and all(p["status"]["phase"] == "Running" for p in workers)
    # what the operator does with the finished MPIJob from now on: nothing
    launcher = await api.client.get(R.JOBS, "keep-launcher", namespace=NS)
    plan = plan_mpijob(job, workers, launcher, await launcher_pods(api, "keep"))
    assert plan.delete_workers == [] and plan.create_workers == [] and plan.status == job["status"]


async def test_a_failed_launcher_fails_the_mpijob(apiserver, cluster):
    api = apiserver
    await api.client.create(
        MPIJOBS,
        mpijob("bad", launcher_fails=True, runPolicy={"backoffLimit": 0, "cleanPodPolicy": "All"}),
        namespace=NS,
    )
    failed = await eventually(lambda: condition(api, "bad", "Failed"), 20)
    assert failed["reason"].startswith("BackoffLimitExceeded")
    launcher = await api.client.get(R.JOBS, "bad-launcher", namespace=NS)
    assert launcher["spec"]["backoffLimit"] == 0
    await eventually(lambda: _when(workers_of(api, "bad"), lambda ps: not ps), 20)


async def test_suspend_keeps_the_launcher_suspended_and_creates_no_workers_until_resumed(apiserver, cluster):
    api = apiserver
    await api.client.create(
        MPIJOBS, mpijob("sus", launcher_runtime="1h", runPolicy={"suspend": True}), namespace=NS
    )
    await eventually(lambda: condition(api, "sus", "Suspended"))
    launcher = await api.client.get(R.JOBS, "sus-launcher", namespace=NS)
    assert launcher["spec"]["suspend"] is True
    assert await workers_of(api, "sus") == [] and await launcher_pods(api, "sus") == []
    job = await api.client.get(MPIJOBS, "sus", namespace=NS)
    assert "startTime" not in job["status"]
    assert {c["type"]: c["status"] for c in job["status"]["conditions"]}["Running"] == "False"

    await api.client.patch(MPIJOBS, "sus", {"spec": {"runPolicy": {"suspend": False}}}, namespace=NS)
    await eventually(lambda: condition(api, "sus", "Running"), 20)
    resumed = await condition(api, "sus", "Suspended", "False")
    assert resumed and resumed["reason"] == "MPIJobResumed"
    assert (await api.client.get(R.JOBS, "sus-launcher", namespace=NS))["spec"]["suspend"] is False

    await api.client.patch(MPIJOBS, "sus", {"spec": {"runPolicy": {"suspend": True}}}, namespace=NS)
    await eventually(lambda: condition(api, "sus", "Suspended"))
    await eventually(lambda: _when(workers_of(api, "sus"), lambda ps: not ps), 20)
    await eventually(lambda: _when(launcher_pods(api, "sus"), lambda ps: not ps), 20)
    assert (await api.client.get(R.JOBS, "sus-launcher", namespace=NS))["spec"]["suspend"] is True


async def test_deleting_the_mpijob_collects_launcher_and_workers(apiserver, cluster):
    api = apiserver
    await api.client.create(MPIJOBS, mpijob("gone", launcher_runtime="1h"), namespace=NS)
    await eventually(lambda: condition(api, "gone", "Running"), 20)
    await api.client.delete(MPIJOBS, "gone", namespace=NS)
    await eventually(lambda: _when(workers_of(api, "gone"), lambda ps: not ps), 20)
    await eventually(lambda: _when(launcher_pods(api, "gone"), lambda ps: not ps), 20)


async def test_the_example_applies_with_kubectl_and_succeeds(apiserver, start_cluster, kubectl):
    api = apiserver
    await start_cluster(nodes=3, cpus=8, memory="32Gi", racks=1)
    await kubectl("apply", "-f", str(EXAMPLE))
    await eventually(lambda: condition(api, "pi", "Succeeded"), 30)
    out = json.loads((await kubectl("get", "mpijob", "pi", "-o", "json")).stdout)
    assert out["spec"]["mpiImplementation"] == "OpenMPI"  # the CRD's schema default
    assert out["status"]["replicaStatuses"]["Launcher"] == {"succeeded": 1}
    await eventually(lambda: _when(workers_of(api, "pi"), lambda ps: not ps), 20)


def test_plan_waits_for_ready_workers_under_wait_for_workers_ready():
    job = mpijob("w", workers=2, launcherCreationPolicy="WaitForWorkersReady")
    job["metadata"].update(namespace="ns", uid="u-1")
    plan = plan_mpijob(job, [], None, [], now="2026-01-01T00:00:00Z")
    assert [p["metadata"]["name"] for p in plan.create_workers] == ["w-worker-0", "w-worker-1"]
    assert plan.create_launcher is None
    assert [c["type"] for c in plan.status["conditions"]] == ["Created"]


# ----------------------------------------------------------------------------------------- helpers
async def _when(aw, pred):
    """The awaited value when ``pred`` holds for it (True for an empty one), else None."""
    value = await aw
    return (value or True) if pred(value) else None
