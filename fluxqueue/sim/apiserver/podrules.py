"""Pod defaulting, validation and the pods/binding rules, after the real API server.

Sources: k8s.io/kubernetes pkg/apis/core/v1/defaults.go (defaults), pkg/registry/core/pod/strategy.go
(PrepareForCreate: status reset, the SchedulingGated condition; CheckGracefulDelete), pkg/apis/core/validation
ValidatePodUpdate / validateSchedulingGates / validateNodeAffinity narrowing (KEP-3521 Pod Scheduling
Readiness, KEP-3838 mutable scheduling directives for gated pods), pkg/registry/core/pod/storage/storage.go
(BindingREST.assignPod / setPodNodeAndMetadata), plugin/pkg/admission/defaulttolerationseconds.
"""

from __future__ import annotations

import time
from typing import Any

from fluxqueue.kube.quantity import QuantityError, parse_quantity

from .errors import APIError, conflict
from .strategy import Obj, Strategy


def now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def default_pod_spec(spec: dict[str, Any]) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    if spec.get("serviceAccountName") is None and spec.get("serviceAccount"):
        spec["serviceAccountName"] = spec["serviceAccount"]
    for field in ("containers", "initContainers"):
        for c in spec.get(field) or []:
            _default_container(c)


def _default_container(c: dict[str, Any]) -> None:
    image = c.get("image") or ""
    if "imagePullPolicy" not in c:
        tag = image.rsplit("/", 1)[-1]
        c["imagePullPolicy"] = (
            "Always" if (":" not in tag and "@" not in image) or tag.endswith(":latest") else "IfNotPresent"
        )
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    res = c.setdefault("resources", {})
    # defaults.go SetDefaults_Pod: a container with limits but no requests requests its limits.
    limits = res.get("limits")
    if limits:
        req = res.setdefault("requests", {})
        for k, v in limits.items():
            req.setdefault(k, v)
    for p in c.get("ports") or []:
        p.setdefault("protocol", "TCP")


def qos_class(spec: dict[str, Any]) -> str:
    """pkg/apis/core/helper/qos: Guaranteed when every container has equal cpu+memory requests and limits."""
    requests_any = False
    guaranteed = True
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        if req or lim:
            requests_any = True
        for r in ("cpu", "memory"):
            if r not in lim or str(lim.get(r)) != str(req.get(r, lim.get(r))):
                guaranteed = False
    if not requests_any:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


DEFAULT_TOLERATIONS = (
    ("node.kubernetes.io/not-ready", 300),
    ("node.kubernetes.io/unreachable", 300),
)


GATED_CONDITION_MESSAGE = "Scheduling is blocked due to non-empty scheduling gates"


class PodStrategy(Strategy):
    defaults_fill_only = True  # setdefault and fields set only when absent (default_pod_spec)

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        default_pod_spec(spec)
        spec.setdefault("enableServiceLinks", True)
        spec.setdefault("serviceAccountName", "default")
        spec.setdefault("serviceAccount", spec["serviceAccountName"])

    def prepare_create(self, obj: Obj) -> None:
        spec = obj["spec"]
        status: dict[str, Any] = {"phase": "Pending", "qosClass": qos_class(spec)}
        if spec.get("schedulingGates"):
            # strategy.go applySchedulingGatedCondition
            status["conditions"] = [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "SchedulingGated",
                    "message": GATED_CONDITION_MESSAGE,
                    "lastProbeTime": None,
                    "lastTransitionTime": now_rfc3339(),
                }
            ]
        obj["status"] = status

    def validate_create(self, obj: Obj) -> list[tuple[str, str]]:
        spec = obj.get("spec") or {}
        errs = validate_pod_spec(spec, "spec")
        seen = set()
        for i, g in enumerate(spec.get("schedulingGates") or []):
            name = g.get("name", "")
            if name in seen:
                errs.append((f"spec.schedulingGates[{i}]", f'Duplicate value: "{name}"'))
            seen.add(name)
        if spec.get("nodeName") and spec.get("schedulingGates"):
            # validation.go: "spec.nodeName: Forbidden: cannot be set until all schedulingGates have been cleared"
            errs.append(
                ("spec.nodeName", "Forbidden: cannot be set until all schedulingGates have been cleared")
            )
        if spec.get("restartPolicy") not in ("Always", "OnFailure", "Never"):
            errs.append(("spec.restartPolicy", f'Unsupported value: "{spec.get("restartPolicy")}"'))
        return errs

    def prepare_update(self, new: Obj, old: Obj) -> None:
        new["status"] = old.get("status", {})

    def validate_update(self, new: Obj, old: Obj) -> list[tuple[str, str]]:
        return validate_pod_spec_update(new.get("spec") or {}, old.get("spec") or {})

    def prepare_status_update(self, new: Obj, old: Obj) -> None:
        pass

    def graceful_delete_seconds(self, obj: Obj, requested: int | None) -> int:
        # strategy.go CheckGracefulDelete: unscheduled or terminated pods go at once.
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
            return 0
        if requested is not None:
            return max(requested, 0)
        return int(spec.get("terminationGracePeriodSeconds", 30))


