"""The JobSet controller, after kubernetes-sigs/jobset pkg/controllers/jobset_controller.go (v0.8-0.10).

:func:`plan_jobset` is the pure decision (a JobSet and its child Jobs in, a :class:`JobSetPlan` out);
:class:`JobSetController` carries it out through ``api.client``, so the child Jobs (and, through the Job
controller, their pods) pass admission like a real controller's.

What a scheduler sees, as the real controller does it:
- one child Job per replica of each replicated job, named ``<jobset>-<replicatedJob>-<index>``
  (placement.GenJobName), owned by the JobSet (controller: true), created with ``spec.suspend`` equal to
  the JobSet's (constructJob);
- the Jobs and their pod templates (so every pod) carry the ``jobset.sigs.k8s.io/*`` labels and the same
  keys as annotations: jobset-name, replicatedjob-name, replicatedjob-replicas, global-replicas, job-index,
  job-global-index, job-key (sha1 of ``<namespace>/<job>``) and restart-attempt (labelAndAnnotateObject);
- ``spec.suspend`` true suspends the active child Jobs and sets condition Suspended (reason SuspendedJobs);
  false resumes them (the pod template's labels, annotations, nodeSelector, tolerations and scheduling gates
  merged in from the replicated job first, resumeJob) and flips Suspended to False (ResumeJobs);
- Completed (AllJobsCompleted) once the success policy holds (default: every Job of every replicated job
  complete; ``Any``: one), Failed when a Job fails: at once without a failure policy (FailedJobs), else by
  its rules (FailJobSet; RestartJobSet up to ``maxRestarts``, then ReachedMaxRestarts;
  RestartJobSetAndIgnoreMaxRestarts). A restart bumps status.restarts: the Jobs of the previous attempt are
  deleted (foreground) and recreated with restart-attempt + 1; BlockingRecreate waits for all of them to go.
  A finished JobSet deletes its still-active Jobs;
- status.replicatedJobsStatus (ready/succeeded/failed/active/suspended Jobs per replicated job),
  status.restarts, restartsCountTowardsMax, terminalState;
- startupPolicy InOrder: a replicated job's Jobs are created (and resumed) only once every Job of the one
  before is ready (StartupPolicyInProgress, then StartupPolicyCompleted);
- a replicated job with ``dependsOn`` gets its Jobs only once the one it names has all its Jobs ready
  (status Ready) or succeeded (Complete) (depends_on.go);
- network.enableDNSHostnames (default true): a headless Service named after the subdomain (default: the
  JobSet's name) and the pod template's subdomain;
- ttlSecondsAfterFinished: the finished JobSet is deleted (foreground) that many simulated seconds after it
  finished (ttl_after_finished.go).
The JobSet webhook's defaults are applied when reading the spec (jobset_webhook.go Default): successPolicy
All, startupPolicy AnyOrder, child Jobs Indexed, pod restartPolicy OnFailure, DNS hostnames on.
Not modelled: coordinator, exclusive placement, groups, the RestartJob actions (they restart the whole set
here), InPlaceRestart, volumeClaimPolicies, activeDeadlineSeconds, the pod webhooks.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
from dataclasses import dataclass, field
from typing import Any

from fluxqueue.log import get_logger
from fluxqueue.sim.apiserver import APIError
from fluxqueue.sim.apiserver import resources as R

from ..clock import Timers, rfc3339
from .base import Informer, Obj, OwnerController
from .events import EventRecorder
from .job import cond_true
from .templates import owner_reference
from .thirdparty_crds import JOBSET_API_VERSION, JOBSETS

log = get_logger(__name__)

PREFIX = "jobset.sigs.k8s.io/"
LABEL_JOBSET_NAME = PREFIX + "jobset-name"
LABEL_REPLICATED_JOB_NAME = PREFIX + "replicatedjob-name"
LABEL_REPLICATED_JOB_REPLICAS = PREFIX + "replicatedjob-replicas"
LABEL_GLOBAL_REPLICAS = PREFIX + "global-replicas"
LABEL_JOB_INDEX = PREFIX + "job-index"
LABEL_JOB_GLOBAL_INDEX = PREFIX + "job-global-index"
LABEL_JOB_KEY = PREFIX + "job-key"
LABEL_RESTART_ATTEMPT = PREFIX + "restart-attempt"  # pkg/constants RestartsKey
CONTROLLER_NAME = "jobset.sigs.k8s.io/jobset-controller"  # spec.managedBy reserved value
COMPONENT = "jobset"

# Condition types (api/jobset/v1alpha2 JobSetConditionType) and reasons/messages (pkg/constants).
COMPLETED, FAILED, SUSPENDED = "Completed", "Failed", "Suspended"
STARTUP_IN_PROGRESS, STARTUP_COMPLETED = "StartupPolicyInProgress", "StartupPolicyCompleted"
_COMPLETED = ("AllJobsCompleted", "jobset completed successfully")
_SUSPENDED = ("SuspendedJobs", "jobset is suspended")
_RESUMED = ("ResumeJobs", "jobset is resumed")
_FAILED_JOBS = ("FailedJobs", "jobset failed due to one or more job failures")
_MAX_RESTARTS = ("ReachedMaxRestarts", "jobset failed due to reaching max number of restarts")
_FAIL_ACTION = ("FailJobSetFailurePolicyAction", "applying FailJobSet failure policy action")
_RESTART_ACTION = ("RestartJobSetFailurePolicyAction", "applying RestartJobSet failure policy action")
_RESTART_IGNORE_ACTION = (
    "RestartJobSetAndIgnoreMaxRestartsFailurePolicyAction",
    "applying RestartJobSetAndIgnoreMaxRestarts failure policy action",
)
_IN_PROGRESS = ("InOrderStartupPolicyInProgress", "in order startup policy is in progress")
_STARTUP_DONE = ("InOrderStartupPolicyCompleted", "in order startup policy has completed")


@dataclass
class JobSetPlan:
    create: list[Obj] = field(default_factory=list)  # child Job bodies
    delete: list[Obj] = field(default_factory=list)  # child Jobs deleted in the foreground
    suspend: list[Obj] = field(default_factory=list)  # child Jobs to suspend
    resume: list[Obj] = field(default_factory=list)  # child Jobs to resume
    service: Obj | None = None  # the headless Service to have
    status: Obj = field(default_factory=dict)
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)


# ----------------------------------------------------------------------------------------- pure helpers
def defaulted_spec(jobset: Obj) -> Obj:
    """The spec with the JobSet webhook's defaults (jobset_webhook.go Default), which the emulator does not
    run as a webhook."""
    spec = copy.deepcopy(jobset.get("spec") or {})
    spec.setdefault("successPolicy", {"operator": "All"})
    spec.setdefault("startupPolicy", {"startupPolicyOrder": "AnyOrder"})
    for rjob in spec.setdefault("replicatedJobs", []):
        rjob.setdefault("replicas", 1)
        jspec = rjob.setdefault("template", {}).setdefault("spec", {})
        jspec.setdefault("completionMode", "Indexed")
        pspec = jspec.setdefault("template", {}).setdefault("spec", {})
        if not pspec.get("restartPolicy"):
            pspec["restartPolicy"] = "OnFailure"
    network = spec.setdefault("network", {})
    network.setdefault("enableDNSHostnames", True)
    network.setdefault("publishNotReadyAddresses", True)
    return spec


def child_job_name(jobset: str, rjob: str, index: int) -> str:
    return f"{jobset}-{rjob}-{index}"  # pkg/util/placement GenJobName


def job_key(namespace: str, job: str) -> str:
    return hashlib.sha1(f"{namespace}/{job}".encode()).hexdigest()  # jobHashKey


def subdomain(jobset: Obj, spec: Obj) -> str:
    return (spec.get("network") or {}).get("subdomain") or jobset["metadata"]["name"]


def is_finished(jobset: Obj) -> bool:
    st = jobset.get("status") or {}
    return _true(st, COMPLETED) or _true(st, FAILED)


def _true(status: Obj, typ: str) -> bool:
    return any(c.get("type") == typ and c.get("status") == "True" for c in status.get("conditions") or [])


def _job_finished(job: Obj) -> str | None:
    """JobFinished: "Complete" or "Failed" once that condition is True."""
    st = job.get("status") or {}
    for typ in ("Complete", "Failed"):
        if cond_true(st, typ):
            return typ
    return None


def _int(text: Any, default: int = 0) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        return default


def job_identity(jobset: Obj, spec: Obj, rjob: Obj, index: int, restarts: int) -> dict[str, str]:
    """The labels (and, identically, annotations) of a child Job and its pods (labelAndAnnotateObject)."""
    md = jobset["metadata"]
    name = child_job_name(md["name"], rjob["name"], index)
    rjobs = spec.get("replicatedJobs") or []
    before = 0
    for r in rjobs:
        if r["name"] == rjob["name"]:
            break
        before += r.get("replicas", 1)
    return {
        LABEL_JOBSET_NAME: md["name"],
        LABEL_REPLICATED_JOB_NAME: rjob["name"],
        LABEL_RESTART_ATTEMPT: str(restarts),
        LABEL_REPLICATED_JOB_REPLICAS: str(rjob.get("replicas", 1)),
        LABEL_GLOBAL_REPLICAS: str(sum(r.get("replicas", 1) for r in rjobs)),
        LABEL_JOB_INDEX: str(index),
        LABEL_JOB_KEY: job_key(md.get("namespace") or "", name),
        LABEL_JOB_GLOBAL_INDEX: str(before + index),
    }


def child_job(jobset: Obj, spec: Obj, rjob: Obj, index: int, restarts: int) -> Obj:
    """constructJob: the replicated job's template, labelled and annotated, owned by the JobSet."""
    md = jobset["metadata"]
    template = copy.deepcopy(rjob.get("template") or {})
    tmd = template.get("metadata") or {}
    ident = job_identity(jobset, spec, rjob, index, restarts)
    jspec = template.get("spec") or {}
    pod = jspec.setdefault("template", {})
    pmd = pod.setdefault("metadata", {})
    pmd["labels"] = {**(pmd.get("labels") or {}), **ident}
    pmd["annotations"] = {**(pmd.get("annotations") or {}), **ident}
    if (spec.get("network") or {}).get("enableDNSHostnames"):
        pod.setdefault("spec", {})["subdomain"] = subdomain(jobset, spec)
    jspec["suspend"] = bool(spec.get("suspend"))
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": child_job_name(md["name"], rjob["name"], index),
            "namespace": md.get("namespace"),
            "labels": {**(tmd.get("labels") or {}), **ident},
            "annotations": {**(tmd.get("annotations") or {}), **ident},
            "ownerReferences": [
                owner_reference({**jobset, "apiVersion": JOBSET_API_VERSION, "kind": "JobSet"})
            ],
        },
        "spec": jspec,
    }


