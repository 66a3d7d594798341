"""Defaulting and validation for batch and apps workloads.

Jobs: pkg/apis/batch/v1/defaults.go (parallelism/completions 1, backoffLimit 6, completionMode NonIndexed,
suspend false, podReplacementPolicy), pkg/registry/batch/job/strategy.go (generateSelector with the
controller-uid and job-name labels; status reset; generation), pkg/apis/batch/validation ValidateJobUpdate
(selector, completions and completionMode immutable; the pod template immutable except, for a Job that is
suspended and never started, node affinity, node selector, tolerations, labels, annotations and scheduling
gates: KEP-2926). Apps: pkg/apis/apps/v1/defaults.go.

Status fields without ``omitempty`` in k8s.io/api are written as 0 even before any controller has set them
(a new ReplicaSet reads ``status: {replicas: 0}``), and typed clients that require them (the official Python
client's V1DaemonSetStatus, ...) refuse a body without them: :data:`ZERO_STATUS`.
"""

from __future__ import annotations

from typing import Any

from .podrules import default_pod_spec, validate_pod_spec
from .strategy import Obj, Strategy

JOB_TEMPLATE_MUTABLE_WHEN_SUSPENDED = ("nodeSelector", "tolerations", "schedulingGates")

# The integer status fields without omitempty (k8s.io/api apps/v1 and core/v1 types.go), in their order there.
ZERO_STATUS: dict[str, tuple[str, ...]] = {
    "Deployment": (),
    "ReplicaSet": ("replicas",),
    "StatefulSet": ("replicas", "availableReplicas"),
    "DaemonSet": ("currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled", "numberReady"),
    "ReplicationController": ("replicas",),
}


def _zero_status(status: Obj | None, fields: tuple[str, ...]) -> Obj:
    """``status`` with the fields a Go client would decode as 0 present as 0 (what the server writes); a
    copy when something is added (``status`` may be shared with the stored object)."""
    if status is None:
        return dict.fromkeys(fields, 0)
    missing = [f for f in fields if status.get(f) is None]
    if not missing:
        return status
    return {**status, **dict.fromkeys(missing, 0)}


class JobStrategy(Strategy):
    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if spec.get("completions") is None and spec.get("parallelism") is None:
            spec["completions"] = 1
            spec["parallelism"] = 1
        if spec.get("parallelism") is None:
            spec["parallelism"] = 1
        if spec.get("backoffLimit") is None:
            spec["backoffLimit"] = 2147483647 if spec.get("backoffLimitPerIndex") is not None else 6
        spec.setdefault("completionMode", "NonIndexed")
        spec.setdefault("suspend", False)
        if "podFailurePolicy" not in spec:
            spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
        spec.setdefault("manualSelector", None)
        if spec.get("manualSelector") is None:
            del spec["manualSelector"]
        template = spec.setdefault("template", {})
        default_pod_spec(template.setdefault("spec", {}))

    def prepare_create(self, obj: Obj) -> None:
        obj["status"] = {}

    def after_system_fields(self, obj: Obj) -> None:
        spec = obj["spec"]
        if spec.get("manualSelector"):
            return
        uid = obj["metadata"]["uid"]
        name = obj["metadata"]["name"]
        tmd = spec["template"].setdefault("metadata", {})
        labels = tmd.setdefault("labels", {})
        labels.setdefault("batch.kubernetes.io/controller-uid", uid)
        labels.setdefault("batch.kubernetes.io/job-name", name)
        labels.setdefault("controller-uid", uid)
        labels.setdefault("job-name", name)
        spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}

    def validate_create(self, obj: Obj) -> list[tuple[str, str]]:
        errs = []
        spec = obj["spec"]
        pspec = (spec.get("template") or {}).get("spec") or {}
        if pspec.get("restartPolicy") not in ("OnFailure", "Never"):
            errs.append(
                (
                    "spec.template.spec.restartPolicy",
                    f'Unsupported value: "{pspec.get("restartPolicy")}": supported values: "OnFailure", "Never"',
                )
            )
        errs += validate_pod_spec(pspec, "spec.template.spec")
        if spec.get("completionMode") == "Indexed" and spec.get("completions") is None:
            errs.append(("spec.completions", "Required value: when completion mode is Indexed"))
        for f in ("parallelism", "completions", "backoffLimit"):
            v = spec.get(f)
            if v is not None and (not isinstance(v, int) or v < 0):
                errs.append((f"spec.{f}", f"Invalid value: {v}: must be greater than or equal to 0"))
        return errs

    def prepare_update(self, new: Obj, old: Obj) -> None:
        new["status"] = old.get("status", {})

    def validate_update(self, new: Obj, old: Obj) -> list[tuple[str, str]]:
        errs: list[tuple[str, str]] = []
        ns, os_ = new.get("spec") or {}, old.get("spec") or {}
        for f in ("selector", "completionMode"):
            if ns.get(f) != os_.get(f):
                errs.append((f"spec.{f}", f"Invalid value: {ns.get(f)!r}: field is immutable"))
        if ns.get("completions") != os_.get("completions") and not (
            # elastic Indexed Jobs may change completions together with parallelism
            ns.get("completionMode") == "Indexed" and ns.get("completions") == ns.get("parallelism")
        ):
            errs.append(("spec.completions", f"Invalid value: {ns.get('completions')}: field is immutable"))
        ot, nt = os_.get("template") or {}, ns.get("template") or {}
        if ot != nt:
            suspended_never_started = bool(os_.get("suspend")) and not (old.get("status") or {}).get(
                "startTime"
            )
            if not suspended_never_started or not _only_scheduling_directives_changed(ot, nt):
                errs.append(("spec.template", "Invalid value: field is immutable"))
        return errs