def validate_pod_spec(spec: dict[str, Any], path: str) -> list[tuple[str, str]]:
    """validation.go ValidatePodSpec, the parts clients trip over: containers, names, resources."""
    errs: list[tuple[str, str]] = []
    if not spec.get("containers"):
        errs.append((f"{path}.containers", "Required value"))
    names: set[str] = set()
    for field in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(field) or []):
            where = f"{path}.{field}[{i}]"
            name = c.get("name") or ""
            if not name:
                errs.append((f"{where}.name", "Required value"))
            elif name in names:
                errs.append((f"{where}.name", f'Duplicate value: "{name}"'))
            names.add(name)
            if not c.get("image"):
                errs.append((f"{where}.image", "Required value"))
            errs += _validate_resources(c.get("resources") or {}, f"{where}.resources")
    return errs


_QUANTITIES: dict[tuple[type, Any], Any] = {}


def _quantity(q: Any) -> Any:
    """parse_quantity, remembered: pods of a template carry the same few quantity strings (by type too:
    1 and 1.0 parse differently)."""
    key = (type(q), q)
    try:
        hit = _QUANTITIES.get(key)
    except TypeError:  # not hashable: parse_quantity says what is wrong with it
        return parse_quantity(q)
    if hit is None:
        if len(_QUANTITIES) > 4096:
            _QUANTITIES.clear()
        hit = _QUANTITIES[key] = parse_quantity(q)
    return hit


def _validate_resources(res: dict[str, Any], path: str) -> list[tuple[str, str]]:
    errs: list[tuple[str, str]] = []
    parsed: dict[str, dict[str, Any]] = {}
    for kind in ("limits", "requests"):
        parsed[kind] = {}
        for name, q in (res.get(kind) or {}).items():
            try:
                parsed[kind][name] = _quantity(q)
            except QuantityError:
                errs.append(
                    (
                        f"{path}.{kind}[{name}]",
                        f"Invalid value: \"{q}\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
                    )
                )
                continue
            if parsed[kind][name] < 0:
                errs.append(
                    (f"{path}.{kind}[{name}]", f'Invalid value: "{q}": must be greater than or equal to 0')
                )
    for name, req in parsed["requests"].items():
        lim = parsed["limits"].get(name)
        if lim is not None and req > lim:
            errs.append(
                (
                    f"{path}.requests",
                    f'Invalid value: "{res["requests"][name]}": must be less than or equal to {name} limit of {res["limits"][name]}',
                )
            )
    return errs


POD_UPDATE_FORBIDDEN = (
    "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
    "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
    "(allow it to be set to 1 if it was previously negative)"
)


