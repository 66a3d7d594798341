"""When a unit is finished, decided from the wrapped objects alone."""

from fluxqueue.workloads.base import pod_outcome
from fluxqueue.workloads.job import JobWorkload
from fluxqueue.workloads.podgroup import group_outcome

job_outcome = JobWorkload().outcome


def job_with(*conditions, succeeded=0):
    return {
        "status": {
            "conditions": [{"type": t, "status": "True", "message": m} for t, m in conditions],
            "succeeded": succeeded,
        }
    }


def pod_in(phase, reason=None):
    return {"metadata": {}, "status": {"phase": phase, **({"reason": reason} if reason else {})}}


def test_a_job_is_finished_only_by_its_final_conditions():
    assert job_outcome(job_with()) is None
    assert job_outcome(job_with(("SuccessCriteriaMet", ""))) is None
    assert job_outcome(job_with(("Complete", ""), succeeded=4)) == (
        "Succeeded",
        "Job completed (4 pods succeeded)",
    )
    state, reason = job_outcome(job_with(("Failed", "BackoffLimitExceeded")))
    assert state == "Failed" and "BackoffLimitExceeded" in reason


def test_a_bare_pod_is_finished_by_its_phase():
    assert pod_outcome(pod_in("Running")) is None
    assert pod_outcome(pod_in("Succeeded"))[0] == "Succeeded"
    assert pod_outcome(pod_in("Failed", "OutOfcpu")) == ("Failed", "pod failed: OutOfcpu")
    deleted = pod_in("Failed")
    deleted["metadata"] = {"deletionTimestamp": "2026-11-23T17:00:00Z"}
    assert pod_outcome(deleted) == ("Cancelled", "pod deleted")


def test_a_group_is_finished_only_when_no_member_can_still_run():
    assert group_outcome([pod_in("Succeeded"), pod_in("Running"), pod_in("Succeeded")], 3) is None
    assert group_outcome([pod_in("Succeeded")] * 3, 3) == ("Succeeded", "all 3 members succeeded")
    assert group_outcome([pod_in("Succeeded"), pod_in("Failed"), pod_in("Succeeded")], 3)[0] == "Failed"
    assert group_outcome([None, None], 2)[0] == "Cancelled"
    assert group_outcome([pod_in("Succeeded"), None], 2)[0] == "Cancelled"
