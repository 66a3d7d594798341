"""Table output (meta.k8s.io/v1 Table) for `kubectl get`: the columns of pkg/printers/internalversion/printers.go
for the built-in kinds we serve, CRD additionalPrinterColumns (JSONPath), and Name/Age otherwise.
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Callable
from typing import Any

from .resources import ResourceType

Obj = dict[str, Any]


def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration."""
    s = int(seconds)
    if s < 0:
        s = 0
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = s // 3600
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    if h < 24 * 8:
        return f"{h // 24}d{h % 24}h" if h % 24 else f"{h // 24}d"
    if h < 24 * 365 * 2:
        return f"{h // 24}d"
    return f"{h // 24 // 365}y{(h // 24) % 365}d"


def _ts(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return None


def age(obj: Obj) -> str:
    t = _ts(obj["metadata"].get("creationTimestamp"))
    return "<unknown>" if t is None else human_duration(time.time() - t)


def _col(name: str, typ: str = "string", priority: int = 0, fmt: str = "", desc: str = "") -> dict[str, Any]:
    return {"name": name, "type": typ, "format": fmt, "description": desc or name, "priority": priority}


NAME = _col("Name", fmt="name", desc="Name must be unique within a namespace.")
AGE = _col(
    "Age", desc="CreationTimestamp is a timestamp representing the server time when this object was created."
)


def _pod_row(o: Obj) -> list[Any]:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    containers = spec.get("containers") or []
    cstat = st.get("containerStatuses") or []
    ready = sum(1 for c in cstat if c.get("ready"))
    restarts = sum(int(c.get("restartCount", 0)) for c in cstat)
    reason = st.get("reason") or st.get("phase") or "Unknown"
    for c in cstat:
        state = c.get("state") or {}
        if "waiting" in state and state["waiting"].get("reason"):
            reason = state["waiting"]["reason"]
        elif "terminated" in state and state["terminated"].get("reason"):
            reason = state["terminated"]["reason"]
    if reason == "Pending" and spec.get("schedulingGates"):
        reason = "SchedulingGated"
    if o["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    gates = spec.get("readinessGates") or []
    return [
        o["metadata"]["name"],
        f"{ready}/{len(containers)}",
        reason,
        restarts,
        age(o),
        st.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
        st.get("nominatedNodeName") or "<none>",
        f"{len(gates)}/{len(gates)}" if gates else "<none>",
    ]


def _node_row(o: Obj) -> list[Any]:
    st, spec = o.get("status") or {}, o.get("spec") or {}
    ready = next((c for c in st.get("conditions") or [] if c.get("type") == "Ready"), None)
    status = "Ready" if ready and ready.get("status") == "True" else ("NotReady" if ready else "Unknown")
    if spec.get("unschedulable"):
        status += ",SchedulingDisabled"
    labels = o["metadata"].get("labels") or {}
    roles = sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/")) or [
        "<none>"
    ]
    addrs = {a.get("type"): a.get("address") for a in st.get("addresses") or []}
    info = st.get("nodeInfo") or {}
    return [
        o["metadata"]["name"],
        status,
        ",".join(roles),
        age(o),
        info.get("kubeletVersion", ""),
        addrs.get("InternalIP", "<none>"),
        addrs.get("ExternalIP", "<none>"),
        info.get("osImage", "<unknown>"),
        info.get("kernelVersion", "<unknown>"),
        info.get("containerRuntimeVersion", "<unknown>"),
    ]


def _job_row(o: Obj) -> list[Any]:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    conds = {c.get("type"): c.get("status") for c in st.get("conditions") or []}
    if conds.get("Complete") == "True":
        status = "Complete"
    elif conds.get("Failed") == "True":
        status = "Failed"
    elif conds.get("FailureTarget") == "True":
        status = "FailureTarget"
    elif conds.get("Suspended") == "True" or spec.get("suspend"):
        status = "Suspended"
    else:
        status = "Running"
    comp = spec.get("completions")
    completions = (
        f"{st.get('succeeded', 0)}/{comp}"
        if comp is not None
        else f"{st.get('succeeded', 0)}/1 of {spec.get('parallelism', 1)}"
    )
    start, end = _ts(st.get("startTime")), _ts(st.get("completionTime"))
    duration = "" if start is None else human_duration((end or time.time()) - start)
    pspec = (spec.get("template") or {}).get("spec") or {}
    sel = ((spec.get("selector") or {}).get("matchLabels")) or {}
    return [
        o["metadata"]["name"],
        status,
        completions,
        duration,
        age(o),
        ",".join(c.get("name", "") for c in pspec.get("containers") or []),
        ",".join(c.get("image", "") for c in pspec.get("containers") or []),
        ",".join(f"{k}={v}" for k, v in sel.items()),
    ]


def _deploy_row(o: Obj) -> list[Any]:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    return [
        o["metadata"]["name"],
        f"{st.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
        st.get("updatedReplicas", 0),
        st.get("availableReplicas", 0),
        age(o),
    ]


def _svc_row(o: Obj) -> list[Any]:
    spec = o.get("spec") or {}
    ports = ",".join(
        f"{p.get('port')}{':' + str(p['nodePort']) if p.get('nodePort') else ''}/{p.get('protocol', 'TCP')}"
        for p in spec.get("ports") or []
    )
    return [
        o["metadata"]["name"],
        spec.get("type", "ClusterIP"),
        spec.get("clusterIP", ""),
        "<none>",
        ports or "<none>",
        age(o),
    ]


def _ns_row(o: Obj) -> list[Any]:
    return [o["metadata"]["name"], (o.get("status") or {}).get("phase", "Active"), age(o)]


def _cm_row(o: Obj) -> list[Any]:
    return [o["metadata"]["name"], len(o.get("data") or {}) + len(o.get("binaryData") or {}), age(o)]


def _event_row(o: Obj) -> list[Any]:
    inv = o.get("involvedObject") or o.get("regarding") or {}
    last = o.get("lastTimestamp") or o.get("eventTime") or o["metadata"].get("creationTimestamp")
    t = _ts(last[:19] + "Z" if last and len(last) > 20 else last)
    return [
        human_duration(time.time() - t) if t else "<unknown>",
        o.get("type", ""),
        o.get("reason", ""),
        f"{(inv.get('kind') or '').lower()}/{inv.get('name', '')}",
        o.get("message") or o.get("note") or "",
    ]


def _secret_row(o: Obj) -> list[Any]:
    return [o["metadata"]["name"], o.get("type", "Opaque"), len(o.get("data") or {}), age(o)]


def _rs_row(o: Obj) -> list[Any]:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    return [
        o["metadata"]["name"],
        spec.get("replicas", 0),
        st.get("replicas", 0),
        st.get("readyReplicas", 0),
        age(o),
    ]


def _apiservice_row(o: Obj) -> list[Any]:
    # printers.go printAPIService: SERVICE is namespace/name or Local; AVAILABLE the condition's status, or
    # False (reason) when it is not True
    svc = (o.get("spec") or {}).get("service")
    service = f"{svc.get('namespace')}/{svc.get('name')}" if svc else "Local"
    cond = next(
        (c for c in (o.get("status") or {}).get("conditions") or [] if c.get("type") == "Available"), None
    )
    if cond is None:
        available = "Unknown"
    elif cond.get("status") == "True":
        available = "True"
    else:
        available = f"{cond.get('status')} ({cond.get('reason')})"
    return [o["metadata"]["name"], service, available, age(o)]


def _selector_text(sel: Obj | None) -> str:
    """metav1.FormatLabelSelector: "<none>" for an empty selector, else key=value,key in (a,b)..."""
    sel = sel or {}
    parts = [f"{k}={v}" for k, v in (sel.get("matchLabels") or {}).items()]
    for e in sel.get("matchExpressions") or []:
        op, vals = e.get("operator"), ",".join(e.get("values") or [])
        if op == "In":
            parts.append(f"{e.get('key')} in ({vals})")
        elif op == "NotIn":
            parts.append(f"{e.get('key')} notin ({vals})")
        elif op == "Exists":
            parts.append(str(e.get("key")))
        elif op == "DoesNotExist":
            parts.append(f"!{e.get('key')}")
    return ",".join(parts) or "<none>"


_ACCESS_MODES = {
    "ReadWriteOnce": "RWO",
    "ReadOnlyMany": "ROX",
    "ReadWriteMany": "RWX",
    "ReadWriteOncePod": "RWOP",
}


def _pv_row(o: Obj) -> list[Any]:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    ref = spec.get("claimRef") or {}
    return [
        o["metadata"]["name"],
        (spec.get("capacity") or {}).get("storage", ""),
        ",".join(_ACCESS_MODES.get(m, m) for m in spec.get("accessModes") or []),
        spec.get("persistentVolumeReclaimPolicy", ""),
        st.get("phase", ""),
        f"{ref.get('namespace')}/{ref.get('name')}" if ref else "",
        spec.get("storageClassName", ""),
        spec.get("volumeAttributesClassName") or "<unset>",
        st.get("reason", ""),
        age(o),
    ]


def _ingress_row(o: Obj) -> list[Any]:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    hosts = [r.get("host") for r in spec.get("rules") or [] if r.get("host")]
    lbs = [i.get("ip") or i.get("hostname") for i in (st.get("loadBalancer") or {}).get("ingress") or []]
    return [
        o["metadata"]["name"],
        spec.get("ingressClassName") or "<none>",
        ",".join(hosts) or "*",
        ",".join(x for x in lbs if x),
        "80, 443" if spec.get("tls") else "80",
        age(o),
    ]


def _hpa_targets(spec: Obj) -> str:
    # printers.go formatHPAMetrics, before any status: "<unknown>/<target>" per metric
    out = []
    for m in spec.get("metrics") or []:
        if m.get("type") == "Resource":
            r = m.get("resource") or {}
            t = r.get("target") or {}
            want = f"{t['averageUtilization']}%" if "averageUtilization" in t else t.get("averageValue", "")
            out.append(f"{r.get('name')}: <unknown>/{want}")
        else:
            out.append("<unknown>")
    return ", ".join(out) or "<none>"


def _hpa_row(o: Obj) -> list[Any]:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    ref = spec.get("scaleTargetRef") or {}
    return [
        o["metadata"]["name"],
        f"{ref.get('kind')}/{ref.get('name')}",
        _hpa_targets(spec),
        spec.get("minReplicas", 1),
        spec.get("maxReplicas", 0),
        st.get("currentReplicas", 0),
        age(o),
    ]


def _storageclass_row(o: Obj) -> list[Any]:
    default = (o["metadata"].get("annotations") or {}).get("storageclass.kubernetes.io/is-default-class")
    return [
        o["metadata"]["name"] + (" (default)" if default == "true" else ""),
        o.get("provisioner", ""),
        o.get("reclaimPolicy", "Delete"),
        o.get("volumeBindingMode", "Immediate"),
        bool(o.get("allowVolumeExpansion")),
        age(o),
    ]


def _netpol_row(o: Obj) -> list[Any]:
    return [o["metadata"]["name"], _selector_text((o.get("spec") or {}).get("podSelector")), age(o)]


def _ingressclass_row(o: Obj) -> list[Any]:
    return [o["metadata"]["name"], (o.get("spec") or {}).get("controller", ""), "<none>", age(o)]


def _runtimeclass_row(o: Obj) -> list[Any]:
    return [o["metadata"]["name"], o.get("handler", ""), age(o)]


def _sts_row(o: Obj) -> list[Any]:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    return [o["metadata"]["name"], f"{st.get('readyReplicas', 0)}/{spec.get('replicas', 0)}", age(o)]


def _ds_row(o: Obj) -> list[Any]:
    st = o.get("status") or {}
    sel = ((o.get("spec") or {}).get("template") or {}).get("spec", {}).get("nodeSelector") or {}
    return [
        o["metadata"]["name"],
        st.get("desiredNumberScheduled", 0),
        st.get("currentNumberScheduled", 0),
        st.get("numberReady", 0),
        st.get("updatedNumberScheduled", 0),
        st.get("numberAvailable", 0),
        ",".join(f"{k}={v}" for k, v in sel.items()) or "<none>",
        age(o),
    ]


def _pc_row(o: Obj) -> list[Any]:
    return [
        o["metadata"]["name"],
        o.get("value", 0),
        bool(o.get("globalDefault")),
        age(o),
        o.get("preemptionPolicy", ""),
    ]


def _lease_row(o: Obj) -> list[Any]:
    return [o["metadata"]["name"], (o.get("spec") or {}).get("holderIdentity", ""), age(o)]


def _crd_row(o: Obj) -> list[Any]:
    return [o["metadata"]["name"], o["metadata"].get("creationTimestamp", "")]


def _webhooks_row(o: Obj) -> list[Any]:
    return [o["metadata"]["name"], len(o.get("webhooks") or []), age(o)]


BUILTIN: dict[tuple[str, str], tuple[list[dict[str, Any]], Callable[[Obj], list[Any]]]] = {
    ("", "pods"): (
        [
            NAME,
            _col("Ready"),
            _col("Status"),
            _col("Restarts", "string"),
            AGE,
            _col("IP", priority=1),
            _col("Node", priority=1),
            _col("Nominated Node", priority=1),
            _col("Readiness Gates", priority=1),
        ],
        _pod_row,
    ),
    ("", "nodes"): (
        [
            NAME,
            _col("Status"),
            _col("Roles"),
            AGE,
            _col("Version"),
            _col("Internal-IP", priority=1),
            _col("External-IP", priority=1),
            _col("OS-Image", priority=1),
            _col("Kernel-Version", priority=1),
            _col("Container-Runtime", priority=1),
        ],
        _node_row,
    ),
    ("batch", "jobs"): (
        [
            NAME,
            _col("Status"),
            _col("Completions"),
            _col("Duration"),
            AGE,
            _col("Containers", priority=1),
            _col("Images", priority=1),
            _col("Selector", priority=1),
        ],
        _job_row,
    ),
    ("apps", "deployments"): (
        [NAME, _col("Ready"), _col("Up-to-date", "integer"), _col("Available", "integer"), AGE],
        _deploy_row,
    ),
    ("", "services"): (
        [NAME, _col("Type"), _col("Cluster-IP"), _col("External-IP"), _col("Port(s)"), AGE],
        _svc_row,
    ),
    ("", "namespaces"): ([NAME, _col("Status"), AGE], _ns_row),
    ("", "configmaps"): ([NAME, _col("Data", "integer"), AGE], _cm_row),
    ("", "secrets"): ([NAME, _col("Type"), _col("Data", "integer"), AGE], _secret_row),
    ("apps", "replicasets"): (
        [NAME, _col("Desired", "integer"), _col("Current", "integer"), _col("Ready", "integer"), AGE],
        _rs_row,
    ),
    ("", "replicationcontrollers"): (
        [NAME, _col("Desired", "integer"), _col("Current", "integer"), _col("Ready", "integer"), AGE],
        _rs_row,
    ),
    ("apiregistration.k8s.io", "apiservices"): (
        [NAME, _col("Service"), _col("Available"), AGE],
        _apiservice_row,
    ),
    ("", "persistentvolumes"): (
        [
            NAME,
            _col("Capacity"),
            _col("Access Modes"),
            _col("Reclaim Policy"),
            _col("Status"),
            _col("Claim"),
            _col("StorageClass"),
            _col("VolumeAttributesClass"),
            _col("Reason"),
            AGE,
        ],
        _pv_row,
    ),
    ("networking.k8s.io", "ingresses"): (
        [NAME, _col("Class"), _col("Hosts"), _col("Address"), _col("Ports"), AGE],
        _ingress_row,
    ),
    ("networking.k8s.io", "ingressclasses"): (
        [NAME, _col("Controller"), _col("Parameters"), AGE],
        _ingressclass_row,
    ),
    ("networking.k8s.io", "networkpolicies"): ([NAME, _col("Pod-Selector"), AGE], _netpol_row),
    ("storage.k8s.io", "storageclasses"): (
        [
            NAME,
            _col("Provisioner"),
            _col("ReclaimPolicy"),
            _col("VolumeBindingMode"),
            _col("AllowVolumeExpansion"),
            AGE,
        ],
        _storageclass_row,
    ),
    ("autoscaling", "horizontalpodautoscalers"): (
        [
            NAME,
            _col("Reference"),
            _col("Targets"),
            _col("MinPods", "integer"),
            _col("MaxPods", "integer"),
            _col("Replicas", "integer"),
            AGE,
        ],
        _hpa_row,
    ),
    ("node.k8s.io", "runtimeclasses"): ([NAME, _col("Handler"), AGE], _runtimeclass_row),
    ("apps", "statefulsets"): ([NAME, _col("Ready"), AGE], _sts_row),
    ("apps", "daemonsets"): (
        [
            NAME,
            _col("Desired", "integer"),
            _col("Current", "integer"),
            _col("Ready", "integer"),
            _col("Up-to-date", "integer"),
            _col("Available", "integer"),
            _col("Node Selector"),
            AGE,
        ],
        _ds_row,
    ),
    ("scheduling.k8s.io", "priorityclasses"): (
        [NAME, _col("Value", "integer"), _col("Global-Default", "boolean"), AGE, _col("PreemptionPolicy")],
        _pc_row,
    ),
    ("coordination.k8s.io", "leases"): ([NAME, _col("Holder"), AGE], _lease_row),
    ("apiextensions.k8s.io", "customresourcedefinitions"): ([NAME, _col("Created At", "date")], _crd_row),
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"): (
        [NAME, _col("Webhooks", "integer"), AGE],
        _webhooks_row,
    ),
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations"): (
        [NAME, _col("Webhooks", "integer"), AGE],
        _webhooks_row,
    ),
    ("", "events"): (
        [_col("Last Seen"), _col("Type"), _col("Reason"), _col("Object"), _col("Message")],
        _event_row,
    ),
}


