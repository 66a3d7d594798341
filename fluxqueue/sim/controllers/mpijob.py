"""The MPI Operator's v2 controller for ``kubeflow.org/v2beta1`` MPIJobs, after kubeflow/mpi-operator
pkg/controller/mpi_job_controller.go (syncHandler) and mpi_job_controller_status.go.

:func:`plan_mpijob` is the pure decision; :class:`MPIJobController` carries it out through ``api.client``,
so the worker pods it creates directly (and the launcher Job's pods, through the Job controller) pass
admission like a real operator's.

What a scheduler sees, as the operator does it:
- worker pods ``<name>-worker-<i>`` for i < Worker.replicas, created by the operator itself (no Job, no
  StatefulSet), owned by the MPIJob (controller: true), labelled ``training.kubeflow.org/operator-name:
  mpi-operator``, ``training.kubeflow.org/job-name: <name>``, ``training.kubeflow.org/job-role: worker`` and
  ``training.kubeflow.org/replica-index: <i>``, with hostname = pod name and subdomain = the MPIJob's name
  (a headless Service of that name selects launcher and workers); a worker that ends is not recreated;
  workers beyond a lowered replica count are deleted (getOrCreateWorker, newWorker);
- a launcher Job ``<name>-launcher`` (labels ``app: <name>``; backoffLimit, activeDeadlineSeconds and
  ttlSecondsAfterFinished from runPolicy), whose pod template carries the same labels with role
  ``launcher``, hostname ``<name>-launcher``, and the Launcher replica's restartPolicy (default OnFailure)
  over the template's; created at once (launcherCreationPolicy AtStartup, the default) or once every worker
  is ready (WaitForWorkersReady) (newLauncherJob). Both templates keep the user's schedulerName;
- ``runPolicy.suspend``: no workers are created and existing ones are deleted (cleanUpWorkerPods), the
  launcher Job is created suspended or has its ``spec.suspend`` set to match; conditions Suspended
  (MPIJobSuspended) / Suspended False (MPIJobResumed, which restarts status.startTime) and Running False;
- conditions Created (MPIJobCreated) at first sight, Running once the launcher has a running pod and every
  worker runs, Succeeded when the launcher Job completes (completionTime copied from it), Failed when it fails
  (its reason; BackoffLimitExceeded gets the last failed launcher pod's reason appended) or when workers are
  Evicted; Succeeded/Failed set Running to False;
- once finished, ``runPolicy.cleanPodPolicy`` All or Running deletes the workers (Running keeps those that
  already ended; a pending worker is deleted too); None, the v2beta1 default (v2beta1/default.go
  setDefaultsRunPolicy), leaves them;
- status.replicaStatuses Launcher/Worker active/succeeded/failed (zero counts omitted, as omitempty does).
Not modelled: the hostfile ConfigMap, the SSH Secret and their volumes, PodGroups for gang schedulers,
runLauncherAsWorker, the MPI environment beyond K_MPI_JOB_ROLE and OpenMPI's, validation errors.
"""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass, field
from typing import Any

from fluxqueue.log import get_logger
from fluxqueue.sim.apiserver import APIError
from fluxqueue.sim.apiserver import resources as R

from ..clock import Timers, rfc3339
from .base import Informer, Obj, OwnerController, controller_ref
from .events import EventRecorder
from .job import cond_true
from .templates import is_ready, owner_reference, phase
from .thirdparty_crds import MPIJOB_API_VERSION, MPIJOBS

log = get_logger(__name__)

LABEL_OPERATOR_NAME = "training.kubeflow.org/operator-name"
LABEL_JOB_NAME = "training.kubeflow.org/job-name"
LABEL_JOB_ROLE = "training.kubeflow.org/job-role"
LABEL_REPLICA_INDEX = "training.kubeflow.org/replica-index"
OPERATOR_NAME = "mpi-operator"
CONTROLLER_NAME = "kubeflow.org/mpi-operator"  # runPolicy.managedBy reserved value
COMPONENT = "mpi-job-controller"
LAUNCHER, WORKER = "Launcher", "Worker"  # mpiReplicaSpecs keys
CREATED, RUNNING, SUCCEEDED, FAILED, SUSPENDED = "Created", "Running", "Succeeded", "Failed", "Suspended"