def headless_service(jobset: Obj, spec: Obj) -> Obj:
    """createHeadlessSvcIfNecessary: selects every pod of the JobSet."""
    md = jobset["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": subdomain(jobset, spec),
            "namespace": md.get("namespace"),
            "ownerReferences": [
                owner_reference({**jobset, "apiVersion": JOBSET_API_VERSION, "kind": "JobSet"})
            ],
        },
        "spec": {
            "clusterIP": "None",
            "selector": {LABEL_JOBSET_NAME: md["name"]},
            "publishNotReadyAddresses": bool(
                (spec.get("network") or {}).get("publishNotReadyAddresses", True)
            ),
        },
    }


def set_condition(
    status: Obj,
    typ: str,
    value: bool,
    reason_message: tuple[str, str],
    now: str,
    events: list[tuple[str, str, str]],
    event_type: str = "Normal",
) -> bool:
    """updateCondition: a condition of a new status replaces the old one; a False condition is only written
    over an existing one; InProgress and Completed of the startup policy exclude each other. An Event with
    the condition's reason and message goes with every change (setCondition)."""
    reason, message = reason_message
    want = "True" if value else "False"
    conds = status.setdefault("conditions", [])
    changed = found = False
    exclusive = {STARTUP_IN_PROGRESS: STARTUP_COMPLETED, STARTUP_COMPLETED: STARTUP_IN_PROGRESS}
    for i, c in enumerate(conds):
        if c.get("type") == typ:
            found = True
            if c.get("status") != want:
                conds[i] = _condition(typ, want, reason, message, now)
                changed = True
        elif exclusive.get(typ) == c.get("type") and c.get("status") == "True" and value:
            c["status"] = "False"
            changed = True
    if not found and value:
        conds.append(_condition(typ, want, reason, message, now))
        changed = True
    if changed:
        events.append((event_type, reason, message))
    return changed


