"""The mutating admission decision, as a pure function: AdmissionReview in, AdmissionReview out.

No I/O, no clock, no state: every replica answers the same, ``dryRun`` requests get exactly the mutation a real
request would (nothing happens anywhere else), and side effects (FluxJob, queue row) belong to the controller,
which sees the admitted objects through its watches.

What gets mutated (CREATE unless said otherwise):

* **Job** (``batch/v1``): ``spec.suspend: true``, pod template ``schedulerName: fluxqueue``, label
  ``fluxqueue.io/managed: "true"`` on the Job and on its template (so the Job's pods carry it too).
  A Job the user created already suspended stays theirs: it is marked ``fluxqueue.io/user-suspended: "true"``
  and the controller leaves it alone. When the user unsuspends it (UPDATE, ``suspend`` true -> false), the
  webhook turns that into ``suspend: true`` again and removes the mark: from then on it is queued like any
  other managed Job and started by the controller.
* **JobSet** (``jobset.x-k8s.io``) and **MPIJob** (``kubeflow.org``), and any kind with an adapter
  (:mod:`fluxqueue.workloads`): the same, through the kind's own suspend flag and pod templates.
* **A Job a workload creates** (a JobSet's child, an MPIJob's launcher: its controller owner is that
  workload): its pod template is marked ``fluxqueue.io/workload: <kind>/<name>/<uid>``, nothing else.
* **Pods of a Job** (controller ownerReference of kind Job): never patched. A managed Job's pods inherit
  ``schedulerName: fluxqueue`` and the managed label from the template and are created only after the
  controller unsuspended the Job for its allocation, so the controller binds them directly (no gate to
  remove). Pods of a Job we did not manage stay with whatever scheduler they name.
* **Other pods** (bare, ``generateName``, ReplicaSet/Deployment, StatefulSet or any other owner): the
  scheduling gate ``fluxqueue.io/queued``, ``schedulerName: fluxqueue``, the managed label. Each is its own
  unit (or a pod-group member), so scale-ups and replacement pods are scheduled too.

Never touched: system namespaces (Kubernetes', fluxqueue's own, a configurable list), DaemonSet pods, static
(mirror) pods, pods already bound (``spec.nodeName``; gates are refused on them), pods and Jobs naming another
scheduler, Jobs managed by another controller (``spec.managedBy``), objects labelled
``fluxqueue.io/skip: "true"`` (on a Job: the Job or its template). Other UPDATEs are allowed unchanged.

Invalid fluxqueue labels (group size, duration, exclusive...) are rejected with a message the user can act on.
Any other failure allows the object unchanged and logs: fluxqueue never holds the cluster hostage.

Patches are minimal explicit RFC 6902 ops on the exact paths (no diff of re-serialised objects, which drops
fields an older client does not know: prior-art §2.4), with label keys escaped per RFC 6901.
"""

from __future__ import annotations

import base64
import copy
from dataclasses import dataclass, field
from typing import Any

import orjson

from fluxqueue.kube import names
from fluxqueue.log import get_logger
from fluxqueue.placement.units import UnitError, read_settings, setting
from fluxqueue.webhook.config import WebhookConfig
from fluxqueue.workloads.base import Workload, controller_ref, get_path, workload_annotation
from fluxqueue.workloads.job import JobWorkload
from fluxqueue.workloads.registry import parent_of_job, workload_of_object

log = get_logger(__name__)

ADMISSION_API_VERSION = "admission.k8s.io/v1"

# Outcomes (also the metrics label).
MUTATED = "mutated"
SKIPPED = "skipped"
REJECTED = "rejected"
ERROR = "error"


def escape(token: str) -> str:
    """A JSON Pointer reference token (RFC 6901 §3): ``~`` -> ``~0``, ``/`` -> ``~1``."""
    return token.replace("~", "~0").replace("/", "~1")


def _private_copy(obj: dict) -> dict:
    """A deep copy of a decoded JSON object; orjson's round trip is several times faster than deepcopy."""
    try:
        return orjson.loads(orjson.dumps(obj))
    except TypeError:  # an integer beyond 64 bits
        return copy.deepcopy(obj)