@dataclass
class MPIJobPlan:
    create_workers: list[Obj] = field(default_factory=list)
    delete_workers: list[Obj] = field(default_factory=list)
    create_launcher: Obj | None = None
    launcher_suspend: bool | None = None  # set the launcher Job's spec.suspend to this
    service: Obj | None = None
    status: Obj = field(default_factory=dict)
    events: list[tuple[str, str, str]] = field(default_factory=list)


# ----------------------------------------------------------------------------------------- pure helpers
def defaulted_spec(mpijob: Obj) -> Obj:
    """SetDefaults_MPIJob (v2beta1/default.go), which the operator applies to its copy before each sync."""
    spec = copy.deepcopy(mpijob.get("spec") or {})
    run = spec.setdefault("runPolicy", {})
    run.setdefault("cleanPodPolicy", "None")
    spec.setdefault("slotsPerWorker", 1)
    spec.setdefault("mpiImplementation", "OpenMPI")
    spec.setdefault("launcherCreationPolicy", "AtStartup")
    replicas = spec.setdefault("mpiReplicaSpecs", {})
    if replicas.get(LAUNCHER) is not None:
        replicas[LAUNCHER].setdefault("restartPolicy", "OnFailure")
        replicas[LAUNCHER].setdefault("replicas", 1)
    if replicas.get(WORKER) is not None:
        replicas[WORKER].setdefault("restartPolicy", "Never")
        replicas[WORKER].setdefault("replicas", 0)
    return spec


def worker_name(mpijob: str, index: int) -> str:
    return f"{mpijob}-worker-{index}"


def launcher_name(mpijob: str) -> str:
    return f"{mpijob}-launcher"


def default_labels(mpijob: str, role: str) -> dict[str, str]:
    return {LABEL_OPERATOR_NAME: OPERATOR_NAME, LABEL_JOB_NAME: mpijob, LABEL_JOB_ROLE: role}


def is_suspended(spec: Obj) -> bool:
    return bool((spec.get("runPolicy") or {}).get("suspend"))


def _restart_policy(replica: Obj) -> str:
    policy = replica.get("restartPolicy") or "Never"
    return "Never" if policy == "ExitCode" else policy  # setRestartPolicy


def _owner_ref(mpijob: Obj) -> Obj:
    return owner_reference({**mpijob, "apiVersion": MPIJOB_API_VERSION, "kind": "MPIJob"})


def _add_env(container: Obj, env: list[Obj]) -> None:
    container["env"] = [*(container.get("env") or []), *env]