def _condition(typ: str, status: str, reason: str, message: str, now: str) -> Obj:
    return {"type": typ, "status": status, "reason": reason, "message": message, "lastTransitionTime": now}


def replicated_jobs_status(
    spec: Obj, active: list[Obj], succeeded: list[Obj], failed: list[Obj]
) -> list[Obj]:
    """calculateReplicatedJobStatuses: a child Job is ready when its ready + succeeded pods reach
    min(parallelism, completions); active when it has an active pod."""
    counts = {
        r["name"]: {"name": r["name"], "ready": 0, "succeeded": 0, "failed": 0, "active": 0, "suspended": 0}
        for r in spec.get("replicatedJobs") or []
    }

    def entry(job: Obj) -> Obj | None:
        return counts.get((job["metadata"].get("labels") or {}).get(LABEL_REPLICATED_JOB_NAME, ""))

    for job in active:
        c = entry(job)
        if c is None:
            continue
        jspec, jst = job.get("spec") or {}, job.get("status") or {}
        pods = jspec.get("parallelism", 1)
        if jspec.get("completions") is not None and jspec["completions"] < pods:
            pods = jspec["completions"]
        if jst.get("succeeded", 0) + jst.get("ready", 0) >= pods:
            c["ready"] += 1
        if jst.get("active", 0) > 0:
            c["active"] += 1
        if jspec.get("suspend"):
            c["suspended"] += 1
    for job in succeeded:
        if (c := entry(job)) is not None:
            c["succeeded"] += 1
    for job in failed:
        if (c := entry(job)) is not None:
            c["failed"] += 1
    return list(counts.values())