@dataclass
class Admission:
    """The decision for one request."""

    outcome: str
    reason: str = ""
    patch: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""  # for rejections
    warnings: list[str] = field(default_factory=list)
    resource: str = ""  # "pods" | "jobs" | other (metrics)

    def response(self, uid: str) -> dict[str, Any]:
        resp: dict[str, Any] = {"uid": uid, "allowed": self.outcome != REJECTED}
        if self.outcome == REJECTED:
            resp["status"] = {"status": "Failure", "code": 422, "reason": "Invalid", "message": self.message}
        elif self.patch:
            resp["patchType"] = "JSONPatch"
            resp["patch"] = base64.b64encode(orjson.dumps(self.patch)).decode()
        if self.warnings:
            resp["warnings"] = list(self.warnings)
        return resp


class _Patch:
    """Accumulates add/replace ops against the object as it stands (parents created when absent)."""

    def __init__(self, obj: dict[str, Any]) -> None:
        self.obj = obj
        self.ops: list[dict[str, Any]] = []

    def set(self, path: list[str], value: Any) -> None:
        """Set ``path`` to ``value``, adding missing parent maps with one op (never overwriting siblings)."""
        node: Any = self.obj
        for depth, key in enumerate(path[:-1]):
            if isinstance(node, list) and key.isdigit() and int(key) < len(node):
                node = node[int(key)]  # a list item (a JobSet's replicated job): walked into, never built
                continue
            child = node.get(key) if isinstance(node, dict) else None
            if not isinstance(child, dict | list):
                # Build the missing subtree in one "add" at the first absent level.
                subtree: Any = value
                for k in reversed(path[depth + 1 :]):
                    subtree = {k: subtree}
                self.ops.append({"op": "add", "path": _pointer(path[: depth + 1]), "value": subtree})
                node[key] = subtree  # keep our view current for later ops
                return
            node = child
        last = path[-1]
        if node.get(last) == value:
            return
        op = "replace" if last in node else "add"
        self.ops.append({"op": op, "path": _pointer(path), "value": value})
        node[last] = value

    def remove(self, path: list[str]) -> None:
        node: Any = self.obj
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
            if node is None:
                return
        if isinstance(node, dict) and path[-1] in node:
            self.ops.append({"op": "remove", "path": _pointer(path)})
            del node[path[-1]]

    def append_gate(self, spec_path: list[str], gate: str) -> None:
        spec: Any = self.obj
        for key in spec_path:
            spec = spec.get(key) if isinstance(spec, dict) else None
        gates = (spec or {}).get("schedulingGates") if isinstance(spec, dict) else None
        if isinstance(gates, list):
            if any(isinstance(g, dict) and g.get("name") == gate for g in gates):
                return
            self.ops.append(
                {
                    "op": "add",
                    "path": _pointer([*spec_path, "schedulingGates"]) + "/-",
                    "value": {"name": gate},
                }
            )
            gates.append({"name": gate})
        else:
            self.set([*spec_path, "schedulingGates"], [{"name": gate}])


def _pointer(path: list[str]) -> str:
    return "/" + "/".join(escape(p) for p in path)


def _foreign_scheduler(name: Any, config: WebhookConfig) -> bool:
    name = name or ""
    return name != config.scheduler_name and name not in config.takeover_scheduler_names


# --- per kind ----------------------------------------------------------------------------------------------------