def worker_pod(mpijob: Obj, spec: Obj, index: int) -> Obj:
    """newWorker: the Worker template with the operator's labels, hostname and subdomain."""
    md = mpijob["metadata"]
    name = worker_name(md["name"], index)
    template = copy.deepcopy(spec["mpiReplicaSpecs"][WORKER].get("template") or {})
    tmd = template.get("metadata") or {}
    labels = {**(tmd.get("labels") or {}), **default_labels(md["name"], "worker")}
    labels[LABEL_REPLICA_INDEX] = str(index)
    pspec = template.get("spec") or {}
    pspec["hostname"] = name
    pspec["subdomain"] = md["name"]  # the Service fronting the workers
    search = f"{md['name']}.{md.get('namespace') or 'default'}.svc.cluster.local"
    dns = pspec.setdefault("dnsConfig", {})
    dns["searches"] = [*(dns.get("searches") or []), search]
    pspec["restartPolicy"] = _restart_policy(spec["mpiReplicaSpecs"][WORKER])
    containers = pspec.get("containers") or []
    if containers:
        if not containers[0].get("command") and not containers[0].get("args"):
            containers[0]["command"] = ["/usr/sbin/sshd", "-De"]
        _add_env(containers[0], [{"name": "K_MPI_JOB_ROLE", "value": "worker"}])
    pmd: Obj = {
        "name": name,
        "namespace": md.get("namespace"),
        "labels": labels,
        "ownerReferences": [_owner_ref(mpijob)],
    }
    if tmd.get("annotations"):
        pmd["annotations"] = dict(tmd["annotations"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pmd, "spec": pspec}


_OMPI_ENV = [
    {"name": "OMPI_MCA_orte_keep_fqdn_hostnames", "value": "true"},
    {"name": "OMPI_MCA_orte_default_hostfile", "value": "/etc/mpi/hostfile"},
    {"name": "OMPI_MCA_plm_rsh_args", "value": "-o ConnectionAttempts=10"},
]


def launcher_job(mpijob: Obj, spec: Obj) -> tuple[Obj, bool]:
    """newLauncherJob / newLauncherPodTemplate; True when the template set its own restartPolicy (the
    operator warns that the replica's overrides it)."""
    md = mpijob["metadata"]
    name = launcher_name(md["name"])
    replica = spec["mpiReplicaSpecs"][LAUNCHER]
    template = copy.deepcopy(replica.get("template") or {})
    tmd = template.get("metadata") or {}
    pmd: Obj = {"labels": {**(tmd.get("labels") or {}), **default_labels(md["name"], "launcher")}}
    if tmd.get("annotations"):
        pmd["annotations"] = dict(tmd["annotations"])
    pspec = template.get("spec") or {}
    pspec["hostname"] = name
    pspec["subdomain"] = md["name"]
    containers = pspec.get("containers") or []
    if containers:
        env = [{"name": "K_MPI_JOB_ROLE", "value": "launcher"}]
        if spec.get("mpiImplementation") == "OpenMPI":
            env += [
                *_OMPI_ENV,
                {"name": "OMPI_MCA_orte_set_default_slots", "value": str(spec["slotsPerWorker"])},
            ]
        _add_env(containers[0], env)
    overridden = bool(pspec.get("restartPolicy"))
    pspec["restartPolicy"] = _restart_policy(replica)
    run = spec.get("runPolicy") or {}
    jspec: Obj = {"template": {"metadata": pmd, "spec": pspec}}
    for key in ("ttlSecondsAfterFinished", "activeDeadlineSeconds", "backoffLimit"):
        if run.get(key) is not None:
            jspec[key] = run[key]
    if is_suspended(spec):
        jspec["suspend"] = True
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": md.get("namespace"),
            "labels": {"app": md["name"]},
            "ownerReferences": [_owner_ref(mpijob)],
        },
        "spec": jspec,
    }
    return job, overridden


def job_service(mpijob: Obj) -> Obj:
    """newJobService: headless, selecting the launcher and the workers."""
    md = mpijob["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": md["name"],
            "namespace": md.get("namespace"),
            "labels": {"app": md["name"]},
            "ownerReferences": [_owner_ref(mpijob)],
        },
        "spec": {
            "clusterIP": "None",
            "selector": {LABEL_OPERATOR_NAME: OPERATOR_NAME, LABEL_JOB_NAME: md["name"]},
        },
    }


def _get_condition(status: Obj, typ: str) -> Obj | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == typ), None)