def _failure_time(job: Obj) -> str:
    c = next((c for c in (job.get("status") or {}).get("conditions") or [] if c.get("type") == "Failed"), {})
    return c.get("lastTransitionTime") or ""


def _failure_reason(job: Obj) -> str:
    c = next((c for c in (job.get("status") or {}).get("conditions") or [] if c.get("type") == "Failed"), {})
    return c.get("reason") or ""


def _first_failed(jobs: list[Obj]) -> Obj:
    return min(jobs, key=lambda j: (_failure_time(j), j["metadata"]["name"]))


def _apply_failure_policy(spec: Obj, status: Obj, failed: list[Obj], plan: JobSetPlan, now: str) -> None:
    """executeFailurePolicy (failure_policy.go): the first rule matching a failed Job's reason and replicated
    job decides; no rule matching means RestartJobSet; no failure policy means the JobSet fails."""
    policy = spec.get("failurePolicy")

    def fail(reason_message: tuple[str, str], job: Obj) -> None:
        reason, message = reason_message
        message = f"{message} (first failed job: {job['metadata']['name']})"
        set_condition(status, FAILED, True, (reason, message), now, plan.events, "Warning")
        status["terminalState"] = FAILED

    if policy is None:
        fail(_FAILED_JOBS, _first_failed(failed))
        return
    action, job = "RestartJobSet", _first_failed(failed)
    for rule in policy.get("rules") or []:
        matching = [
            j
            for j in failed
            if (not rule.get("onJobFailureReasons") or _failure_reason(j) in rule["onJobFailureReasons"])
            and (
                not rule.get("targetReplicatedJobs")
                or (j["metadata"].get("labels") or {}).get(LABEL_REPLICATED_JOB_NAME)
                in rule["targetReplicatedJobs"]
            )
        ]
        if matching:
            action, job = rule.get("action") or "RestartJobSet", _first_failed(matching)
            break
    if action == "FailJobSet":
        fail(_FAIL_ACTION, job)
        return
    counts = action != "RestartJobSetAndIgnoreMaxRestarts"
    if counts and status.get("restartsCountTowardsMax", 0) >= policy.get("maxRestarts", 0):
        fail(_MAX_RESTARTS, job)
        return
    # failurePolicyRecreateAll: the next pass deletes this attempt's Jobs and recreates them
    status["restarts"] = status.get("restarts", 0) + 1
    if counts:
        status["restartsCountTowardsMax"] = status.get("restartsCountTowardsMax", 0) + 1
    reason, message = _RESTART_ACTION if counts else _RESTART_IGNORE_ACTION
    plan.events.append(("Warning", reason, f"{message} (first failed job: {job['metadata']['name']})"))


