"""A generated HPC-like job mix, deterministic for a seed.

Shapes follow what batch sites see: many small jobs and a tail of wide ones; runtimes heavy-tailed
(log-normal, as fitted to Parallel Workloads Archive traces by Lublin & Feitelson 2003, "The workload on
parallel supercomputers"); arrivals a Poisson process; users overestimate their walltime, so the declared
``fluxqueue.io/duration`` is longer than the simulated runtime (runtime = duration x U(0.3, 1)), which is
exactly what makes backfill worth having.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from fluxqueue.errors import ConfigError
from fluxqueue.kube import names
from fluxqueue.sim.workload.model import (
    KIND_GROUP,
    KIND_JOB,
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


def generate(spec: GeneratorSpec) -> list[WorkloadItem]:
    """``spec.jobs`` units; the same spec always yields the same list."""
    spec.validate()
    rng = random.Random(spec.seed)
    total_cores = spec.nodes * spec.cpus
    items: list[WorkloadItem] = []
    t = 0.0
    width = max(4, len(str(spec.jobs)))
    kinds = (KIND_POD, KIND_JOB, KIND_GROUP)
    weights = (spec.share_pods, spec.share_jobs, spec.share_groups)
    for i in range(spec.jobs):
        if i:
            t += rng.expovariate(1.0 / spec.mean_interarrival) if spec.mean_interarrival > 0 else 0.0
        kind = rng.choices(kinds, weights)[0]
        duration = _duration(rng, spec)
        runtime = max(1.0, duration * rng.uniform(0.3, 1.0))
        cores = _cores(rng, spec)
        gpus = _gpus(rng, spec)
        exclusive = kind != KIND_POD and rng.random() < spec.share_exclusive
        if kind == KIND_POD:
            size = 1
        elif kind == KIND_JOB:
            size = rng.choices(JOB_SIZES, JOB_SIZE_WEIGHTS)[0]
        else:
            size = rng.randint(2, 8)
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
