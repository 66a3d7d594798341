"""Standard Workload Format traces (the Parallel Workloads Archive, Feitelson et al.).

Format (https://www.cs.huji.ac.il/labs/parallel/workload/swf.html): one job per line, 18 whitespace-separated
numeric fields, ``-1`` where unknown; lines starting with ``;`` are header comments. Fields we use:

  1 job number, 2 submit time (s), 4 run time (s), 5 allocated processors, 8 requested processors,
  9 requested time (s, the user's walltime), 11 status (0 failed, 1 completed, 5 cancelled).

Each job becomes a Kubernetes Job: processors are packed ``cores_per_pod`` to a pod (a job smaller than that
is one pod with its own processor count), the run time becomes ``sim.fluxqueue.io/runtime`` and the
requested time ``fluxqueue.io/duration`` (never below the run time). Jobs that never ran (run time or
processors unknown or zero, typically cancelled in the queue) are skipped and counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from fluxqueue.errors import ConfigError
from fluxqueue.kube import names
from fluxqueue.sim.workload.model import KIND_JOB, WorkloadItem, container, pod_template_meta

FIELDS = (
    "job number",
    "submit time",
    "wait time",
    "run time",
    "allocated processors",
    "average CPU time used",
    "used memory",
    "requested processors",
    "requested time",
    "requested memory",
    "status",
    "user ID",
    "group ID",
    "executable number",
    "queue number",
    "partition number",
    "preceding job number",
    "think time",
)


@dataclass(frozen=True)
class SWFJob:
    number: int
    submit: float
    run_time: float
    processors: int
    requested_time: float
    status: int
    line: int


@dataclass
class SWFTrace:
    jobs: list[SWFJob]
    skipped: int = 0
    header: list[str] = field(default_factory=list)


def _number(text: str, path: str, line: int, index: int) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(
            f"{path} line {line}, field {index + 1} ({FIELDS[index]}): {text!r} is not a number"
        ) from None
    if math.isnan(value) or math.isinf(value):
        raise ConfigError(f"{path} line {line}, field {index + 1} ({FIELDS[index]}): {text!r} is not finite")
    return value


def parse_swf_text(text: str, path: str = "<swf>") -> SWFTrace:
    """Parse a whole trace; a malformed line raises ConfigError naming the line number and field."""
    trace = SWFTrace(jobs=[])
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith(";"):
            trace.header.append(line[1:].strip())
            continue
        parts = line.split()
        if len(parts) != len(FIELDS):
            raise ConfigError(
                f"{path} line {lineno}: expected {len(FIELDS)} whitespace-separated fields, found {len(parts)}"
            )
        values = [_number(p, path, lineno, i) for i, p in enumerate(parts)]
        if values[1] < 0:
            raise ConfigError(f"{path} line {lineno}, field 2 (submit time): {parts[1]!r} is negative")
        run_time = values[3]
        processors = int(values[4]) if values[4] > 0 else int(values[7])
        if run_time <= 0 or processors <= 0:
            trace.skipped += 1
            continue
        trace.jobs.append(
            SWFJob(
                number=int(values[0]),
                submit=values[1],
                run_time=run_time,
                processors=processors,
                requested_time=values[8],
                status=int(values[10]),
                line=lineno,
            )
        )
    return trace


def parse_swf(path: str | Path) -> SWFTrace:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read SWF trace {p}: {exc.strerror}") from None
    return parse_swf_text(text, str(p))


def swf_items(
    trace: SWFTrace,
    cores_per_pod: int = 8,
    memory_per_core: int = 2**30,
    namespace: str = "default",
    limit: int | None = None,
) -> list[WorkloadItem]:
    """Kubernetes Jobs for the trace's jobs, submit times relative to the first job."""
    if cores_per_pod < 1:
        raise ConfigError(f"--cores-per-pod must be >= 1, got {cores_per_pod}")
    jobs = sorted(trace.jobs, key=lambda j: (j.submit, j.number))
    if limit is not None:
        jobs = jobs[:limit]
    if not jobs:
        return []
    start = jobs[0].submit
    width = max(4, len(str(max(j.number for j in jobs))))
    items = []
    for job in jobs:
        pods = math.ceil(job.processors / cores_per_pod)
        cores = min(cores_per_pod, job.processors)
        duration = max(job.requested_time, job.run_time)
        name = f"swf-{job.number:0{width}d}"
        manifest = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {names.LABEL_DURATION: str(math.ceil(duration))},
                "annotations": {names.SIM_PREFIX + "swf-line": str(job.line)},
            },
            "spec": {
                "parallelism": pods,
                "completions": pods,
                "backoffLimit": 0,
                "template": {
                    "metadata": pod_template_meta({}, job.run_time),
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [container(cores * 1000, cores * memory_per_core)],
                    },
                },
            },
        }
        items.append(
            WorkloadItem(
                kind=KIND_JOB,
                namespace=namespace,
                name=name,
                submit_at=job.submit - start,
                manifests=[manifest],
                pods=pods,
                meta={"cores": cores, "runtime": job.run_time, "duration": duration, "swf_job": job.number},
            )
        )
    return items
