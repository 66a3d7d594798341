"""The Job controller, after k8s.io/kubernetes pkg/controller/job/job_controller.go (1.35 behaviour).

:func:`plan_job` is the pure decision (a Job and its pods in, a :class:`JobPlan` out); :class:`JobController`
is the thin shell that feeds it from informers and carries the plan out through ``api.client`` (so the pods
it creates pass the admission webhooks, fluxqueue's included, like a real controller's requests).

Modelled: ``suspend`` (no pods while suspended; suspending deletes active pods without counting them as
failures and sets condition Suspended/JobSuspended; resuming sets Suspended=False/JobResumed and resets
status.startTime, as the Job docs state), pods from the template up to ``parallelism`` until ``completions``
succeed (completions unset: work-queue semantics), ``completionMode: Indexed`` (completion-index annotation
and label, hostname ``<job>-<index>``, pod names ``<job>-<index>-<random>``, JOB_COMPLETION_INDEX env,
status.completedIndexes), pod failure backoff (10 s doubling, capped at 10 min), ``backoffLimit`` (restarts
of OnFailure pods count too, pastBackoffLimitOnFailure), ``activeDeadlineSeconds``, the 1.31+ two-step
terminal conditions (FailureTarget then Failed, SuccessCriteriaMet then Complete, the terminal one only once
no pod is left running), podReplacementPolicy (TerminatingOrFailed counts a terminating pod as failed at
once and replaces it; Failed waits), the batch.kubernetes.io/job-tracking finalizer on pods (removed once a
finished pod is counted), status active/ready/terminating/succeeded/failed/startTime/completionTime, and
``spec.managedBy`` (Jobs managed by another controller are left alone).
Not modelled: podFailurePolicy, backoffLimitPerIndex, successPolicy rules, pod adoption by selector.
"""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass, field
from typing import Any

from fluxqueue.kube import names
from fluxqueue.log import get_logger
from fluxqueue.sim.apiserver import APIError
from fluxqueue.sim.apiserver import resources as R

from ..clock import SimClock, Timers, parse_time, rfc3339
from .base import Controller, Informer, Obj, controller_ref
from .events import EventRecorder
from .podcontrol import create_pod
from .templates import TERMINAL, deletion_rank, is_ready, phase

log = get_logger(__name__)

JOB_TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
JOB_CONTROLLER_NAME = "kubernetes.io/job-controller"
LABEL_JOB_NAME = "batch.kubernetes.io/job-name"
LABEL_CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
BACKOFF_BASE_S, BACKOFF_MAX_S = 10.0, 600.0  # DefaultJobPodFailureBackOff, MaxJobPodFailureBackOff


@dataclass
class JobPlan:
    create: list[int | None] = field(default_factory=list)  # completion indices (None: NonIndexed)
    delete: list[Obj] = field(default_factory=list)  # active pods to delete, not counted as failures
    finalize: list[Obj] = field(default_factory=list)  # pods whose tracking finalizer goes
    counted: list[str] = field(default_factory=list)  # uids of finished pods counted by this status
    status: Obj = field(default_factory=dict)
    requeue_after: float | None = None  # simulated seconds
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    new_failures: int = 0
    new_successes: int = 0


# ----------------------------------------------------------------------------------------- pure helpers
def cond(status: Obj, typ: str) -> Obj | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == typ), None)


def cond_true(status: Obj, typ: str) -> bool:
    c = cond(status, typ)
    return bool(c and c.get("status") == "True")


def is_finished(job: Obj) -> bool:
    st = job.get("status") or {}
    return cond_true(st, "Complete") or cond_true(st, "Failed")


def _set_cond(status: Obj, typ: str, value: bool, reason: str, message: str, now: str) -> bool:
    """Set a condition; True when something changed (lastTransitionTime moves only on a status flip)."""
    conds = status.setdefault("conditions", [])
    want = "True" if value else "False"
    for c in conds:
        if c.get("type") == typ:
            if c.get("status") == want and c.get("reason") == reason:
                return False
            if c.get("status") != want:
                c["lastTransitionTime"] = now
            c.update({"status": want, "reason": reason, "message": message, "lastProbeTime": now})
            return True
    conds.append(
        {
            "type": typ,
            "status": want,
            "reason": reason,
            "message": message,
            "lastProbeTime": now,
            "lastTransitionTime": now,
        }
    )
    return True


