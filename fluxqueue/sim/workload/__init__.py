"""Workloads for `fluxqueue sim run`: generated mixes, manifest directories and SWF traces.

All sources yield the same thing, a list of `WorkloadItem` (submit offset in simulated seconds, manifests).
"""

from __future__ import annotations

from pathlib import Path

from fluxqueue.log import get_logger
from fluxqueue.sim.workload.generate import GeneratorSpec, generate, parse_mix, with_mix
from fluxqueue.sim.workload.manifests import SETUP_KIND, load_manifests
from fluxqueue.sim.workload.model import (
    KIND_GROUP,
    KIND_JOB,
    KIND_JOBSET,
    KIND_MPIJOB,
    KIND_POD,
    WorkloadItem,
    parse_sim_seconds,
    unit_key,
)
from fluxqueue.sim.workload.swf import SWFTrace, parse_swf, parse_swf_text, swf_items

log = get_logger(__name__)

__all__ = [
    "KIND_GROUP",
    "KIND_JOB",
    "KIND_JOBSET",
    "KIND_MPIJOB",
    "KIND_POD",
    "SETUP_KIND",
    "GeneratorSpec",
    "SWFTrace",
    "WorkloadItem",
    "generate",
    "load_manifests",
    "load_workload",
    "parse_mix",
    "parse_sim_seconds",
    "parse_swf",
    "parse_swf_text",
    "swf_items",
    "unit_key",
    "with_mix",
]


def load_workload(
    source: str,
    spec: GeneratorSpec,
    cores_per_pod: int = 8,
    swf_limit: int | None = None,
) -> list[WorkloadItem]:
    """``"generated"``, a ``.swf`` file, or a directory/file of manifests."""
    if source == "generated":
        return generate(spec)
    path = Path(source)
    if path.suffix.lower() == ".swf":
        memory_per_core = spec.memory_bytes // max(1, spec.cpus)
        items = swf_items(
            parse_swf(path),
            cores_per_pod=min(cores_per_pod, spec.cpus),
            memory_per_core=memory_per_core // 2,
            namespace=spec.namespace,
            limit=swf_limit if swf_limit is not None else spec.jobs or None,
        )
        # A trace from a bigger machine has jobs this cluster can never run; they would only sit in the
        # queue as unsatisfiable, so leave them out and say so.
        capacity = spec.nodes * spec.cpus
        fits = [i for i in items if i.pods * i.meta["cores"] <= capacity]
        if len(fits) < len(items):
            log.warning(
                "trace jobs wider than the cluster left out",
                count=len(items) - len(fits),
                cluster_cores=capacity,
            )
        return fits
    return load_manifests(path, spec.namespace)
