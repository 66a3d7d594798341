"""What a pod asks of a node: CPU, memory and GPUs, computed as kube-scheduler computes it.

Follows ``PodRequests`` in k8s.io/component-helpers/resource/helpers.go (what kube-scheduler's NodeResourcesFit
and ``kubectl describe node`` use):

* the sum of the app containers' requests;
* restartable ("sidecar") init containers, ``restartPolicy: Always``, run alongside the app containers, so their
  requests are added to the sum; each regular init container runs alone next to the sidecars started before it;
* the pod needs the larger of the two phases (``max(sum, every init step)``), per resource;
* plus ``spec.overhead`` (RuntimeClass overhead).

A request that is absent while a limit is set counts as the limit: the API server defaults requests from
limits (pkg/apis/core/v1/defaults.go), so this only matters for objects that did not go through defaulting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fluxqueue.kube.quantity import cpu_millis, format_bytes, to_int_ceil

GPU_RESOURCE = "nvidia.com/gpu"


@dataclass(frozen=True, order=True)
class Resources:
    """Amounts of the resources Fluxion places. ``pods`` counts pods (1 for one pod's request)."""

    cpu_milli: int = 0
    memory: int = 0  # bytes
    gpus: int = 0
    pods: int = 1

    def __add__(self, other: Resources) -> Resources:
        return Resources(
            self.cpu_milli + other.cpu_milli,
            self.memory + other.memory,
            self.gpus + other.gpus,
            self.pods + other.pods,
        )

    def __sub__(self, other: Resources) -> Resources:
        return Resources(
            self.cpu_milli - other.cpu_milli,
            self.memory - other.memory,
            self.gpus - other.gpus,
            self.pods - other.pods,
        )

    def max(self, other: Resources) -> Resources:
        """Per-resource maximum (how init containers and heterogeneous gang members combine)."""
        return Resources(
            max(self.cpu_milli, other.cpu_milli),
            max(self.memory, other.memory),
            max(self.gpus, other.gpus),
            max(self.pods, other.pods),
        )

    def describe(self) -> str:
        """Human form, e.g. ``2500m cpu, 4Gi memory, 1 gpu``."""
        parts = [f"{self.cpu_milli}m cpu" if self.cpu_milli % 1000 else f"{self.cpu_milli // 1000} cpu"]
        parts.append(f"{format_bytes(self.memory)} memory")
        if self.gpus:
            parts.append(f"{self.gpus} gpu")
        return ", ".join(parts)


ZERO = Resources(0, 0, 0, 0)


def resource_list(values: dict[str, Any] | None) -> Resources:
    """A ResourceList (``{"cpu": "500m", "memory": "1Gi", "nvidia.com/gpu": 1}``) as Resources (pods=0)."""
    values = values or {}
    return Resources(
        cpu_milli=cpu_millis(values["cpu"]) if "cpu" in values else 0,
        memory=to_int_ceil(values["memory"]) if "memory" in values else 0,
        gpus=to_int_ceil(values[GPU_RESOURCE]) if GPU_RESOURCE in values else 0,
        pods=0,
    )


def container_requests(container: dict[str, Any]) -> Resources:
    """One container's effective requests: each request, else its limit (API defaulting)."""
    res = container.get("resources") or {}
    requests = dict(res.get("limits") or {})
    requests.update(res.get("requests") or {})
    return resource_list(requests)


def pod_requests(pod: dict[str, Any]) -> Resources:
    """The pod's requests as kube-scheduler counts them (``PodRequests``), with ``pods=1``."""
    spec = pod.get("spec") or {}
    total = ZERO
    for container in spec.get("containers") or []:
        total = total + container_requests(container)
    sidecars = ZERO
    init_peak = ZERO
    for container in spec.get("initContainers") or []:
        requests = container_requests(container)
        if container.get("restartPolicy") == "Always":
            # A sidecar keeps running next to the app containers and next to later init containers.
            total = total + requests
            sidecars = sidecars + requests
            step = sidecars
        else:
            step = requests + sidecars
        init_peak = init_peak.max(step)
    total = total.max(init_peak)
    overhead = spec.get("overhead")
    if overhead:
        total = total + resource_list(overhead)
    return Resources(total.cpu_milli, total.memory, total.gpus, 1)