def validate_pod_spec_update(new: dict[str, Any], old: dict[str, Any]) -> list[tuple[str, str]]:
    errs: list[tuple[str, str]] = []
    old_gates = [g.get("name") for g in old.get("schedulingGates") or []]
    new_gates = [g.get("name") for g in new.get("schedulingGates") or []]
    for g in new_gates:
        if g not in old_gates:
            # validation.go validateSchedulingGates
            errs.append(
                (
                    "spec.schedulingGates",
                    f"Forbidden: only deletion is allowed, but found new scheduling gate '{g}'",
                )
            )
    gated = bool(old_gates)
    # Start from the old spec and copy in what may change; anything else that differs is forbidden.
    allowed = {k: v for k, v in old.items()}
    for field in ("containers", "initContainers"):
        olds = old.get(field) or []
        news = new.get(field) or []
        if len(olds) == len(news):
            merged = []
            for oc, nc in zip(olds, news, strict=True):
                c = dict(oc)
                if "image" in nc:
                    c["image"] = nc["image"]
                merged.append(c)
            allowed[field] = merged
    if "activeDeadlineSeconds" in new:
        allowed["activeDeadlineSeconds"] = new["activeDeadlineSeconds"]
    old_tols = old.get("tolerations") or []
    new_tols = new.get("tolerations") or []
    if all(t in new_tols for t in old_tols):
        allowed["tolerations"] = new_tols
    if new_gates != old_gates and all(g in old_gates for g in new_gates):
        allowed["schedulingGates"] = new.get("schedulingGates") or []
        if not new_gates:
            allowed.pop("schedulingGates", None)
            if "schedulingGates" in new:
                allowed["schedulingGates"] = new["schedulingGates"]
    if gated:
        # KEP-3838: while gated, nodeSelector may gain entries and required node affinity may narrow.
        ons, nns = old.get("nodeSelector") or {}, new.get("nodeSelector") or {}
        if ons != nns:
            if all(nns.get(k) == v for k, v in ons.items()):
                allowed["nodeSelector"] = new.get("nodeSelector")
            else:
                errs.append(
                    (
                        "spec.nodeSelector",
                        "Invalid value: only additions to spec.nodeSelector are allowed (no mutations or deletions)",
                    )
                )
        if (old.get("affinity") or {}) != (new.get("affinity") or {}):
            why = _affinity_narrowing_error(old.get("affinity") or {}, new.get("affinity") or {})
            if why:
                errs.append(
                    ("spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution", why)
                )
            else:
                allowed["affinity"] = new.get("affinity")
    if not errs and _strip_none(allowed) != _strip_none(new):
        errs.append(("spec", POD_UPDATE_FORBIDDEN))
    return errs


def _strip_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None and v != [] and v != {}} if isinstance(d, dict) else d