_FILTER = re.compile(r"^\[\?\(@\.(\w+)\s*==\s*[\"'](.*)[\"']\)\]$")


def jsonpath(obj: Any, path: str) -> Any:
    """The subset of JSONPath CRD printer columns use: .a.b, .a[0], .a[*].b, .a[?(@.type=="X")].b."""
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    tokens = re.findall(r"\.[^.\[]+|\[[^\]]*\]", path)
    cur: list[Any] = [obj]
    for tok in tokens:
        nxt: list[Any] = []
        for c in cur:
            if tok.startswith("."):
                if isinstance(c, dict) and tok[1:] in c:
                    nxt.append(c[tok[1:]])
            elif tok == "[*]":
                if isinstance(c, list):
                    nxt.extend(c)
            elif m := _FILTER.match(tok):
                if isinstance(c, list):
                    nxt.extend(x for x in c if isinstance(x, dict) and str(x.get(m.group(1))) == m.group(2))
            else:
                try:
                    i = int(tok[1:-1])
                    if isinstance(c, list) and -len(c) <= i < len(c):
                        nxt.append(c[i])
                except ValueError:
                    pass
        cur = nxt
    if not cur:
        return None
    return cur[0] if len(cur) == 1 else cur


def columns_for(rt: ResourceType) -> tuple[list[dict[str, Any]], Callable[[Obj], list[Any]]]:
    if rt.custom and rt.printer_columns:
        cols = [NAME] + [
            _col(
                c["name"],
                c.get("type", "string"),
                int(c.get("priority", 0)),
                c.get("format", ""),
                c.get("description", ""),
            )
            for c in rt.printer_columns
        ]

        def row(o: Obj) -> list[Any]:
            cells: list[Any] = [o["metadata"]["name"]]
            for c in rt.printer_columns:
                v = jsonpath(o, c.get("jsonPath", ""))
                if c.get("type") == "date" and isinstance(v, str):
                    t = _ts(v)
                    v = human_duration(time.time() - t) if t is not None else v
                cells.append(v)
            return cells

        return cols, row
    if (rt.group, rt.plural) in BUILTIN:
        return BUILTIN[(rt.group, rt.plural)]
    return [NAME, AGE], lambda o: [o["metadata"]["name"], age(o)]


def partial_metadata(o: Obj) -> Obj:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]}


def to_table(
    rt: ResourceType,
    objs: list[Obj],
    rv: str,
    include: str = "Metadata",
    cont: str | None = None,
    with_columns: bool = True,
) -> Obj:
    cols, row = columns_for(rt)
    rows = []
    for o in objs:
        r: Obj = {"cells": row(o)}
        if include == "Object":
            r["object"] = o
        elif include != "None":
            r["object"] = partial_metadata(o)
        rows.append(r)
    meta: Obj = {"resourceVersion": rv}
    if cont:
        meta["continue"] = cont
    table: Obj = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "rows": rows}
    if with_columns:
        table["columnDefinitions"] = cols
    else:
        table["columnDefinitions"] = None
    return table