def _workload_create(kind: Workload, obj: dict[str, Any], namespace: str, config: WebhookConfig) -> Admission:
    """A workload object (Job, JobSet, MPIJob...): suspended, its pod templates naming our scheduler."""
    meta = obj.get("metadata") or {}
    templates = [get_path(obj, path) or {} for path in kind.pod_template_paths(obj)]
    if namespace in config.system_namespaces:
        return Admission(SKIPPED, "system namespace")
    if setting([meta, *(t.get("metadata") for t in templates)], names.LABEL_SKIP) == "true":
        return Admission(SKIPPED, "fluxqueue.io/skip")
    if kind.may_be_a_part:
        parent = parent_of_job(obj)
        if parent is not None:
            return _child_job(parent, obj)
    managed_by = kind.managed_elsewhere(obj)
    if managed_by:
        return Admission(SKIPPED, f"managed by {managed_by}")
    if any(_foreign_scheduler((t.get("spec") or {}).get("schedulerName"), config) for t in templates):
        return Admission(SKIPPED, "another scheduler")
    try:
        kind.unit(obj, config.unit_defaults)  # validates every label, incl. group size vs parallelism
    except UnitError as exc:
        return Admission(REJECTED, "invalid labels", message=f"fluxqueue: {exc}")
    p = _Patch(obj)
    p.set(["metadata", "labels", names.LABEL_MANAGED], "true")
    warnings = []
    if kind.suspended(obj):
        p.set(["metadata", "annotations", names.ANNOTATION_USER_SUSPENDED], "true")
        warnings.append(
            f"fluxqueue: the {kind.api_kind} was created suspended; fluxqueue queues it when you unsuspend it"
        )
    else:
        p.set(kind.suspend_path(), True)
    for path in kind.pod_template_paths(obj):
        p.set([*path, "metadata", "labels", names.LABEL_MANAGED], "true")
        p.set([*path, "spec", "schedulerName"], config.scheduler_name)
    return Admission(MUTATED, kind.api_kind.lower(), patch=p.ops, warnings=warnings)


def _child_job(parent: Workload, job: dict[str, Any]) -> Admission:
    """A Job a workload creates as part of itself (a JobSet's child, an MPIJob's launcher): not a unit of its
    own. Its pods are marked with the workload (their ownerReference names only the Job), so they are bound
    to the workload's allocation; suspending it is the parent controller's business."""
    ref = controller_ref(job.get("metadata") or {}) or {}
    template = (job.get("spec") or {}).get("template") or {}
    if (template.get("spec") or {}).get("schedulerName") is None:
        return Admission(SKIPPED, f"{parent.api_kind} child Job")
    p = _Patch(job)
    value = workload_annotation(parent.kind, ref.get("name") or "", ref.get("uid") or "")
    p.set(["spec", "template", "metadata", "annotations", names.ANNOTATION_WORKLOAD], value)
    return Admission(MUTATED, f"{parent.api_kind} child Job", patch=p.ops)


def _workload_update(
    kind: Workload, obj: dict[str, Any], old: dict[str, Any] | None, config: WebhookConfig
) -> Admission:
    meta = obj.get("metadata") or {}
    if (meta.get("labels") or {}).get(names.LABEL_MANAGED) != "true":
        return Admission(SKIPPED, "not managed")
    unsuspending = old is not None and kind.suspended(old) and not kind.suspended(obj)
    if not unsuspending:
        return Admission(SKIPPED, "update")
    annotations = meta.get("annotations") or {}
    user_suspended = annotations.get(names.ANNOTATION_USER_SUSPENDED) == "true"
    placed = bool(annotations.get(names.ANNOTATION_NODES))
    if not user_suspended and (placed or not config.strict_unsuspend):
        return Admission(SKIPPED, "controller release")
    p = _Patch(obj)
    p.set(kind.suspend_path(), True)
    p.remove(["metadata", "annotations", names.ANNOTATION_USER_SUSPENDED])
    return Admission(
        MUTATED,
        "queued on unsuspend",
        patch=p.ops,
        warnings=[
            f"fluxqueue: the {kind.api_kind} is queued and stays suspended until fluxqueue places all of its pods"
        ],
    )


