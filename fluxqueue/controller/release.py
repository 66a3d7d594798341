"""When a unit is finished, decided from the wrapped objects alone (pure functions, no I/O).

* Job: the ``Complete`` or ``Failed`` condition (batch/v1 JobCondition; ``SuccessCriteriaMet`` and
  ``FailureTarget`` come first in 1.31+, but only the final ones mean the pods are gone or terminating).
* Bare pod: phase ``Succeeded`` / ``Failed``.
* Pod group: every member terminal (or gone); Succeeded only when all that ran succeeded.
* Any wrapped object deleted: Cancelled (the caller sees the deletion).
"""

from __future__ import annotations

from collections.abc import Iterable

from fluxqueue.queue.store import CANCELLED, FAILED, SUCCEEDED

TERMINAL_PHASES = ("Succeeded", "Failed")


def _condition(obj: dict, kind: str) -> dict | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind and cond.get("status") == "True":
            return cond
    return None


def job_outcome(job: dict) -> tuple[str, str] | None:
    """(state, reason) once the Job has finished; None while it has not."""
    if _condition(job, "Complete"):
        succeeded = (job.get("status") or {}).get("succeeded") or 0
        return SUCCEEDED, f"Job completed ({succeeded} pods succeeded)"
    failed = _condition(job, "Failed")
    if failed:
        why = failed.get("message") or failed.get("reason") or "Job failed"
        return FAILED, f"Job failed: {why}"
    return None


def job_started(job: dict) -> bool:
    status = job.get("status") or {}
    return bool(
        status.get("active") or status.get("ready") or status.get("succeeded") or status.get("failed")
    )


def pod_outcome(pod: dict) -> tuple[str, str] | None:
    phase = (pod.get("status") or {}).get("phase")
    if phase == "Succeeded":
        return SUCCEEDED, "pod succeeded"
    if phase == "Failed":
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            # Deleted while it ran: its containers were killed, which the kubelet reports as a failure.
            return CANCELLED, "pod deleted"
        reason = (
            (pod.get("status") or {}).get("reason") or (pod.get("status") or {}).get("message") or "error"
        )
        return FAILED, f"pod failed: {reason}"
    return None


def pod_running(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running"


def group_outcome(members: Iterable[dict | None], size: int) -> tuple[str, str] | None:
    """Members as last seen, None for a member that is gone. Finished when no member can still run."""
    members = list(members)
    live = [
        m
        for m in members
        if m is not None
        and (m.get("status") or {}).get("phase") not in TERMINAL_PHASES
        and not (m.get("metadata") or {}).get("deletionTimestamp")
    ]
    if live:
        return None
    present = [m for m in members if m is not None]
    if not present:
        return CANCELLED, "every member of the group was deleted"
    failed = [m for m in present if (m.get("status") or {}).get("phase") == "Failed"]
    gone = len(members) - len(present)
    if failed:
        return FAILED, f"{len(failed)} of {size} members failed"
    if gone or any((m.get("status") or {}).get("phase") != "Succeeded" for m in present):
        return CANCELLED, f"{gone or size} members deleted before they finished"
    return SUCCEEDED, f"all {size} members succeeded"
