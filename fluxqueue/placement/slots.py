"""How one pod's request becomes a Fluxion slot, and how memory is counted: shared by graph and jobspec.

Both sides round so a node is never over-committed: the graph offers ``floor`` of what is free, a slot asks
``ceil`` of what the pod requests.

* cores: a slot asks ``ceil(cpu / 1000m)`` cores, at least 1 (a pod always runs somewhere);
* memory: in chunks (default 1 GiB). A memory vertex is one chunk, with ``size = chunk / U`` and ``unit`` the
  largest of GiB/MiB/KiB/B dividing the chunk exactly (1 GiB chunk: size 1, unit "GiB"); a slot asks
  ``ceil(bytes / chunk) * size`` in that unit, i.e. whole vertices (flux-sched consumes a pool vertex whole
  under a slot; flux-sched-behaviour.md, gotcha 2);
* GPUs: ``nvidia.com/gpu`` as is.
"""

from __future__ import annotations

import math

from fluxqueue.placement.resources import Resources

_UNITS = (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10), ("B", 1))


def memory_unit(chunk_bytes: int) -> tuple[int, str]:
    """``(size, unit)`` of one memory vertex for a chunk size: 2**30 -> (1, "GiB"), 512Mi -> (512, "MiB")."""
    if chunk_bytes <= 0:
        raise ValueError("memory chunk must be positive")
    for unit, factor in _UNITS:
        if chunk_bytes % factor == 0:
            return chunk_bytes // factor, unit
    raise AssertionError("unreachable: B divides everything")


def slot_shape(per_pod: Resources, memory_chunk_bytes: int = 2**30) -> tuple[int, int, int]:
    """``(cores, memory chunks, gpus)`` one pod's slot asks for."""
    cores = max(1, math.ceil(per_pod.cpu_milli / 1000))
    chunks = math.ceil(per_pod.memory / memory_chunk_bytes) if per_pod.memory > 0 else 0
    return cores, chunks, max(0, per_pod.gpus)