def _all_started(rjob: Obj, st: Obj) -> bool:
    return rjob.get("replicas", 1) == st["failed"] + st["ready"] + st["succeeded"]  # allReplicasStarted


def _dependencies_reached(rjob: Obj, spec: Obj, statuses: dict[str, Obj]) -> bool:
    """dependencyReachedStatus (depends_on.go): every replicated job this one depends on has all its Jobs
    succeeded (status Complete) or ready, succeeded or failed (status Ready)."""
    replicas = {r["name"]: r.get("replicas", 1) for r in spec.get("replicatedJobs") or []}
    for dep in rjob.get("dependsOn") or []:
        st = statuses.get(dep.get("name", ""))
        if st is None:
            return False
        if dep.get("status") == "Complete" and replicas.get(dep["name"]) != st["succeeded"]:
            return False
        if (
            dep.get("status") == "Ready"
            and replicas.get(dep["name"]) != st["failed"] + st["ready"] + st["succeeded"]
        ):
            return False
    return True


def plan_jobset(jobset: Obj, jobs: list[Obj], now: str | None = None) -> JobSetPlan:
    """What the JobSet controller does next for ``jobset`` given the Jobs it controls (pure)."""
    now = now or rfc3339()
    spec = defaulted_spec(jobset)
    status = copy.deepcopy(jobset.get("status") or {})
    status.setdefault("restarts", 0)
    restarts = status["restarts"]
    plan = JobSetPlan(status=status)
    previous: list[Obj] = []
    active: list[Obj] = []
    succeeded: list[Obj] = []
    failed: list[Obj] = []
    for job in jobs:
        attempt = _int((job["metadata"].get("labels") or {}).get(LABEL_RESTART_ATTEMPT), -1)
        if attempt < restarts:
            previous.append(job)  # a Job of an earlier attempt: deleted before its name is reused
            continue
        {None: active, "Complete": succeeded, "Failed": failed}[_job_finished(job)].append(job)
    statuses = replicated_jobs_status(spec, active, succeeded, failed)
    status["replicatedJobsStatus"] = statuses
    by_name = {s["name"]: s for s in statuses}

    def delete(js: list[Obj]) -> None:
        plan.delete += [j for j in js if not j["metadata"].get("deletionTimestamp")]

    if is_finished(jobset):
        delete(active)
        return plan
    delete(previous)
    if failed:
        _apply_failure_policy(spec, status, failed, plan, now)
        return plan
    if succeeded:
        policy = spec["successPolicy"]
        targets = policy.get("targetReplicatedJobs") or []

        def targeted(name: str) -> bool:
            return not targets or name in targets

        done = sum(
            1
            for j in succeeded
            if targeted((j["metadata"].get("labels") or {}).get(LABEL_REPLICATED_JOB_NAME))
        )
        expected = (
            1
            if policy.get("operator") == "Any"
            else sum(r.get("replicas", 1) for r in spec["replicatedJobs"] if targeted(r["name"]))
        )
        if done >= expected:
            set_condition(status, COMPLETED, True, _COMPLETED, now, plan.events)
            status["terminalState"] = COMPLETED
            return plan
    if spec["network"].get("enableDNSHostnames"):
        plan.service = headless_service(jobset, spec)

    suspended = bool(spec.get("suspend"))
    in_order = spec["startupPolicy"].get("startupPolicyOrder") == "InOrder"
    # reconcileReplicatedJobs: create the Jobs that do not exist (under any attempt)
    existing = {j["metadata"]["name"] for j in jobs}
    blocking = (
        bool(previous) and (spec.get("failurePolicy") or {}).get("restartStrategy") == "BlockingRecreate"
    )
    waiting = False
    for rjob in spec["replicatedJobs"]:
        if not _dependencies_reached(rjob, spec, by_name):
            continue
        if not suspended and in_order and _all_started(rjob, by_name[rjob["name"]]):
            continue
        if not blocking:
            for i in range(rjob.get("replicas", 1)):
                if child_job_name(jobset["metadata"]["name"], rjob["name"], i) not in existing:
                    plan.create.append(child_job(jobset, spec, rjob, i, restarts))
        if not suspended and in_order:
            set_condition(status, STARTUP_IN_PROGRESS, True, _IN_PROGRESS, now, plan.events)
            waiting = True
            break
    if not suspended and in_order and not waiting:
        set_condition(status, STARTUP_COMPLETED, True, _STARTUP_DONE, now, plan.events)

    if suspended:
        plan.suspend = [j for j in active if not (j.get("spec") or {}).get("suspend")]
        set_condition(status, SUSPENDED, True, _SUSPENDED, now, plan.events)
        return plan
    # resumeJobsIfNecessary
    for rjob in spec["replicatedJobs"]:
        if not _dependencies_reached(rjob, spec, by_name):
            continue
        if in_order and _all_started(rjob, by_name[rjob["name"]]):
            continue
        plan.resume += [
            j
            for j in active
            if (j.get("spec") or {}).get("suspend")
            and (j["metadata"].get("labels") or {}).get(LABEL_REPLICATED_JOB_NAME) == rjob["name"]
        ]
        if in_order:
            set_condition(status, STARTUP_IN_PROGRESS, True, _IN_PROGRESS, now, plan.events)
            return plan
    set_condition(status, SUSPENDED, False, _RESUMED, now, plan.events)
    return plan


