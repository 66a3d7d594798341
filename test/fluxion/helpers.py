"""Graphs and jobspecs shared by the fluxion tests."""

from __future__ import annotations

import json
from typing import Any

# prior-art §7.4: the minimal graph flux-sched loads (one node, two cores, 1 GiB as one memory vertex).
TINY_JGF = {
    "graph": {
        "nodes": [
            {"id": "0", "metadata": {"type": "cluster", "basename": "cluster", "name": "cluster0", "id": 0, "uniq_id": 0, "rank": -1, "exclusive": False, "unit": "", "size": 1, "paths": {"containment": "/cluster0"}}},
            {"id": "1", "metadata": {"type": "node", "basename": "kind-worker", "name": "kind-worker", "id": 0, "uniq_id": 1, "rank": -1, "exclusive": False, "unit": "", "size": 1, "paths": {"containment": "/cluster0/kind-worker"}}},
            {"id": "2", "metadata": {"type": "core", "basename": "core", "name": "core0", "id": 0, "uniq_id": 2, "rank": -1, "exclusive": False, "unit": "", "size": 1, "paths": {"containment": "/cluster0/kind-worker/core0"}}},
            {"id": "3", "metadata": {"type": "core", "basename": "core", "name": "core1", "id": 1, "uniq_id": 3, "rank": -1, "exclusive": False, "unit": "", "size": 1, "paths": {"containment": "/cluster0/kind-worker/core1"}}},
            {"id": "4", "metadata": {"type": "memory", "basename": "memory", "name": "memory0", "id": 0, "uniq_id": 4, "rank": -1, "exclusive": False, "unit": "MB", "size": 1024, "paths": {"containment": "/cluster0/kind-worker/memory0"}}},
        ],
        "edges": [
            {"source": "0", "target": "1", "metadata": {"subsystem": "containment"}},
            {"source": "1", "target": "2", "metadata": {"subsystem": "containment"}},
            {"source": "1", "target": "3", "metadata": {"subsystem": "containment"}},
            {"source": "1", "target": "4", "metadata": {"subsystem": "containment"}},
        ],
    }
}  # fmt: skip

# prior-art §7.5: what fluxqueue generates for a 2-pod Job with 2 CPUs per pod.
TWO_POD_JOB_YAML = """\
version: 1
resources:
- type: node
  count: 2
  with:
  - type: slot
    count: 1
    label: job
    with:
    - {type: core, count: 2}
attributes:
  system: {duration: 3600}
tasks:
- {command: [echo, default, job], slot: job, count: {per_slot: 1}}
"""

# flux-sched-behaviour.md: one node, one slot of 4 cores, 1 GPU and 16 memory.
NODE_4C_1G_16M_YAML = """\
version: 9999
resources:
  - type: node
    count: 1
    exclusive: true
    with:
      - type: slot
        count: 1
        label: default
        with:
          - {type: core, count: 4}
          - {type: gpu, count: 1}
          - {type: memory, count: 16}
attributes:
  system:
    duration: 3600
tasks:
  - command: ["app"]
    slot: default
    count: {per_slot: 1}
"""


def jobspec(
    *,
    nodes: int | None = None,
    slots: int = 1,
    cores: int = 1,
    gpus: int = 0,
    memory: int = 0,
    exclusive: bool | None = None,
    duration: int = 3600,
    constraints: dict | None = None,
) -> dict[str, Any]:
    inner: list[dict[str, Any]] = [{"type": "core", "count": cores}] if cores else []
    if gpus:
        inner.append({"type": "gpu", "count": gpus})
    if memory:
        inner.append({"type": "memory", "count": memory})
    slot = {"type": "slot", "count": slots, "label": "task", "with": inner}
    if nodes:
        node: dict[str, Any] = {"type": "node", "count": nodes, "with": [slot]}
        if exclusive is not None:
            node["exclusive"] = exclusive
        resources = [node]
    else:
        resources = [slot]
    system: dict[str, Any] = {"duration": duration}
    if constraints:
        system["constraints"] = constraints
    return {
        "version": 1,
        "resources": resources,
        "attributes": {"system": system},
        "tasks": [{"command": ["app"], "slot": "task", "count": {"per_slot": 1}}],
    }


def r_vertices(r: str) -> list[dict[str, Any]]:
    return json.loads(r)["graph"]["nodes"]