def is_finished(status: Obj) -> bool:
    return any(
        c.get("type") in (SUCCEEDED, FAILED) and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def set_condition(status: Obj, typ: str, value: bool, reason: str, message: str, now: str) -> bool:
    """setCondition (mpi_job_controller_status.go): no change for the same status and reason; the condition
    moves to the end; Succeeded or Failed turn Running (and an earlier Failed) False."""
    want = "True" if value else "False"
    cur = _get_condition(status, typ)
    if cur is not None and cur.get("status") == want and cur.get("reason") == reason:
        return False
    new = {
        "type": typ,
        "status": want,
        "reason": reason,
        "message": message,
        "lastUpdateTime": now,
        "lastTransitionTime": cur["lastTransitionTime"] if cur and cur.get("status") == want else now,
    }
    kept = []
    for c in status.get("conditions") or []:
        if c.get("type") == typ:
            continue
        if typ in (FAILED, SUCCEEDED) and c.get("type") in (RUNNING, FAILED):
            c = {**c, "status": "False"}
        kept.append(c)
    status["conditions"] = [*kept, new]
    return True


def _replica_status(active: int = 0, succeeded: int = 0, failed: int = 0) -> Obj:
    out = {"active": active, "succeeded": succeeded, "failed": failed}
    return {k: v for k, v in out.items() if v}  # omitempty


def _job_condition(job: Obj, typ: str) -> Obj | None:
    return next((c for c in (job.get("status") or {}).get("conditions") or [] if c.get("type") == typ), None)


def workers_to_clean(spec: Obj, workers: dict[int, Obj]) -> list[Obj]:
    """deleteWorkerPods: every worker below the replica count, except, under cleanPodPolicy Running, those
    neither running nor pending."""
    count = (spec["mpiReplicaSpecs"].get(WORKER) or {}).get("replicas", 0)
    running_only = spec["runPolicy"].get("cleanPodPolicy") == "Running"
    out = []
    for i in range(count):
        pod = workers.get(i)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            continue
        if running_only and phase(pod) not in ("Running", "Pending"):
            continue
        out.append(pod)
    return out


def plan_mpijob(
    mpijob: Obj,
    workers: list[Obj],
    launcher: Obj | None,
    launcher_pods: list[Obj],
    now: str | None = None,
) -> MPIJobPlan:
    """What the operator does next for ``mpijob`` (pure): ``workers`` are the pods it controls, ``launcher``
    its launcher Job (None when absent) and ``launcher_pods`` that Job's pods."""
    now = now or rfc3339()
    md = mpijob["metadata"]
    spec = defaulted_spec(mpijob)
    status = copy.deepcopy(mpijob.get("status") or {})
    plan = MPIJobPlan(status=status)
    ident = f"{md.get('namespace') or 'default'}/{md['name']}"
    suspended = is_suspended(spec)
    by_index: dict[int, Obj] = {}
    for p in workers:
        text = (p["metadata"].get("labels") or {}).get(LABEL_REPLICA_INDEX)
        if (p["metadata"].get("labels") or {}).get(LABEL_JOB_ROLE) == "worker" and text and text.isdigit():
            by_index[int(text)] = p

    def clean_workers() -> None:
        plan.delete_workers += [p for p in workers_to_clean(spec, by_index) if p not in plan.delete_workers]
        status.setdefault("replicaStatuses", {})[WORKER] = {}

    if not status.get("conditions"):
        msg = f"MPIJob {ident} is created."
        set_condition(status, CREATED, True, "MPIJobCreated", msg, now)
        plan.events.append(("Normal", "MPIJobCreated", msg))
    if is_finished(status) and status.get("completionTime"):
        if spec["runPolicy"].get("cleanPodPolicy") in ("All", "Running"):
            clean_workers()
        return plan
    if not status.get("startTime") and not suspended:
        status["startTime"] = now

    worker_spec = spec["mpiReplicaSpecs"].get(WORKER)
    current: list[Obj] = []  # the workers of this pass (getOrCreateWorker's result)
    done = launcher is not None and (
        cond_true(launcher.get("status") or {}, "Complete")
        or cond_true(launcher.get("status") or {}, "Failed")
    )
    if not done:
        plan.service = job_service(mpijob)
        if not suspended and worker_spec is not None:
            count = worker_spec.get("replicas", 0)
            plan.delete_workers += [
                p
                for i, p in sorted(by_index.items())
                if i >= count and not p["metadata"].get("deletionTimestamp")
            ]
            for i in range(count):
                pod = by_index.get(i)
                if pod is None:
                    pod = worker_pod(mpijob, spec, i)
                    plan.create_workers.append(pod)
                current.append(pod)
        if launcher is None and spec["mpiReplicaSpecs"].get(LAUNCHER) is not None:
            ready = sum(1 for p in current if is_ready(p))
            if spec.get("launcherCreationPolicy") == "AtStartup" or ready == len(current):
                launcher, overridden = launcher_job(mpijob, spec)
                plan.create_launcher = launcher
                if overridden:
                    plan.events.append(
                        (
                            "Warning",
                            "SetPodTemplateRestartPolicy",
                            "Restart policy in pod template overridden by restart policy in replica spec",
                        )
                    )
    if launcher is not None and plan.create_launcher is None:
        if suspended != bool((launcher.get("spec") or {}).get("suspend")):
            plan.launcher_suspend = suspended
    if suspended:
        clean_workers()

    # updateMPIJobStatus
    if suspended:
        if set_condition(status, SUSPENDED, True, "MPIJobSuspended", "MPIJob suspended", now):
            plan.events.append(("Normal", "MPIJobSuspended", "MPIJob suspended"))
    elif _get_condition(status, SUSPENDED) is not None:
        if set_condition(status, SUSPENDED, False, "MPIJobResumed", "MPIJob resumed", now):
            plan.events.append(("Normal", "MPIJobResumed", "MPIJob resumed"))
            status["startTime"] = now
    replicas = status.setdefault("replicaStatuses", {})
    launcher_running = 0
    if launcher is not None:
        launcher_running = sum(1 for p in launcher_pods if phase(p) == "Running")
        lst = launcher.get("status") or {}
        if cond_true(lst, "Complete"):
            replicas[LAUNCHER] = _replica_status(succeeded=1, failed=lst.get("failed", 0))
            msg = f"MPIJob {ident} successfully completed."
            plan.events.append(("Normal", "MPIJobSucceeded", msg))
            if not status.get("completionTime"):
                status["completionTime"] = lst.get("completionTime") or now
            set_condition(status, SUCCEEDED, True, "MPIJobSucceeded", msg, now)
        elif cond_true(lst, "Failed"):
            replicas[LAUNCHER] = _replica_status(failed=lst.get("failed", 0))
            failed = _job_condition(launcher, "Failed") or {}
            reason = failed.get("reason") or "MPIJobFailed"
            msg = failed.get("message") or f"MPIJob {ident} has failed"
            if reason == "BackoffLimitExceeded":
                dead = [p for p in launcher_pods if phase(p) == "Failed"]
                if dead:
                    last = max(dead, key=lambda p: p["metadata"].get("creationTimestamp") or "")
                    pst = last.get("status") or {}
                    reason += "/" + (pst.get("reason") or "")
                    msg += ": " + (pst.get("message") or "")
            plan.events.append(("Warning", reason, msg))
            if not status.get("completionTime"):
                status["completionTime"] = now
            set_condition(status, FAILED, True, reason, msg, now)
        else:
            replicas[LAUNCHER] = _replica_status(active=launcher_running, failed=lst.get("failed", 0))
    counts = {"Running": 0, "Succeeded": 0, "Failed": 0}
    evicted = 0
    for p in current:
        ph = phase(p)
        if ph in counts:
            counts[ph] += 1
        if ph == "Failed" and (p.get("status") or {}).get("reason") == "Evicted":
            evicted += 1
    replicas[WORKER] = _replica_status(counts["Running"], counts["Succeeded"], counts["Failed"])
    if evicted:
        msg = f"{evicted}/{len(current)} workers are evicted"
        set_condition(status, FAILED, True, "MPIJobEvicted", msg, now)
        plan.events.append(("Warning", "MPIJobEvicted", msg))
    if suspended:
        set_condition(status, RUNNING, False, "MPIJobSuspended", f"MPIJob {ident} is suspended.", now)
    elif launcher is not None and launcher_running >= 1 and counts["Running"] == len(current):
        if set_condition(status, RUNNING, True, "MPIJobRunning", f"MPIJob {ident} is running.", now):
            plan.events.append(("Normal", "MPIJobRunning", f"MPIJob {ident} is running"))
    return plan


# ----------------------------------------------------------------------------------------- the shell
class MPIJobController(OwnerController):
    """Owners: MPIJobs; children: their worker pods; the launcher Job and its pods wake the MPIJob too
    (handleObject follows a pod's Job owner up to the MPIJob)."""

    name = "mpijob-controller"
    workers = 2
    owner_resource = MPIJOBS
    child_resource = R.PODS

    def __init__(
        self,
        client: Any,
        timers: Timers,
        mpijobs: Informer,
        jobs: Informer,
        pods: Informer,
        events: EventRecorder,
    ):
        super().__init__(client, timers, mpijobs, pods)
        self.jobs = jobs
        self.events = events
        self._services: set[str] = set()
        jobs.add_handler(self._on_child)

    def _on_child(self, typ: str, old: Obj | None, new: Obj | None) -> None:
        obj = new or old
        if obj is None:
            return
        ref = controller_ref(obj)
        if ref is not None and ref.get("kind") == "Job":
            job = self.jobs.get(obj["metadata"].get("namespace", ""), ref.get("name", ""))
            ref = controller_ref(job) if job is not None else None
        key = self._by_uid.get((ref or {}).get("uid") or "")
        if key is not None:
            self.queue.add(key)

    def _on_owner(self, typ: str, old: Obj | None, new: Obj | None) -> None:
        super()._on_owner(typ, old, new)
        if new is None and old is not None:
            self._services.discard(old["metadata"]["uid"])

    async def reconcile(self, key: tuple[str, str]) -> None:
        ns, name = key
        mpijob = self.owners.get(ns, name)
        if mpijob is None or mpijob["metadata"].get("deletionTimestamp"):
            return
        run = (mpijob.get("spec") or {}).get("runPolicy") or {}
        if run.get("managedBy", CONTROLLER_NAME) != CONTROLLER_NAME:
            return  # managedByExternalController
        mpijob = {**mpijob, "apiVersion": MPIJOB_API_VERSION, "kind": "MPIJob"}
        uid = mpijob["metadata"]["uid"]
        launcher = self.jobs.get(ns, launcher_name(name))
        if launcher is not None and (controller_ref(launcher) or {}).get("uid") != uid:
            msg = (
                f'Resource "{launcher_name(name)}" of Kind "Job" already exists and is not managed by MPIJob'
            )
            await self.events.record(mpijob, "Warning", "ErrResourceExists", msg, COMPONENT)
            return
        launcher_pods = (
            self.children.by_index("controller-uid", launcher["metadata"]["uid"]) if launcher else []
        )
        plan = plan_mpijob(mpijob, self.owned(mpijob), launcher, launcher_pods)
        if plan.service is not None and uid not in self._services:
            await self._create(R.SERVICES, plan.service, ns)
            self._services.add(uid)
        for pod in plan.delete_workers:
            await self.delete_child(pod)
        if plan.create_workers:
            results = await asyncio.gather(
                *(self._create_worker(mpijob, p) for p in plan.create_workers), return_exceptions=True
            )
            errors = [r for r in results if isinstance(r, BaseException)]
            if errors:
                raise errors[0]  # requeued with backoff; the status waits for the next pass
        if plan.create_launcher is not None:
            try:
                created = await self._create(R.JOBS, plan.create_launcher, ns)
            except APIError as exc:
                await self.events.record(
                    mpijob, "Warning", "MPIJobFailed", f"launcher pod created failed: {exc}", COMPONENT
                )
                raise
            if created is not None:
                self.jobs.observe(created)
        elif plan.launcher_suspend is not None and launcher is not None:
            body = copy.deepcopy(launcher)
            body["spec"]["suspend"] = plan.launcher_suspend
            self.jobs.observe(await self.client.update(R.JOBS, body, namespace=ns))
        await self.write_status(mpijob, plan.status)
        for typ, reason, message in plan.events:
            await self.events.record(mpijob, typ, reason, message, COMPONENT)

    async def _create(self, resource: tuple[str, str, str], body: Obj, ns: str) -> Obj | None:
        try:
            return await self.client.create(resource, body, namespace=ns)
        except APIError as exc:
            if exc.code == 409:
                return None
            raise

    async def _create_worker(self, mpijob: Obj, body: Obj) -> None:
        try:
            pod = await self.client.create(R.PODS, body, namespace=mpijob["metadata"].get("namespace"))
        except APIError as exc:
            if exc.code == 409:
                return
            await self.events.record(
                mpijob, "Warning", "MPIJobFailed", f"worker pod created failed: {exc}", COMPONENT
            )
            raise
        self.children.observe(pod)
