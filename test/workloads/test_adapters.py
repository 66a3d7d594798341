"""The workload adapters: pod sets from each kind's spec, suspend and start, outcomes, and what the webhook
does to JobSets, MPIJobs and the Jobs they create (pure, no network)."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from webhook.test_mutate import CONFIG, apply_patch

from fluxqueue.placement.units import UnitDefaults
from fluxqueue.webhook.mutate import mutate
from fluxqueue.workloads.jobset import JobSetWorkload
from fluxqueue.workloads.mpijob import MPIJobWorkload
from fluxqueue.workloads.registry import BY_KIND, KINDS, parent_of_job, workload_of_object


def pod_template(cpu: str) -> dict:
    return {"spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]}}


def jobset() -> dict:
    def rjob(name, replicas, parallelism, cpu):
        return {
            "name": name,
            "replicas": replicas,
            "template": {
                "spec": {
                    "parallelism": parallelism,
                    "completions": parallelism,
                    "template": pod_template(cpu),
                }
            },
        }

    return {
        "apiVersion": "jobset.x-k8s.io/v1alpha2",
        "kind": "JobSet",
        "metadata": {
            "name": "train",
            "namespace": "ml",
            "uid": "js-1",
            "labels": {"fluxqueue.io/duration": "600"},
        },
        "spec": {"replicatedJobs": [rjob("leader", 1, 1, "8"), rjob("workers", 2, 3, "1")]},
    }


def mpijob() -> dict:
    return {
        "apiVersion": "kubeflow.org/v2beta1",
        "kind": "MPIJob",
        "metadata": {"name": "pi", "namespace": "ml", "uid": "m-1"},
        "spec": {
            "runPolicy": {"cleanPodPolicy": "Running"},
            "mpiReplicaSpecs": {
                "Launcher": {"replicas": 1, "template": pod_template("1")},
                "Worker": {"replicas": 4, "template": pod_template("6")},
            },
        },
    }


def review(obj: dict, group: str, kind: str, operation: str = "CREATE", old: dict | None = None) -> dict:
    req = {
        "uid": "u",
        "kind": {"group": group, "version": "v1", "kind": kind},
        "resource": {"group": group, "version": "v1", "resource": kind.lower() + "s"},
        "operation": operation,
        "namespace": "ml",
        "object": obj,
    }
    if old is not None:
        req["oldObject"] = old
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": req}


def admitted(obj: dict, group: str, kind: str, **kw) -> dict:
    resp = mutate(review(obj, group, kind, **kw), CONFIG)["response"]
    assert resp["allowed"], resp
    return apply_patch(obj, json.loads(base64.b64decode(resp["patch"]))) if "patch" in resp else obj


def test_every_kind_is_registered_once_and_each_api_kind_finds_its_adapter():
    assert len(BY_KIND) == len(KINDS)
    assert isinstance(workload_of_object("jobset.x-k8s.io", "JobSet"), JobSetWorkload)
    assert isinstance(workload_of_object("kubeflow.org", "MPIJob"), MPIJobWorkload)
    assert workload_of_object("batch", "Job").kind == "Job"
    assert workload_of_object("apps", "Deployment") is None


def test_a_jobset_is_one_unit_with_a_pod_set_per_replicated_job():
    u = JobSetWorkload().unit(jobset(), UnitDefaults())
    assert (u.kind, u.name, u.uid, u.size, u.duration) == ("JobSet", "train", "js-1", 7, 600)
    assert [(s.name, s.count, s.per_pod.cpu_milli) for s in u.pod_sets] == [
        ("leader", 1, 8000),
        ("workers", 6, 1000),
    ]


def test_an_mpijob_is_launcher_and_workers():
    u = MPIJobWorkload().unit(mpijob(), UnitDefaults())
    assert [(s.name, s.count, s.per_pod.cpu_milli) for s in u.pod_sets] == [
        ("launcher", 1, 1000),
        ("worker", 4, 6000),
    ]
    assert MPIJobWorkload().start_patch({"a": "b"}) == {
        "metadata": {"annotations": {"a": "b"}},
        "spec": {"runPolicy": {"suspend": False}},
    }


def test_outcomes_follow_each_kinds_conditions():
    done = {"status": {"conditions": [{"type": "Completed", "status": "True"}]}}
    failed = {"status": {"conditions": [{"type": "Failed", "status": "True", "message": "backoff"}]}}
    assert JobSetWorkload().outcome(done)[0] == "Succeeded"
    assert JobSetWorkload().outcome(failed) == ("Failed", "JobSet failed: backoff")
    assert MPIJobWorkload().outcome({"status": {"conditions": [{"type": "Succeeded", "status": "True"}]}})[
        0
    ] == ("Succeeded")
    assert MPIJobWorkload().outcome({"status": {}}) is None


def test_the_webhook_suspends_a_jobset_and_names_our_scheduler_in_every_replicated_job():
    out = admitted(jobset(), "jobset.x-k8s.io", "JobSet")
    assert out["spec"]["suspend"] is True
    assert isinstance(out["spec"]["replicatedJobs"], list)  # patched inside the list, never replaced
    for rjob in out["spec"]["replicatedJobs"]:
        pod_spec = rjob["template"]["spec"]["template"]["spec"]
        assert pod_spec["schedulerName"] == "fluxqueue"
    assert out["metadata"]["labels"]["fluxqueue.io/managed"] == "true"


def test_the_webhook_suspends_an_mpijob_through_its_run_policy():
    out = admitted(mpijob(), "kubeflow.org", "MPIJob")
    assert out["spec"]["runPolicy"] == {"cleanPodPolicy": "Running", "suspend": True}
    for role in ("Launcher", "Worker"):
        assert out["spec"]["mpiReplicaSpecs"][role]["template"]["spec"]["schedulerName"] == "fluxqueue"


def test_a_job_a_jobset_creates_is_marked_with_its_jobset_and_not_made_a_unit():
    child = {
        "metadata": {
            "name": "train-workers-0",
            "namespace": "ml",
            "ownerReferences": [
                {
                    "apiVersion": "jobset.x-k8s.io/v1alpha2",
                    "kind": "JobSet",
                    "name": "train",
                    "uid": "js-1",
                    "controller": True,
                }
            ],
        },
        "spec": {"suspend": True, "template": {"spec": {"schedulerName": "fluxqueue", "containers": []}}},
    }
    assert isinstance(parent_of_job(child), JobSetWorkload)
    out = admitted(child, "batch", "Job")
    assert out["spec"]["template"]["metadata"]["annotations"]["fluxqueue.io/workload"] == "JobSet/train/js-1"
    assert "labels" not in out["metadata"]  # not managed: never queued as a Job of its own
