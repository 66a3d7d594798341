"""The Job controller's pure decisions (plan_job / job_pod), without an API server."""

from __future__ import annotations

import time

from fluxqueue.sim.clock import rfc3339
from fluxqueue.sim.controllers.job import (
    JOB_TRACKING_FINALIZER,
    format_indexes,
    job_pod,
    parse_indexes,
    plan_job,
)


def job(**spec):
    s = {
        "parallelism": 1,
        "completions": 1,
        "backoffLimit": 6,
        "completionMode": "NonIndexed",
        "suspend": False,
        "podReplacementPolicy": "TerminatingOrFailed",
        "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}},
    }
    s.update(spec)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "j", "namespace": "ns", "uid": "job-uid"},
        "spec": s,
        "status": {},
    }


def pod(name, phase="Running", index=None, finalizer=True, deleting=False):
    md = {"name": name, "namespace": "ns", "uid": "uid-" + name, "creationTimestamp": rfc3339()}
    if finalizer:
        md["finalizers"] = [JOB_TRACKING_FINALIZER]
    if index is not None:
        md["annotations"] = {"batch.kubernetes.io/job-completion-index": str(index)}
    if deleting:
        md["deletionTimestamp"] = rfc3339()
    return {"metadata": md, "spec": {"nodeName": "n"}, "status": {"phase": phase}}


def test_a_suspended_job_creates_nothing_and_says_so():
    plan = plan_job(job(suspend=True, parallelism=3, completions=3), [], time.time())
    assert plan.create == []
    conds = {c["type"]: c for c in plan.status["conditions"]}
    assert conds["Suspended"]["status"] == "True" and conds["Suspended"]["reason"] == "JobSuspended"
    assert "startTime" not in plan.status


def test_suspending_a_running_job_deletes_its_active_pods_without_counting_failures():
    pods = [pod("a"), pod("b")]
    plan = plan_job(job(suspend=True, parallelism=2, completions=4), pods, time.time())
    assert {p["metadata"]["name"] for p in plan.delete} == {"a", "b"}
    assert plan.status["failed"] == 0 and plan.status["active"] == 0


def test_resuming_sets_start_time_and_creates_up_to_parallelism():
    j = job(parallelism=2, completions=5)
    j["status"] = {"conditions": [{"type": "Suspended", "status": "True", "reason": "JobSuspended"}]}
    plan = plan_job(j, [], time.time())
    assert plan.create == [None, None]
    assert plan.status["startTime"]
    assert {c["type"]: c["reason"] for c in plan.status["conditions"]}["Suspended"] == "JobResumed"


def test_never_more_pods_than_completions_left():
    j = job(parallelism=4, completions=5)
    j["status"] = {"succeeded": 3, "startTime": rfc3339()}
    assert len(plan_job(j, [], time.time()).create) == 2


def test_indexed_jobs_create_the_lowest_missing_indices():
    j = job(parallelism=2, completions=4, completionMode="Indexed")
    j["status"] = {"completedIndexes": "0", "startTime": rfc3339()}
    plan = plan_job(j, [pod("x", index=1)], time.time())
    assert plan.create == [2]


def test_a_succeeded_pod_is_counted_once_and_lets_go_of_its_finalizer():
    j = job(parallelism=1, completions=2, completionMode="Indexed")
    j["status"] = {"startTime": rfc3339()}
    done = pod("a", "Succeeded", index=0)
    plan = plan_job(j, [done], time.time())
    assert plan.status["succeeded"] == 1 and plan.status["completedIndexes"] == "0"
    assert plan.finalize == [done] and plan.create == [1]
    again = plan_job(j, [done], time.time(), counted={"uid-a"})
    assert again.status.get("succeeded", 0) == 0  # status not yet reflecting it, but not counted twice


def test_failures_past_backoff_limit_fail_the_job_in_two_steps():
    j = job(parallelism=1, completions=1, backoffLimit=1)
    j["status"] = {"failed": 1, "startTime": rfc3339()}
    plan = plan_job(j, [pod("b", "Failed"), pod("c")], time.time())
    conds = {c["type"]: c for c in plan.status["conditions"]}
    assert conds["FailureTarget"]["reason"] == "BackoffLimitExceeded"
    assert "Failed" not in conds  # a pod is still running: it must go first
    assert [p["metadata"]["name"] for p in plan.delete] == ["c"]
    j["status"] = plan.status
    final = plan_job(j, [], time.time())
    assert {c["type"]: c["status"] for c in final.status["conditions"]}["Failed"] == "True"


def test_active_deadline_exceeded():
    j = job(activeDeadlineSeconds=30)
    j["status"] = {"startTime": rfc3339(time.time() - 40)}
    plan = plan_job(j, [], time.time())
    assert {c["type"]: c["reason"] for c in plan.status["conditions"]}["Failed"] == "DeadlineExceeded"
    # with time scale 10, 2 real seconds are 20 simulated: not yet; the controller comes back in 10 s
    j["status"] = {"startTime": rfc3339(time.time() - 2)}
    early = plan_job(j, [], time.time(), time_scale=10)
    assert early.create == [None] and 0 < early.requeue_after <= 10.5


def test_work_queue_job_completes_when_one_succeeds_and_none_run():
    j = job(parallelism=2, completions=None)
    j["status"] = {"startTime": rfc3339()}
    plan = plan_job(j, [pod("a", "Succeeded"), pod("b", "Succeeded")], time.time())
    assert {c["type"] for c in plan.status["conditions"]} >= {"SuccessCriteriaMet", "Complete"}
    assert plan.status["completionTime"] and plan.create == []


def test_terminating_pods_count_as_failed_and_are_replaced_by_default():
    j = job(parallelism=1, completions=1)
    j["status"] = {"startTime": rfc3339()}
    plan = plan_job(j, [pod("a", deleting=True)], time.time())
    assert plan.status["failed"] == 1 and plan.create == [None]
    strict = job(parallelism=1, completions=1, podReplacementPolicy="Failed")
    strict["status"] = {"startTime": rfc3339()}
    assert plan_job(strict, [pod("a", deleting=True)], time.time()).create == []


def test_indexed_pod_from_template():
    p = job_pod(job(completionMode="Indexed", completions=3), 2)
    md = p["metadata"]
    assert md["generateName"] == "j-2-"
    assert md["labels"]["batch.kubernetes.io/job-completion-index"] == "2"
    assert md["annotations"]["batch.kubernetes.io/job-completion-index"] == "2"
    assert md["labels"]["batch.kubernetes.io/job-name"] == "j"
    assert md["ownerReferences"][0]["controller"] is True and md["finalizers"] == [JOB_TRACKING_FINALIZER]
    assert p["spec"]["hostname"] == "j-2"
    assert p["spec"]["containers"][0]["env"][0]["name"] == "JOB_COMPLETION_INDEX"


def test_index_sets_round_trip():
    assert format_indexes({0, 1, 2, 4, 6, 7}) == "0-2,4,6-7"
    assert parse_indexes("0-2,4,6-7") == {0, 1, 2, 4, 6, 7}