def _pod_create(pod: dict[str, Any], namespace: str, config: WebhookConfig) -> Admission:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    if namespace in config.system_namespaces:
        return Admission(SKIPPED, "system namespace")
    if names.ANNOTATION_MIRROR_POD in (meta.get("annotations") or {}):
        return Admission(SKIPPED, "mirror pod")
    owner = controller_ref(meta)
    owner_kind = (owner or {}).get("kind")
    if owner_kind in ("DaemonSet", "Node"):
        return Admission(SKIPPED, f"{owner_kind} pod")
    if spec.get("nodeName"):
        return Admission(SKIPPED, "already bound")
    if _foreign_scheduler(spec.get("schedulerName"), config):
        return Admission(SKIPPED, "another scheduler")
    if setting([meta], names.LABEL_SKIP) == "true":
        return Admission(SKIPPED, "fluxqueue.io/skip")
    if owner is not None and JobWorkload().owns_ref(owner):
        # The Job (or the workload that made it) is the unit: its pods are created once it is placed and are
        # bound by the controller from its allocation.
        return Admission(SKIPPED, "job pod")
    try:
        read_settings([meta])
    except UnitError as exc:
        return Admission(REJECTED, "invalid labels", message=f"fluxqueue: {exc}")
    p = _Patch(pod)
    p.set(["metadata", "labels", names.LABEL_MANAGED], "true")
    p.set(["spec", "schedulerName"], config.scheduler_name)
    p.append_gate(["spec"], config.gate)
    return Admission(MUTATED, "pod", patch=p.ops)


# --- entry points ------------------------------------------------------------------------------------------------


def admit(request: dict[str, Any], config: WebhookConfig) -> Admission:
    """Decide one AdmissionRequest (pure). Raises nothing the caller must handle besides bugs; see mutate()."""
    kind = request.get("kind") or {}
    group, kind_name = kind.get("group", ""), kind.get("kind", "")
    operation = request.get("operation")
    resource = (request.get("resource") or {}).get("resource", "") or kind_name.lower() + "s"
    if request.get("subResource"):
        return Admission(SKIPPED, "subresource", resource=resource)
    obj = request.get("object")
    if not isinstance(obj, dict):
        return Admission(SKIPPED, "no object", resource=resource)
    # Work on a private copy: the patch builder records what it changed.
    obj = _private_copy(obj)
    namespace = request.get("namespace") or (obj.get("metadata") or {}).get("namespace") or "default"
    kind = workload_of_object(group, kind_name)
    if kind is not None:
        if operation == "CREATE":
            decision = _workload_create(kind, obj, namespace, config)
        elif operation == "UPDATE":
            decision = _workload_update(kind, obj, request.get("oldObject"), config)
        else:
            decision = Admission(SKIPPED, "operation")
    elif group == "" and kind_name == "Pod" and operation == "CREATE":
        decision = _pod_create(obj, namespace, config)
    else:
        decision = Admission(SKIPPED, "not handled")
    decision.resource = resource
    return decision


def review_for(request: dict[str, Any] | None, decision: Admission) -> dict[str, Any]:
    uid = (request or {}).get("uid", "")
    return {
        "apiVersion": ADMISSION_API_VERSION,
        "kind": "AdmissionReview",
        "response": decision.response(uid),
    }


def decide(review: dict[str, Any], config: WebhookConfig) -> tuple[dict[str, Any], Admission]:
    """(AdmissionReview response, decision); never raises: a failure allows the object unchanged."""
    request = review.get("request") if isinstance(review, dict) else None
    try:
        if not isinstance(request, dict):
            raise ValueError("AdmissionReview without a request")
        decision = admit(request, config)
    except Exception:
        req = request if isinstance(request, dict) else {}
        log.exception(
            "admission failed; allowing unchanged",
            uid=req.get("uid", ""),
            kind=(req.get("kind") or {}).get("kind", ""),
            namespace=req.get("namespace", ""),
            name=req.get("name", ""),
        )
        decision = Admission(ERROR, "exception")
    return review_for(request if isinstance(request, dict) else None, decision), decision


def mutate(review: dict[str, Any], config: WebhookConfig) -> dict[str, Any]:
    """AdmissionReview v1 in, AdmissionReview v1 out (same uid). Pure; never raises."""
    return decide(review, config)[0]