def _only_scheduling_directives_changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    om, nm = old.get("metadata") or {}, new.get("metadata") or {}
    if {k: v for k, v in om.items() if k not in ("labels", "annotations")} != {
        k: v for k, v in nm.items() if k not in ("labels", "annotations")
    }:
        return False
    os_, ns = dict(old.get("spec") or {}), dict(new.get("spec") or {})
    for f in JOB_TEMPLATE_MUTABLE_WHEN_SUSPENDED:
        os_.pop(f, None)
        ns.pop(f, None)
    oa, na = dict(os_.pop("affinity", None) or {}), dict(ns.pop("affinity", None) or {})
    oa.pop("nodeAffinity", None)
    na.pop("nodeAffinity", None)
    return os_ == ns and oa == na


class _TemplatedStrategy(Strategy):
    """Deployments, ReplicaSets, StatefulSets, DaemonSets: spec defaults and a reset status on create."""

    def __init__(self, kind: str):
        self.kind = kind
        self.zero_status = ZERO_STATUS[kind]

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if self.kind == "ReplicationController":
            # pkg/apis/core/v1/defaults.go SetDefaults_ReplicationController: selector and labels from the
            # template's labels when unset
            tlabels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
            if tlabels:
                if not spec.get("selector"):
                    spec["selector"] = dict(tlabels)
                md = obj.setdefault("metadata", {})
                if not md.get("labels"):
                    md["labels"] = dict(tlabels)
        if self.kind != "DaemonSet":
            spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        if self.kind == "Deployment":
            spec.setdefault("progressDeadlineSeconds", 600)
            strategy = spec.setdefault("strategy", {})
            strategy.setdefault("type", "RollingUpdate")
            if strategy["type"] == "RollingUpdate":
                ru = strategy.setdefault("rollingUpdate", {})
                ru.setdefault("maxUnavailable", "25%")
                ru.setdefault("maxSurge", "25%")
        elif self.kind == "StatefulSet":
            spec.setdefault("podManagementPolicy", "OrderedReady")
            spec.setdefault("updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
            spec.setdefault(
                "persistentVolumeClaimRetentionPolicy", {"whenDeleted": "Retain", "whenScaled": "Retain"}
            )
        elif self.kind == "DaemonSet":
            spec.setdefault(
                "updateStrategy",
                {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
            )
        if self.kind in ("ReplicaSet", "ReplicationController"):
            spec.pop("revisionHistoryLimit", None)
        if self.kind == "ReplicationController" and "minReadySeconds" not in spec:
            spec["minReadySeconds"] = 0
        default_pod_spec(spec.setdefault("template", {}).setdefault("spec", {}))

    def prepare_create(self, obj: Obj) -> None:
        obj["status"] = _zero_status(None, self.zero_status)

    def prepare_status_update(self, new: Obj, old: Obj) -> None:
        if self.zero_status:
            new["status"] = _zero_status(new.get("status"), self.zero_status)

    def validate_create(self, obj: Obj) -> list[tuple[str, str]]:
        spec = obj["spec"]
        errs = validate_pod_spec((spec.get("template") or {}).get("spec") or {}, "spec.template.spec")
        if errs:
            return errs
        sel = spec.get("selector")
        if not sel:
            return [("spec.selector", "Required value")]
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        from .selection import labels_match, selector_from_label_selector_object

        if self.kind == "ReplicationController":
            if not isinstance(sel, dict) or any(labels.get(k) != v for k, v in sel.items()):
                return [
                    (
                        "spec.template.metadata.labels",
                        f"Invalid value: {labels!r}: `selector` does not match template `labels`",
                    )
                ]
            return []
        if not labels_match(selector_from_label_selector_object(sel), labels):
            return [
                (
                    "spec.template.metadata.labels",
                    "Invalid value: `selector` does not match template `labels`",
                )
            ]
        return []

    def prepare_update(self, new: Obj, old: Obj) -> None:
        new["status"] = old.get("status", {})

    def validate_update(self, new: Obj, old: Obj) -> list[tuple[str, str]]:
        if self.kind == "ReplicationController":
            return []  # a ReplicationController's selector may change (pkg/apis/core/validation)
        if (new.get("spec") or {}).get("selector") != (old.get("spec") or {}).get("selector"):
            return [("spec.selector", "Invalid value: field is immutable")]
        return []


STRATEGIES: dict[tuple[str, str], Strategy] = {
    ("batch", "jobs"): JobStrategy(),
    ("apps", "deployments"): _TemplatedStrategy("Deployment"),
    ("apps", "replicasets"): _TemplatedStrategy("ReplicaSet"),
    ("apps", "statefulsets"): _TemplatedStrategy("StatefulSet"),
    ("apps", "daemonsets"): _TemplatedStrategy("DaemonSet"),
    ("", "replicationcontrollers"): _TemplatedStrategy("ReplicationController"),
}
