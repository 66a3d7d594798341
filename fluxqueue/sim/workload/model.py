"""What every workload source produces: a list of `WorkloadItem`, one per scheduling unit.

A unit is what fluxqueue places as a whole (a Job, a bare Pod, a pod group, a JobSet or an MPIJob), so the
report can judge each one (wait time, gang integrity, lost) against what was submitted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from fluxqueue.errors import ConfigError
from fluxqueue.kube import names

KIND_POD = "Pod"
KIND_JOB = "Job"
KIND_GROUP = "PodGroup"
KIND_JOBSET = "JobSet"  # jobset.x-k8s.io/v1alpha2: all pods of its child Jobs
KIND_MPIJOB = "MPIJob"  # kubeflow.org/v2beta1: the launcher and the workers

_SIM_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$")


@dataclass
class WorkloadItem:
    """One unit to submit ``submit_at`` simulated seconds after the run starts.

    ``manifests`` are created in order through the Kubernetes API (a pod group is several Pods; a Job is one
    object whose pods the Job controller creates). ``pods`` is how many pods the unit runs at once.
    """

    kind: str
    namespace: str
    name: str
    submit_at: float
    manifests: list[dict[str, Any]]
    pods: int = 1
    exclusive: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The unit key the report uses, e.g. ``Job/default/job-0007``."""
        return unit_key(self.kind, self.namespace, self.name)


def unit_key(kind: str, namespace: str, name: str) -> str:
    return f"{kind}/{namespace}/{name}"


def parse_sim_seconds(text: str | int | float, what: str) -> float:
    """Seconds from ``"30"``, ``"30s"``, ``"2m"``, ``"1h30m"``, ``"1.5m"``; ConfigError naming ``what``."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        value = float(text)
    else:
        s = str(text).strip()
        try:
            value = float(s)
        except ValueError:
            m = _SIM_DURATION.match(s)
            if not s or not m:
                raise ConfigError(f"{what}: {text!r} is not a duration like 30, 30s, 2m or 1h30m") from None
            h, mi, se = (float(g) if g else 0.0 for g in m.groups())
            value = h * 3600 + mi * 60 + se
    if value < 0:
        raise ConfigError(f"{what}: {text!r} is negative")
    return value


def format_seconds(seconds: float) -> str:
    """The sim runtime annotation text (whole seconds, at least 1 s, as the kubelets read ``"37s"``)."""
    return f"{max(1, round(seconds))}s"


def pod_template_meta(
    labels: dict[str, str], runtime: float, extra_annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    annotations = {names.SIM_RUNTIME: format_seconds(runtime)}
    annotations.update(extra_annotations or {})
    return {"labels": dict(labels), "annotations": annotations}


def container(cpu_milli: int, memory_bytes: int, gpus: int = 0) -> dict[str, Any]:
    requests: dict[str, Any] = {"cpu": f"{cpu_milli}m", "memory": str(memory_bytes)}
    limits: dict[str, Any] = {}
    if gpus:
        # Extended resources must have limits equal to requests (Kubernetes validation).
        requests["nvidia.com/gpu"] = str(gpus)
        limits["nvidia.com/gpu"] = str(gpus)
    resources: dict[str, Any] = {"requests": requests}
    if limits:
        resources["limits"] = limits
    return {"name": "main", "image": "busybox:1.36", "command": ["sleep", "infinity"], "resources": resources}
