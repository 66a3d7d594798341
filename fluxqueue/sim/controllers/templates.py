"""Pods and ReplicaSets made from templates, and the small pod predicates every workload controller uses."""

from __future__ import annotations

import copy
import json
from typing import Any

Obj = dict[str, Any]

TERMINAL = ("Succeeded", "Failed")
# k8s.io/apimachinery/pkg/util/rand SafeEncodeString: no vowels (no words), no 0/1/3 (look-alikes)
_SAFE_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"


def owner_reference(owner: Obj, block: bool = True) -> Obj:
    md = owner["metadata"]
    return {
        "apiVersion": owner.get("apiVersion", ""),
        "kind": owner.get("kind", ""),
        "name": md["name"],
        "uid": md["uid"],
        "controller": True,
        "blockOwnerDeletion": block,
    }


def pod_from_template(
    owner: Obj,
    template: Obj,
    generate_name: str | None = None,
    name: str | None = None,
    extra_labels: dict[str, str] | None = None,
) -> Obj:
    """controller_utils.go GetPodFromTemplate: labels, annotations, finalizers and spec of the template,
    owned by ``owner`` (controller=true)."""
    template = copy.deepcopy(template or {})
    tmd = template.get("metadata") or {}
    md: Obj = {
        "namespace": owner["metadata"].get("namespace"),
        "labels": {**(tmd.get("labels") or {}), **(extra_labels or {})},
        "ownerReferences": [owner_reference(owner)],
    }
    if name:
        md["name"] = name
    else:
        md["generateName"] = generate_name or owner["metadata"]["name"] + "-"
    if tmd.get("annotations"):
        md["annotations"] = dict(tmd["annotations"])
    if tmd.get("finalizers"):
        md["finalizers"] = list(tmd["finalizers"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": template.get("spec") or {}}


def phase(pod: Obj) -> str:
    return (pod.get("status") or {}).get("phase") or "Pending"


def is_active(pod: Obj) -> bool:
    """controller.IsPodActive: not terminal and not being deleted."""
    return phase(pod) not in TERMINAL and not pod["metadata"].get("deletionTimestamp")


def is_ready(pod: Obj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def is_running_and_ready(pod: Obj) -> bool:
    return phase(pod) == "Running" and is_ready(pod)


def template_hash(template: Obj, collision_count: int = 0) -> str:
    """A stable short hash of a pod template (controller.ComputeHash: fnv32a, then SafeEncodeString)."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    h = 0x811C9DC5
    for b in data:
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    if collision_count:
        for b in str(collision_count).encode():
            h ^= b
            h = (h * 0x01000193) & 0xFFFFFFFF
    return "".join(_SAFE_ALPHANUMS[ord(ch) % len(_SAFE_ALPHANUMS)] for ch in str(h))


def deletion_rank(pod: Obj) -> tuple[int, int, int, str]:
    """Which pods a controller scales down first (ActivePodsWithRanks, simplified): unscheduled, then
    pending, then not ready, then the newest."""
    return (
        0 if not (pod.get("spec") or {}).get("nodeName") else 1,
        0 if phase(pod) == "Pending" else 1,
        0 if not is_ready(pod) else 1,
        "".join(chr(0x10FFFF - ord(ch)) for ch in pod["metadata"].get("creationTimestamp") or ""),
    )
