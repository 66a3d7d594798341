"""The built-in mutating admission plugins that run before webhooks (k8s.io/kubernetes/plugin/pkg/admission).

- Priority (plugin/pkg/admission/priority): a pod's ``priorityClassName`` becomes ``spec.priority`` and
  ``preemptionPolicy``; a missing class is 403 Forbidden; without a name the globalDefault class (or 0) applies.
- DefaultTolerationSeconds: not-ready / unreachable NoExecute tolerations for 300 s.
- ServiceAccount: ``serviceAccountName`` defaults to "default".
The two system priority classes exist from the start, as in every cluster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import errors as E
from .podrules import DEFAULT_TOLERATIONS

if TYPE_CHECKING:
    from .engine import Engine

SYSTEM_PRIORITY_CLASSES = (("system-node-critical", 2000001000), ("system-cluster-critical", 2000000000))


def seed_priority_classes(engine: Engine) -> None:
    t = engine.store.table("scheduling.k8s.io", "priorityclasses")
    for name, value in SYSTEM_PRIORITY_CLASSES:
        obj = {
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": name},
            "value": value,
            "globalDefault": False,
            "preemptionPolicy": "PreemptLowerPriority",
            "description": "Used for system critical pods that must not be moved from their current node.",
        }
        engine._system_fields(obj)
        engine.store.put(t, obj, None)


def admit_pod_create(engine: Engine, pod: dict[str, Any]) -> None:
    spec = pod.setdefault("spec", {})
    classes = engine.store.table("scheduling.k8s.io", "priorityclasses")
    name = spec.get("priorityClassName")
    if name:
        pc = classes.get("", name)
        if pc is None:
            raise E.forbidden(
                "", "pods", pod["metadata"].get("name", ""), f"no PriorityClass with name {name} was found"
            )
    else:
        pc = next((o for o in classes.by_ns.get("", {}).values() if o.get("globalDefault")), None)
        if pc is not None:
            spec["priorityClassName"] = pc["metadata"]["name"]
    value = int(pc.get("value", 0)) if pc else 0
    if spec.get("priority") is not None and spec["priority"] != value:
        raise E.forbidden(
            "",
            "pods",
            pod["metadata"].get("name", ""),
            "the integer value of priority must not be provided in pod spec; priority admission controller computed "
            f"{value} from the given PriorityClass name",
        )
    spec["priority"] = value
    spec.setdefault("preemptionPolicy", (pc or {}).get("preemptionPolicy", "PreemptLowerPriority"))
    tols = spec.setdefault("tolerations", [])
    for key, seconds in DEFAULT_TOLERATIONS:
        if not any(t.get("key") == key and t.get("effect") in (None, "", "NoExecute") for t in tols):
            tols.append(
                {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds}
            )