def resumed_job(job: Obj, rjob: Obj | None) -> Obj:
    """resumeJob: the replicated job's pod template labels, annotations, nodeSelector, tolerations and
    scheduling gates merged into the Job's (a scheduler may have changed them while it was suspended)."""
    body = copy.deepcopy(job)
    body["spec"]["suspend"] = False
    if rjob is None:
        return body
    src = ((rjob.get("template") or {}).get("spec") or {}).get("template") or {}
    dst = body["spec"].setdefault("template", {})
    smd, dmd = src.get("metadata") or {}, dst.setdefault("metadata", {})
    for key in ("labels", "annotations"):
        if smd.get(key):
            dmd[key] = {**(dmd.get(key) or {}), **smd[key]}
    sspec, dspec = src.get("spec") or {}, dst.setdefault("spec", {})
    if sspec.get("nodeSelector"):
        dspec["nodeSelector"] = {**(dspec.get("nodeSelector") or {}), **sspec["nodeSelector"]}
    for key in ("tolerations", "schedulingGates"):
        extra = [x for x in sspec.get(key) or [] if x not in (dspec.get(key) or [])]
        if extra:
            dspec[key] = [*(dspec.get(key) or []), *extra]
    return body


# ----------------------------------------------------------------------------------------- the shell
class JobSetController(OwnerController):
    name = "jobset-controller"
    workers = 2
    owner_resource = JOBSETS
    child_resource = R.JOBS

    def __init__(self, client: Any, timers: Timers, jobsets: Informer, jobs: Informer, events: EventRecorder):
        super().__init__(client, timers, jobsets, jobs)
        self.events = events
        self._services: set[str] = set()  # JobSet uids whose headless Service exists
        self._finished: dict[str, float] = {}  # JobSet uid -> when it was seen finished (sub-second)

    def _on_owner(self, typ: str, old: Obj | None, new: Obj | None) -> None:
        super()._on_owner(typ, old, new)
        if new is None and old is not None:
            self._services.discard(old["metadata"]["uid"])
            self._finished.pop(old["metadata"]["uid"], None)

    async def reconcile(self, key: tuple[str, str]) -> None:
        ns, name = key
        js = self.owners.get(ns, name)
        if js is None or js["metadata"].get("deletionTimestamp"):
            return
        if (js.get("spec") or {}).get("managedBy", CONTROLLER_NAME) != CONTROLLER_NAME:
            return  # managedByExternalController
        js = {**js, "apiVersion": JOBSET_API_VERSION, "kind": "JobSet"}
        plan = plan_jobset(js, self.owned(js))
        for job in plan.delete:
            await self._delete_job(job)
        if plan.service is not None and js["metadata"]["uid"] not in self._services:
            await self._ensure_service(js, plan.service)
            self._services.add(js["metadata"]["uid"])
        if plan.create:
            results = await asyncio.gather(
                *(self._create_job(js, j) for j in plan.create), return_exceptions=True
            )
            if any(isinstance(r, BaseException) for r in results):
                self.queue.add_rate_limited(key)
        for job in plan.suspend:
            body = copy.deepcopy(job)
            body["spec"]["suspend"] = True
            self.children.observe(await self.client.update(R.JOBS, body, namespace=ns))
        rjobs = {r["name"]: r for r in (js.get("spec") or {}).get("replicatedJobs") or []}
        for job in plan.resume:
            await self._resume_job(
                job, rjobs.get((job["metadata"].get("labels") or {}).get(LABEL_REPLICATED_JOB_NAME))
            )
        await self.write_status(js, plan.status)
        for typ, reason, message in plan.events:
            await self.events.record(js, typ, reason, message, COMPONENT)
        if is_finished({"status": plan.status}):
            await self._ttl_after_finished(js, key)

    async def _ttl_after_finished(self, js: Obj, key: tuple[str, str]) -> None:
        """executeTTLAfterFinishedPolicy: delete the JobSet (foreground) once its TTL has run out."""
        ttl = (js.get("spec") or {}).get("ttlSecondsAfterFinished")
        if ttl is None:
            return
        clock = self.timers.clock
        uid = js["metadata"]["uid"]
        done = self._finished.setdefault(uid, clock.now())
        left = ttl - (clock.now() - done) * clock.time_scale
        if left > 0:
            self.queue.add_after(key, left + 0.001)
            return
        try:
            await self.client.delete(
                JOBSETS,
                key[1],
                namespace=key[0],
                propagation_policy="Foreground",
                preconditions={"uid": uid},
            )
        except APIError as exc:
            if exc.code not in (404, 409):
                raise

    async def _create_job(self, js: Obj, body: Obj) -> None:
        try:
            job = await self.client.create(R.JOBS, body, namespace=js["metadata"].get("namespace"))
        except APIError as exc:
            if exc.code != 409:
                await self.events.record(js, "Warning", "JobCreationFailed", str(exc), COMPONENT)
            raise
        self.children.observe(job)

    async def _delete_job(self, job: Obj) -> None:
        md = job["metadata"]
        try:
            out = await self.client.delete(
                R.JOBS,
                md["name"],
                namespace=md.get("namespace"),
                propagation_policy="Foreground",
                preconditions={"uid": md["uid"]},
            )
        except APIError as exc:
            if exc.code not in (404, 409):
                raise
            return
        self.children.observe_deleted(out)

    async def _resume_job(self, job: Obj, rjob: Obj | None) -> None:
        ns = job["metadata"].get("namespace")
        body = resumed_job(job, rjob)
        if body["spec"].get("template") != (job.get("spec") or {}).get("template") and (
            job.get("status") or {}
        ).get("startTime"):
            # the template of a Job that has started is immutable: clear startTime first, as resumeJob does
            st = {k: v for k, v in job["status"].items() if k != "startTime"}
            cleared = await self.client.update(
                R.JOBS, {**job, "status": st}, namespace=ns, subresource="status"
            )
            body["metadata"]["resourceVersion"] = cleared["metadata"]["resourceVersion"]
            body["status"] = cleared.get("status") or {}
        self.children.observe(await self.client.update(R.JOBS, body, namespace=ns))

    async def _ensure_service(self, js: Obj, body: Obj) -> None:
        try:
            await self.client.create(R.SERVICES, body, namespace=js["metadata"].get("namespace"))
        except APIError as exc:
            if exc.code == 409:
                return
            await self.events.record(js, "Warning", "HeadlessServiceCreationFailed", str(exc), COMPONENT)
            raise