def completion_index(pod: Obj) -> int | None:
    md = pod["metadata"]
    text = (md.get("annotations") or {}).get(names.ANNOTATION_JOB_COMPLETION_INDEX)
    if text is None:
        text = (md.get("labels") or {}).get(names.LABEL_JOB_COMPLETION_INDEX)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def parse_indexes(text: str | None) -> set[int]:
    """status.completedIndexes ("1,3-5,7") as a set."""
    out: set[int] = set()
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            a, b = part.split("-", 1)
            out.update(range(int(a), int(b) + 1))
        else:
            out.add(int(part))
    return out


def format_indexes(indexes: set[int]) -> str:
    parts: list[str] = []
    run: list[int] = []
    for i in sorted(indexes):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
        run = [i]
    if run:
        parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ",".join(parts)


def _has_fin(pod: Obj) -> bool:
    return JOB_TRACKING_FINALIZER in (pod["metadata"].get("finalizers") or ())


def _restarts(pod: Obj) -> int:
    return sum(s.get("restartCount", 0) for s in (pod.get("status") or {}).get("containerStatuses") or [])


def plan_job(
    job: Obj,
    pods: list[Obj],
    now: float,
    time_scale: float = 1.0,
    backoff_until: float | None = None,
    counted: set[str] | frozenset[str] = frozenset(),
    started_at: float | None = None,
) -> JobPlan:
    """What the Job controller does next for ``job`` given the pods it controls (pure).

    ``started_at`` is status.startTime to better than the second the timestamp keeps (at a large time scale
    one real second is minutes of simulated time); ``plan.status["startTime"]`` is set from ``now`` when the
    Job (re)starts."""
    spec = job.get("spec") or {}
    old_status = job.get("status") or {}
    status = copy.deepcopy(old_status)
    plan = JobPlan()
    stamp = rfc3339(now)
    indexed = spec.get("completionMode") == "Indexed"
    completions = spec.get("completions")
    parallelism = spec.get("parallelism")
    parallelism = 1 if parallelism is None else parallelism
    backoff_limit = spec.get("backoffLimit")
    backoff_limit = 6 if backoff_limit is None else backoff_limit
    replace_failed_only = spec.get("podReplacementPolicy") == "Failed" or bool(spec.get("podFailurePolicy"))
    deleting_job = bool(job["metadata"].get("deletionTimestamp"))

    # --- count pods that finished since the last status (pods holding the tracking finalizer)
    completed = parse_indexes(status.get("completedIndexes")) if indexed else set()
    succeeded = status.get("succeeded", 0) or 0
    failed = status.get("failed", 0) or 0
    for p in pods:
        if not _has_fin(p) or p["metadata"]["uid"] in counted:
            continue
        ph = phase(p)
        if ph == "Succeeded":
            plan.finalize.append(p)
            plan.counted.append(p["metadata"]["uid"])
            plan.new_successes += 1
            if indexed:
                i = completion_index(p)
                if i is not None and 0 <= i < (completions or 0):
                    completed.add(i)
            else:
                succeeded += 1
        elif ph == "Failed" or (
            p["metadata"].get("deletionTimestamp") and not replace_failed_only and ph != "Succeeded"
        ):
            # isPodFailed: a deleted pod that had not succeeded counts as failed (TerminatingOrFailed)
            plan.finalize.append(p)
            plan.counted.append(p["metadata"]["uid"])
            plan.new_failures += 1
            failed += 1
    if indexed:
        succeeded = len(completed)
        status["completedIndexes"] = format_indexes(completed)
    status["succeeded"] = succeeded
    status["failed"] = failed
    status.setdefault("uncountedTerminatedPods", {})

    active = [p for p in pods if phase(p) not in TERMINAL and not p["metadata"].get("deletionTimestamp")]
    terminating = [p for p in pods if phase(p) not in TERMINAL and p["metadata"].get("deletionTimestamp")]

    def finish_status(active_pods: list[Obj], n_terminating: int) -> None:
        status["active"] = len(active_pods)
        status["ready"] = sum(1 for p in active_pods if is_ready(p))
        status["terminating"] = n_terminating
        plan.status = status

    def drop_active(reason_pods: list[Obj]) -> None:
        for p in reason_pods:
            plan.delete.append(p)

    if is_finished(job):
        # A finished Job only lets go of its pods.
        plan.finalize += [p for p in pods if _has_fin(p) and p not in plan.finalize]
        finish_status(active, len(terminating))
        return plan

    if spec.get("suspend"):
        drop_active(active)
        if not cond_true(status, "Suspended"):
            _set_cond(status, "Suspended", True, "JobSuspended", "Job suspended", stamp)
            plan.events.append(("Normal", "Suspended", "Job suspended"))
        finish_status([], len(terminating) + len(active))
        return plan
    if cond_true(status, "Suspended"):
        _set_cond(status, "Suspended", False, "JobResumed", "Job resumed", stamp)
        plan.events.append(("Normal", "Resumed", "Job resumed"))
        status["startTime"] = stamp  # resuming restarts the activeDeadlineSeconds clock
        started_at = now
    if not status.get("startTime"):
        status["startTime"] = stamp
        started_at = now

    # --- failure: FailureTarget first, Failed once no pod is left running
    target = cond(status, "FailureTarget")
    reason = message = None
    if target and target.get("status") == "True":
        reason, message = target.get("reason"), target.get("message")
    else:
        restarts = 0
        if (spec.get("template") or {}).get("spec", {}).get("restartPolicy") == "OnFailure":
            restarts = sum(_restarts(p) for p in active)
        if failed + restarts > backoff_limit:
            reason, message = "BackoffLimitExceeded", "Job has reached the specified backoff limit"
        else:
            deadline = spec.get("activeDeadlineSeconds")
            started = parse_time(status.get("startTime"))
            if started_at is not None and started is not None and abs(started_at - started) < 1.0:
                started = started_at
            if deadline is not None and started is not None:
                left = deadline - (now - started) * time_scale
                if left <= 0:
                    reason, message = "DeadlineExceeded", "Job was active longer than specified deadline"
                else:
                    plan.requeue_after = left
    if reason:
        if _set_cond(status, "FailureTarget", True, reason, message or "", stamp):
            plan.events.append(("Warning", reason, message or ""))
        # Pods killed because the Job failed are counted as failed (every non-terminated pod is).
        for p in active:
            plan.delete.append(p)
        status["failed"] = failed = failed + len(active)
        plan.counted += [p["metadata"]["uid"] for p in active]
        plan.finalize += [p for p in terminating if _has_fin(p) and p not in plan.finalize]
        if not active and not terminating:
            _set_cond(status, "Failed", True, reason, message or "", stamp)
        plan.requeue_after = None
        finish_status([], len(terminating) + len(active))
        return plan

    # --- success: SuccessCriteriaMet first, Complete once no pod is left running
    if completions is None:
        done = succeeded > 0 and not active
    else:
        done = succeeded >= completions
    if done or cond_true(status, "SuccessCriteriaMet"):
        _set_cond(
            status,
            "SuccessCriteriaMet",
            True,
            "CompletionsReached",
            "Reached expected number of succeeded pods",
            stamp,
        )
        drop_active(active)
        if not active and not terminating:
            _set_cond(
                status,
                "Complete",
                True,
                "CompletionsReached",
                "Reached expected number of succeeded pods",
                stamp,
            )
            status["completionTime"] = stamp
            plan.events.append(("Normal", "Completed", "Job completed"))
        plan.requeue_after = None
        finish_status([], len(terminating) + len(active))
        return plan

    if deleting_job:
        finish_status(active, len(terminating))
        return plan

    # --- manage the number of active pods
    blocking = terminating if replace_failed_only else []
    in_backoff = backoff_until is not None and backoff_until > now
    if indexed:
        seen: dict[int, Obj] = {}
        keep: list[Obj] = []
        for p in sorted(active, key=lambda x: x["metadata"].get("creationTimestamp") or ""):
            i = completion_index(p)
            if i is None or i >= (completions or 0) or i in completed or i in seen:
                plan.delete.append(p)  # duplicate, out of range or already succeeded
                continue
            seen[i] = p
            keep.append(p)
        busy = set(seen) | {completion_index(p) for p in blocking}
        room = parallelism - len(keep) - len(blocking)
        if room < 0:
            extra = sorted(keep, key=lambda x: -(completion_index(x) or 0))[:-room]
            plan.delete += extra
            keep = [p for p in keep if p not in extra]
        elif room > 0 and not in_backoff:
            for i in range(completions or 0):
                if room <= 0:
                    break
                if i in completed or i in busy:
                    continue
                plan.create.append(i)
                room -= 1
        active_after = keep
    else:
        if completions is None:
            want = parallelism if succeeded == 0 else len(active)
        else:
            want = min(parallelism, completions - succeeded)
        diff = len(active) + len(blocking) - want
        active_after = list(active)
        if diff > 0:
            extra = sorted(active, key=deletion_rank)[:diff]
            plan.delete += extra
            active_after = [p for p in active if p not in extra]
        elif diff < 0 and not in_backoff:
            plan.create = [None] * (-diff)
    if in_backoff and (plan.requeue_after is None or backoff_until - now < plan.requeue_after):  # type: ignore[operator]
        plan.requeue_after = max(0.001, (backoff_until - now) * time_scale)  # type: ignore[operator]
    deleted = [p for p in plan.delete if p in active]
    finish_status(active_after, len(terminating) + len(deleted))
    status["active"] = len(active_after) + len(plan.create)
    return plan


