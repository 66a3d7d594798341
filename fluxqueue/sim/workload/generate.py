"""A generated HPC-like job mix, deterministic for a seed.

Shapes follow what batch sites see: many small jobs and a tail of wide ones; runtimes heavy-tailed
(log-normal, as fitted to Parallel Workloads Archive traces by Lublin & Feitelson 2003, "The workload on
parallel supercomputers"); arrivals a Poisson process; users overestimate their walltime, so the declared
``fluxqueue.io/duration`` is longer than the simulated runtime (runtime = duration x U(0.3, 1)), which is
exactly what makes backfill worth having.

Besides bare Pods, Jobs and pod groups the mix can hold JobSets (a leader replicated job of one big pod and a
workers one of N smaller pods) and MPIJobs (a one-core launcher and N workers): their shares are 0 by default
(``--mix pod=35,job=45,group=20,jobset=10,mpijob=10`` turns them on, see :func:`parse_mix`). A ``dag`` draw
(``--mix ...,dag=10``) is a workflow of Jobs linked by ``fluxqueue.io/dependency``: a head, two to four
parallel Jobs after it (``afterok``), a tail after all of them; the report gives each its makespan and
critical path.
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass
from typing import Any

from fluxqueue.errors import ConfigError
from fluxqueue.kube import names
from fluxqueue.sim.workload.model import (
    KIND_GROUP,
    KIND_JOB,
    KIND_JOBSET,
    KIND_MPIJOB,
    KIND_POD,
    WorkloadItem,
    container,
    pod_template_meta,
)

_MI = 2**20


@dataclass(frozen=True)
class GeneratorSpec:
    jobs: int = 150
    seed: int = 1
    # The cluster the mix is sized for (every unit fits it, so none is unsatisfiable by construction).
    nodes: int = 32
    cpus: int = 32
    memory_bytes: int = 128 * 2**30
    gpus: int = 0
    namespace: str = "default"
    # Arrivals: mean seconds between submissions (simulated time).
    mean_interarrival: float = 6.0
    # Declared walltime (fluxqueue.io/duration): log-normal with this median, clipped.
    median_duration: float = 240.0
    sigma: float = 1.0
    min_duration: float = 30.0
    max_duration: float = 1800.0
    # Mix of unit kinds (weights; exclusive Jobs are a share of all Jobs and groups).
    share_pods: float = 0.35
    share_jobs: float = 0.45
    share_groups: float = 0.20
    # JobSets and MPIJobs: off until the scheduler places each as one unit
    share_jobsets: float = 0.0
    share_mpijobs: float = 0.0
    share_dags: float = 0.0  # fan-out / fan-in workflows of Jobs (fluxqueue.io/dependency)
    share_exclusive: float = 0.10
    share_gpu: float = 0.20

    def validate(self) -> None:
        if self.jobs < 0:
            raise ConfigError(f"--jobs must be >= 0, got {self.jobs}")
        if self.nodes < 1 or self.cpus < 1 or self.memory_bytes < _MI:
            raise ConfigError("the cluster needs at least one node with a CPU and some memory")
        if self.mean_interarrival < 0:
            raise ConfigError("the mean interarrival time must be >= 0")
        if not 0 < self.min_duration <= self.max_duration:
            raise ConfigError("durations need 0 < min <= max")
        shares = [getattr(self, f) for f in MIX_FIELDS.values()]
        if any(w < 0 for w in shares) or (self.jobs and not sum(shares)):
            raise ConfigError("the kind shares must be >= 0 and not all 0")


# --mix names -> GeneratorSpec fields
MIX_FIELDS = {
    "pod": "share_pods",
    "job": "share_jobs",
    "group": "share_groups",
    "jobset": "share_jobsets",
    "mpijob": "share_mpijobs",
    "dag": "share_dags",
}


def parse_mix(text: str) -> dict[str, float]:
    """``"pod=35,job=45,group=20,jobset=10,mpijob=10"`` as GeneratorSpec fields: relative weights, kinds not
    named get none; ConfigError on an unknown kind or a weight that is not a number >= 0."""
    out: dict[str, float] = dict.fromkeys(MIX_FIELDS.values(), 0.0)
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        kind, sep, weight = part.partition("=")
        field_name = MIX_FIELDS.get(kind.strip().lower())
        if not sep or field_name is None:
            known = ", ".join(MIX_FIELDS)
            raise ConfigError(f"--mix: {part!r} is not KIND=WEIGHT with KIND one of {known}")
        try:
            value = float(weight)
        except ValueError:
            raise ConfigError(f"--mix: {part!r}: the weight must be a number") from None
        if value < 0:
            raise ConfigError(f"--mix: {part!r}: the weight must be >= 0")
        out[field_name] = value
    return out


def with_mix(spec: GeneratorSpec, mix: str | None) -> GeneratorSpec:
    return dataclasses.replace(spec, **parse_mix(mix)) if mix else spec


DAG = "dag"  # a draw that is a workflow of several Jobs, not one unit
JOB_SIZES = (2, 4, 8, 16)
JOB_SIZE_WEIGHTS = (0.4, 0.3, 0.2, 0.1)
CORE_CHOICES = (1, 2, 4, 8, 16)
CORE_WEIGHTS = (0.3, 0.3, 0.2, 0.15, 0.05)


def _duration(rng: random.Random, spec: GeneratorSpec) -> float:
    d = rng.lognormvariate(math.log(spec.median_duration), spec.sigma)
    return min(spec.max_duration, max(spec.min_duration, d))


def _cores(rng: random.Random, spec: GeneratorSpec) -> int:
    cores = rng.choices(CORE_CHOICES, CORE_WEIGHTS)[0]
    return max(1, min(cores, spec.cpus))


def _memory(rng: random.Random, spec: GeneratorSpec, cores: int) -> int:
    per_core = spec.memory_bytes / spec.cpus
    mem = int(cores * per_core * rng.uniform(0.25, 1.0)) // _MI * _MI
    return max(64 * _MI, min(mem, spec.memory_bytes // _MI * _MI))


def _gpus(rng: random.Random, spec: GeneratorSpec) -> int:
    if spec.gpus <= 0 or rng.random() >= spec.share_gpu:
        return 0
    return rng.randint(1, min(spec.gpus, 4))


def _settings(duration: float, exclusive: bool) -> dict[str, str]:
    labels = {names.LABEL_DURATION: str(math.ceil(duration))}
    if exclusive:
        labels[names.LABEL_EXCLUSIVE] = "true"
    return labels


def _pod(
    namespace: str, name: str, labels: dict[str, str], runtime: float, res: tuple[int, int, int]
) -> dict[str, Any]:
    meta = pod_template_meta(labels, runtime)
    meta.update(name=name, namespace=namespace)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"restartPolicy": "Never", "containers": [container(*res)]},
    }


def _job(
    namespace: str,
    name: str,
    size: int,
    labels: dict[str, str],
    runtime: float,
    res: tuple[int, int, int],
) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "parallelism": size,
            "completions": size,
            "backoffLimit": 0,
            "template": {
                "metadata": pod_template_meta({}, runtime),
                "spec": {"restartPolicy": "Never", "containers": [container(*res)]},
            },
        },
    }


def _jobset(
    namespace: str,
    name: str,
    workers: int,
    labels: dict[str, str],
    runtime: float,
    leader: tuple[int, int, int],
    worker: tuple[int, int, int],
) -> dict[str, Any]:
    """A JobSet of two replicated jobs, each one Job: ``leader`` (one pod) and ``workers``."""

    def replicated(rname: str, pods: int, res: tuple[int, int, int]) -> dict[str, Any]:
        return {
            "name": rname,
            "replicas": 1,
            "template": {
                "spec": {
                    "parallelism": pods,
                    "completions": pods,
                    "backoffLimit": 0,
                    "template": {
                        "metadata": pod_template_meta({}, runtime),
                        "spec": {"restartPolicy": "Never", "containers": [container(*res)]},
                    },
                }
            },
        }

    return {
        "apiVersion": "jobset.x-k8s.io/v1alpha2",
        "kind": "JobSet",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": {"replicatedJobs": [replicated("leader", 1, leader), replicated("workers", workers, worker)]},
    }


def _mpijob(
    namespace: str,
    name: str,
    workers: int,
    labels: dict[str, str],
    runtime: float,
    duration: float,
    launcher: tuple[int, int, int],
    worker: tuple[int, int, int],
) -> dict[str, Any]:
    """An MPIJob: the launcher runs ``runtime``; the workers serve (sshd) until the launcher ends and
    cleanPodPolicy Running deletes them (they would stop at the declared walltime)."""

    def replica(count: int, seconds: float, res: tuple[int, int, int]) -> dict[str, Any]:
        return {
            "replicas": count,
            "template": {
                "metadata": pod_template_meta({}, seconds),
                "spec": {"containers": [container(*res)]},
            },
        }

    return {
        "apiVersion": "kubeflow.org/v2beta1",
        "kind": "MPIJob",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "slotsPerWorker": 1,
            "runPolicy": {"cleanPodPolicy": "Running", "backoffLimit": 0},
            "mpiReplicaSpecs": {
                "Launcher": replica(1, runtime, launcher),
                "Worker": replica(workers, duration, worker),
            },
        },
    }


def generate(spec: GeneratorSpec) -> list[WorkloadItem]:
    """``spec.jobs`` units; the same spec always yields the same list."""
    spec.validate()
    rng = random.Random(spec.seed)
    total_cores = spec.nodes * spec.cpus
    items: list[WorkloadItem] = []
    t = 0.0
    width = max(4, len(str(spec.jobs)))
    # new kinds go last: with their shares 0 the draws (and so the mix of a seed) stay as they were
    kinds = (KIND_POD, KIND_JOB, KIND_GROUP, KIND_JOBSET, KIND_MPIJOB, DAG)
    weights = (
        spec.share_pods,
        spec.share_jobs,
        spec.share_groups,
        spec.share_jobsets,
        spec.share_mpijobs,
        spec.share_dags,
    )
    for i in range(spec.jobs):
        if i:
            t += rng.expovariate(1.0 / spec.mean_interarrival) if spec.mean_interarrival > 0 else 0.0
        kind = rng.choices(kinds, weights)[0]
        duration = _duration(rng, spec)
        runtime = max(1.0, duration * rng.uniform(0.3, 1.0))
        cores = _cores(rng, spec)
        gpus = _gpus(rng, spec)
        exclusive = kind in (KIND_JOB, KIND_GROUP) and rng.random() < spec.share_exclusive
        if kind == KIND_POD:
            size = 1
        elif kind == KIND_JOB:
            size = rng.choices(JOB_SIZES, JOB_SIZE_WEIGHTS)[0]
        else:
            size = rng.randint(2, 8)  # pod groups; JobSet and MPIJob workers
        if kind == DAG:
            items.extend(_dag_items(rng, spec, i, width, t, cores, gpus, duration, runtime))
            continue
        if kind in (KIND_JOBSET, KIND_MPIJOB):
            items.append(_multi_kind_item(rng, spec, kind, i, width, t, size, cores, gpus, duration, runtime))
            continue
        # Keep every unit satisfiable and no wider than half the cluster, so the mix queues but never
        # starves. Exclusive units take whole nodes, so they ask for a good share of one (sites reserve
        # nodes for jobs that use them) and are at most a quarter of the cluster wide.
        if exclusive:
            cores = max(1, rng.choice((spec.cpus // 2, spec.cpus)))
            size = max(1, min(size, spec.nodes // 4 or 1))
        else:
            size = max(1, min(size, (total_cores // 2) // cores or 1))
        memory = _memory(rng, spec, cores)
        res = (cores * 1000, memory, gpus)
        name = f"{kind.lower()}-{i:0{width}d}"
        labels = _settings(duration, exclusive)
        meta = {"cores": cores, "gpus": gpus, "memory": memory, "duration": duration, "runtime": runtime}
        if kind == KIND_POD:
            manifests = [_pod(spec.namespace, name, labels, runtime, res)]
        elif kind == KIND_JOB:
            manifests = [_job(spec.namespace, name, size, labels, runtime, res)]
        else:
            labels = {**labels, names.LABEL_GROUP_NAME: name, names.LABEL_GROUP_SIZE: str(size)}
            manifests = [_pod(spec.namespace, f"{name}-{j}", labels, runtime, res) for j in range(size)]
        items.append(
            WorkloadItem(
                kind=kind,
                namespace=spec.namespace,
                name=name,
                submit_at=round(t, 3),
                manifests=manifests,
                pods=size,
                exclusive=exclusive,
                meta=meta,
            )
        )
    return items


def _dag_items(
    rng: random.Random,
    spec: GeneratorSpec,
    i: int,
    width: int,
    t: float,
    cores: int,
    gpus: int,
    duration: float,
    runtime: float,
) -> list[WorkloadItem]:
    """A fan-out / fan-in workflow submitted at once: ``<dag>-head``, then 2-4 ``<dag>-<j>`` after it
    (afterok), then ``<dag>-tail`` after all of them (afterok:a:b...). Each step a Job of 1-4 pods."""
    name = f"dag-{i:0{width}d}"
    total_cores = spec.nodes * spec.cpus
    cores = min(cores, spec.cpus)
    fan = rng.randint(2, 4)
    steps = [(f"{name}-head", None)]
    steps += [(f"{name}-{j}", f"afterok:{name}-head") for j in range(fan)]
    steps.append((f"{name}-tail", "afterok:" + ":".join(f"{name}-{j}" for j in range(fan))))
    items = []
    for step, dependency in steps:
        size = max(1, min(rng.randint(1, 4), (total_cores // 2) // cores or 1))
        step_runtime = max(1.0, runtime * rng.uniform(0.5, 1.0))
        memory = _memory(rng, spec, cores)
        manifest = _job(
            spec.namespace, step, size, _settings(duration, False), step_runtime, (cores * 1000, memory, gpus)
        )
        if dependency:
            manifest["metadata"]["annotations"] = {names.ANNOTATION_DEPENDENCY: dependency}
        meta = {"cores": cores, "gpus": gpus, "memory": memory, "duration": duration, "runtime": step_runtime}
        meta["dag"] = name
        items.append(WorkloadItem(KIND_JOB, spec.namespace, step, round(t, 3), [manifest], size, meta=meta))
    return items


def _multi_kind_item(
    rng: random.Random,
    spec: GeneratorSpec,
    kind: str,
    i: int,
    width: int,
    t: float,
    workers: int,
    cores: int,
    gpus: int,
    duration: float,
    runtime: float,
) -> WorkloadItem:
    """A JobSet (a leader twice the workers' cores, at least 2) or an MPIJob (a one-core launcher), with
    ``workers`` workers of ``cores``; no wider than half the cluster."""
    total_cores = spec.nodes * spec.cpus
    head_cores = min(spec.cpus, max(2, 2 * cores)) if kind == KIND_JOBSET else 1
    workers = max(1, min(workers, (total_cores // 2 - head_cores) // cores or 1))
    head = (head_cores * 1000, _memory(rng, spec, head_cores), gpus if kind == KIND_JOBSET else 0)
    worker = (cores * 1000, _memory(rng, spec, cores), gpus)
    name = f"{kind.lower()}-{i:0{width}d}"
    labels = _settings(duration, False)
    if kind == KIND_JOBSET:
        manifest = _jobset(spec.namespace, name, workers, labels, runtime, head, worker)
    else:
        manifest = _mpijob(spec.namespace, name, workers, labels, runtime, duration, head, worker)
    meta = {"cores": cores, "gpus": gpus, "memory": worker[1], "duration": duration, "runtime": runtime}
    meta["head_cores"] = head_cores
    return WorkloadItem(
        kind=kind,
        namespace=spec.namespace,
        name=name,
        submit_at=round(t, 3),
        manifests=[manifest],
        pods=1 + workers,
        meta=meta,
    )