def _affinity_narrowing_error(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """validation.go validateNodeAffinityMutation: only node affinity may change, and required terms only narrow."""
    o_rest = {k: v for k, v in old.items() if k != "nodeAffinity"}
    n_rest = {k: v for k, v in new.items() if k != "nodeAffinity"}
    if o_rest != n_rest:
        return "Invalid value: only node affinity may be changed while the pod is gated"
    oreq = ((old.get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get(
        "nodeSelectorTerms"
    ) or []
    nreq = ((new.get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get(
        "nodeSelectorTerms"
    ) or []
    if not oreq:
        return None
    if len(oreq) != len(nreq):
        return "Invalid value: nodeSelectorTerms may only be narrowed (same number of terms)"
    for ot, nt in zip(oreq, nreq, strict=True):
        for field in ("matchExpressions", "matchFields"):
            if not all(e in (nt.get(field) or []) for e in ot.get(field) or []):
                return f"Invalid value: {field} of a nodeSelectorTerm may only be extended"
    return None


def bind(pod: Obj, binding: Obj) -> Obj:
    """BindingREST.assignPod: the new pod state, or APIError 409 as the real server refuses it."""
    md = pod["metadata"]
    name = md["name"]
    target = binding.get("target") or {}
    node = target.get("name")
    if target.get("kind") not in (None, "", "Node"):
        raise APIError(400, "BadRequest", f"a Binding's target must be a Node, not {target.get('kind')}")
    if not node:
        raise APIError(
            422, "Invalid", f'Binding.meta.k8s.io "{name}" is invalid: target.name: Required value'
        )
    if md.get("deletionTimestamp"):
        raise conflict("", "pods", name, f"pod {name} is being deleted, cannot be assigned to a host")
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        raise conflict("", "pods", name, f'pod {name} is already assigned to node "{spec["nodeName"]}"')
    if spec.get("schedulingGates"):
        raise conflict("", "pods", name, f"pod {name} has non-empty .spec.schedulingGates")
    new = dict(pod)
    new["metadata"] = dict(md)
    ann = (binding.get("metadata") or {}).get("annotations")
    if ann:
        new["metadata"]["annotations"] = {**(md.get("annotations") or {}), **ann}
    new["spec"] = dict(spec)
    new["spec"]["nodeName"] = node
    status = dict(pod.get("status") or {})
    conds = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
    conds.append(
        {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": now_rfc3339()}
    )
    status["conditions"] = conds
    new["status"] = status
    return new


# ----- pods/ephemeralcontainers (kubectl debug) and pods/resize (in-place resize)
POD_SPEC_SUBRESOURCES = ("ephemeralcontainers", "resize")
# what an ephemeral container may not set (validation.go validateEphemeralContainers)
_EPHEMERAL_FORBIDDEN = (
    "ports",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
    "resizePolicy",
)


def spec_subresource_update(sub: str, new: Obj, cur: Obj) -> tuple[Obj, list[tuple[str, str]]]:
    """The pod a write to ``pods/{sub}`` stores: the current pod with only what the subresource may change
    taken from ``new`` (registry/core/pod/strategy.go ephemeralContainersStrategy, podResizeStrategy), and the
    validation errors."""
    import copy

    out = copy.deepcopy(cur)
    spec, cspec = new.get("spec") or {}, out.setdefault("spec", {})
    if sub == "ephemeralcontainers":
        return out, _ephemeral_update(spec, cspec)
    return out, _resize_update(spec, cspec)


def _ephemeral_update(spec: dict[str, Any], cspec: dict[str, Any]) -> list[tuple[str, str]]:
    errs: list[tuple[str, str]] = []
    news = [dict(c) for c in spec.get("ephemeralContainers") or []]
    olds = cspec.get("ephemeralContainers") or []
    by_name = {c.get("name"): c for c in news}
    for oc in olds:
        nc = by_name.get(oc.get("name"))
        if nc is None:
            errs.append(
                (
                    "spec.ephemeralContainers",
                    f'Forbidden: existing ephemeral containers "{oc.get("name")}" may not be removed',
                )
            )
            continue
        _default_container(nc)
        if _strip_none(nc) != _strip_none(oc):
            errs.append(
                (
                    "spec.ephemeralContainers",
                    f'Forbidden: existing ephemeral containers "{oc.get("name")}" may not be changed',
                )
            )
    taken = {c.get("name") for f in ("containers", "initContainers") for c in cspec.get(f) or []}
    seen: set[str] = set()
    for i, c in enumerate(news):
        where = f"spec.ephemeralContainers[{i}]"
        name = c.get("name") or ""
        if not name:
            errs.append((f"{where}.name", "Required value"))
        elif name in taken or name in seen:
            errs.append((f"{where}.name", f'Duplicate value: "{name}"'))
        seen.add(name)
        if not c.get("image"):
            errs.append((f"{where}.image", "Required value"))
        for f in _EPHEMERAL_FORBIDDEN:
            if c.get(f):
                errs.append((f"{where}.{f}", "Forbidden: cannot be set for an Ephemeral Container"))
        if (c.get("resources") or {}).get("requests") or (c.get("resources") or {}).get("limits"):
            errs.append((f"{where}.resources", "Forbidden: cannot be set for an Ephemeral Container"))
        _default_container(c)
    cspec["ephemeralContainers"] = news
    if not news:
        cspec.pop("ephemeralContainers", None)
    return errs


def _resize_update(spec: dict[str, Any], cspec: dict[str, Any]) -> list[tuple[str, str]]:
    errs: list[tuple[str, str]] = []
    before = qos_class(cspec)
    for field in ("containers", "initContainers"):
        olds, news = cspec.get(field) or [], spec.get(field) or []
        if [c.get("name") for c in olds] != [c.get("name") for c in news]:
            return [("spec", "Forbidden: only cpu and memory resources are mutable")]
        for oc, nc in zip(olds, news, strict=True):
            res = {k: dict(v) for k, v in (nc.get("resources") or {}).items() if isinstance(v, dict)}
            ores = oc.get("resources") or {}
            for kind in ("requests", "limits"):
                o, n = ores.get(kind) or {}, res.get(kind) or {}
                other = {k for k in set(o) | set(n) if k not in ("cpu", "memory") and o.get(k) != n.get(k)}
                if other:
                    errs.append(("spec", "Forbidden: only cpu and memory resources are mutable"))
            if field == "initContainers" and oc.get("restartPolicy") != "Always" and res != ores:
                errs.append(
                    ("spec", "Forbidden: only cpu and memory resources for sidecar containers are mutable")
                )
            if res:
                oc["resources"] = res
            else:
                oc.pop("resources", None)
            if "resizePolicy" in nc:
                oc["resizePolicy"] = nc["resizePolicy"]
            _default_container(oc)
    if not errs and qos_class(cspec) != before:
        errs.append(("spec", "Forbidden: Pod QOS Class may not change as a result of resizing"))
    return errs