def job_pod(job: Obj, index: int | None) -> Obj:
    """A pod for ``job`` from its template (pkg/controller/controller_utils.go GetPodFromTemplate + the Job
    controller's index decorations)."""
    md = job["metadata"]
    name, uid = md["name"], md["uid"]
    template = copy.deepcopy((job.get("spec") or {}).get("template") or {})
    tmd = template.get("metadata") or {}
    labels = dict(tmd.get("labels") or {})
    labels.setdefault(LABEL_CONTROLLER_UID, uid)
    labels.setdefault(LABEL_JOB_NAME, name)
    labels.setdefault("controller-uid", uid)
    labels.setdefault("job-name", name)
    annotations = dict(tmd.get("annotations") or {})
    spec = template.get("spec") or {}
    if index is not None:
        labels[names.LABEL_JOB_COMPLETION_INDEX] = str(index)
        annotations[names.ANNOTATION_JOB_COMPLETION_INDEX] = str(index)
        if not spec.get("hostname"):
            spec["hostname"] = f"{name}-{index}"
        env_var = {
            "name": "JOB_COMPLETION_INDEX",
            "valueFrom": {
                "fieldRef": {
                    "apiVersion": "v1",
                    "fieldPath": f"metadata.annotations['{names.ANNOTATION_JOB_COMPLETION_INDEX}']",
                }
            },
        }
        for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
            env = c.setdefault("env", [])
            if not any(e.get("name") == "JOB_COMPLETION_INDEX" for e in env):
                env.append(dict(env_var))
    pmd: Obj = {
        "generateName": f"{name}-" if index is None else f"{name}-{index}-",
        "namespace": md.get("namespace"),
        "labels": labels,
        "finalizers": [*(tmd.get("finalizers") or []), JOB_TRACKING_FINALIZER],
        "ownerReferences": [
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "name": name,
                "uid": uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }
    if annotations:
        pmd["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pmd, "spec": spec}


# ----------------------------------------------------------------------------------------- the shell
class JobController(Controller):
    name = "job-controller"
    workers = 4

    def __init__(
        self,
        client: Any,
        timers: Timers,
        clock: SimClock,
        jobs: Informer,
        pods: Informer,
        events: EventRecorder,
    ):
        super().__init__(client, timers)
        self.clock = clock
        self.jobs = jobs
        self.pods = pods
        self.events = events
        self._counted: dict[str, set[str]] = {}  # job uid -> pod uids already in status
        self._backoff: dict[str, tuple[int, float]] = {}  # job uid -> (consecutive failures, until)
        self._started: dict[str, float] = {}  # job uid -> precise startTime (the timestamp keeps seconds)
        pods.add_index("job-owner", _job_owner_keys)
        jobs.add_handler(self._on_job)
        pods.add_handler(self._on_pod)

    def _on_job(self, typ: str, old: Obj | None, new: Obj | None) -> None:
        obj = new or old
        if obj is not None:
            md = obj["metadata"]
            self.queue.add((md.get("namespace", ""), md["name"]))
            if new is None:
                self._counted.pop(md["uid"], None)
                self._backoff.pop(md["uid"], None)
                self._started.pop(md["uid"], None)

    def _on_pod(self, typ: str, old: Obj | None, new: Obj | None) -> None:
        obj = new or old
        ref = controller_ref(obj) if obj else None
        if ref is None or ref.get("kind") != "Job":
            return
        self.queue.add((obj["metadata"].get("namespace", ""), ref["name"]))  # type: ignore[index]
        if new is None:
            s = self._counted.get(ref.get("uid", ""))
            if s is not None:
                s.discard(obj["metadata"]["uid"])  # type: ignore[index]

    async def reconcile(self, key: tuple[str, str]) -> None:
        ns, name = key
        job = self.jobs.get(ns, name)
        owned = self.pods.by_index("job-owner", f"{ns}/{name}")
        if (
            job is None
            or (job.get("spec") or {}).get("managedBy", JOB_CONTROLLER_NAME) != JOB_CONTROLLER_NAME
        ):
            if job is None:
                # pods of a Job that is gone keep no finalizer (orphan pod handling in the real controller)
                await self._remove_finalizers([p for p in owned if _has_fin(p)])
            return
        uid = job["metadata"]["uid"]
        pods = [p for p in owned if (controller_ref(p) or {}).get("uid") == uid]
        await self._remove_finalizers([p for p in owned if p not in pods and _has_fin(p)])
        counted = self._counted.setdefault(uid, set())
        failures, until = self._backoff.get(uid, (0, 0.0))
        now = self.clock.now()
        plan = plan_job(job, pods, now, self.clock.time_scale, until or None, counted, self._started.get(uid))
        if plan.status.get("startTime") and plan.status.get("startTime") != (job.get("status") or {}).get(
            "startTime"
        ):
            self._started[uid] = now
        if plan.new_successes:
            failures, until = 0, 0.0
        if plan.new_failures:
            failures += plan.new_failures
            until = now + self.clock.real(min(BACKOFF_BASE_S * 2 ** (failures - 1), BACKOFF_MAX_S))
        self._backoff[uid] = (failures, until)
        if plan.create and until > now:
            plan.requeue_after = self.clock.sim(until - now)
            plan.status["active"] = plan.status.get("active", 0) - len(plan.create)
            plan.create = []
        # 1. new pods (manageJob), so that status.active counts only those the API accepted
        if plan.create:
            results = await asyncio.gather(
                *(self._create_pod(job, i) for i in plan.create), return_exceptions=True
            )
            errors = [r for r in results if isinstance(r, BaseException)]
            if errors:
                plan.status["active"] = plan.status.get("active", 0) - len(errors)
                self.queue.add_rate_limited(key)
        # 2. status before the finalizers go (its counts include the pods about to lose theirs)
        if plan.status != (job.get("status") or {}):
            body = dict(job)
            body["status"] = plan.status
            updated = await self.client.update(R.JOBS, body, namespace=ns, subresource="status")
            self.jobs.observe(updated)
        counted.update(plan.counted)
        # 3. finished pods let go; surplus / suspended pods deleted (finalizer first: not failures)
        await self._remove_finalizers(plan.finalize)
        for p in plan.delete:
            await self._delete_pod(job, p)
        for typ, reason, message in plan.events:
            await self.events.record(job, typ, reason, message, "job-controller")
        if plan.requeue_after is not None:
            self.queue.add_after(key, plan.requeue_after + 0.001)

    async def _remove_finalizers(self, pods: list[Obj]) -> None:
        # removeTrackingFinalizerPatch: a strategic merge patch deleting just our finalizer
        patch = {"metadata": {"$deleteFromPrimitiveList/finalizers": [JOB_TRACKING_FINALIZER]}}
        for p in pods:
            cur = self.pods.get(p["metadata"].get("namespace", ""), p["metadata"]["name"])
            if cur is None or cur["metadata"]["uid"] != p["metadata"]["uid"] or not _has_fin(cur):
                continue
            try:
                out = await self.client.patch(
                    R.PODS,
                    p["metadata"]["name"],
                    patch,
                    namespace=p["metadata"].get("namespace"),
                    patch_type="strategic",
                )
                self.pods.observe(out)
            except APIError as exc:
                if exc.code not in (404, 409, 422):
                    raise

    async def _delete_pod(self, job: Obj, pod: Obj) -> None:
        if _has_fin(pod):
            await self._remove_finalizers([pod])
        md = pod["metadata"]
        try:
            out = await self.client.delete(
                R.PODS, md["name"], namespace=md.get("namespace"), preconditions={"uid": md["uid"]}
            )
            self.pods.observe_deleted(out)
            await self.events.record(
                job, "Normal", "SuccessfulDelete", f"Deleted pod: {md['name']}", "job-controller"
            )
        except APIError as exc:
            if exc.code not in (404, 409):
                raise

    async def _create_pod(self, job: Obj, index: int | None) -> None:
        await create_pod(self.client, self.pods, self.events, job, job_pod(job, index), "job-controller")


def _job_owner_keys(pod: Obj) -> list[str]:
    ref = controller_ref(pod)
    if ref is None or ref.get("kind") != "Job":
        return []
    return [f"{pod['metadata'].get('namespace', '')}/{ref['name']}"]
