"""Strategies for core types other than pods: namespaces, services, nodes, secrets.

Sources: pkg/registry/core/namespace/strategy.go (spec.finalizers ["kubernetes"], phase Active, the
kubernetes.io/metadata.name label), pkg/apis/core/v1/defaults.go (Service defaults), pkg/registry/core/service
(ClusterIP allocation from the service CIDR), pkg/registry/core/secret/strategy.go (stringData folded into
data on write).
"""

from __future__ import annotations

import base64
import itertools
from typing import Any

from .store import clone
from .strategy import Obj, Strategy


class NamespaceStrategy(Strategy):
    def default(self, obj: Obj) -> None:
        md = obj.setdefault("metadata", {})
        if md.get("name"):
            md.setdefault("labels", {})["kubernetes.io/metadata.name"] = md["name"]
        spec = obj.setdefault("spec", {})
        spec.setdefault("finalizers", ["kubernetes"])

    def prepare_create(self, obj: Obj) -> None:
        obj["status"] = {"phase": "Active"}

    def after_system_fields(self, obj: Obj) -> None:
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]

    def prepare_update(self, new: Obj, old: Obj) -> None:
        new["status"] = old.get("status", {})
        new["spec"] = old.get("spec", {})  # spec.finalizers change only through namespaces/finalize
        new["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = new["metadata"]["name"]


class ServiceStrategy(Strategy):
    def __init__(self) -> None:
        self._ips = itertools.count(10)

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        for p in spec.get("ports") or []:
            p.setdefault("protocol", "TCP")
            if "targetPort" not in p and "port" in p:
                p["targetPort"] = p["port"]

    def prepare_create(self, obj: Obj) -> None:
        spec = obj["spec"]
        if spec.get("clusterIP") in (None, "") and spec.get("type") != "ExternalName":
            n = next(self._ips)
            spec["clusterIP"] = f"10.96.{n // 250}.{n % 250 + 1}"
        if spec.get("clusterIP") and spec["clusterIP"] != "None":
            spec.setdefault("clusterIPs", [spec["clusterIP"]])
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
        obj["status"] = {"loadBalancer": {}}

    def prepare_update(self, new: Obj, old: Obj) -> None:
        new["status"] = old.get("status", {})
        ospec, nspec = old.get("spec") or {}, new.setdefault("spec", {})
        # An apply that omits the allocated IP keeps it (the registry copies it over).
        for f in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
            if f in ospec and f not in nspec:
                nspec[f] = ospec[f]

    def validate_update(self, new: Obj, old: Obj) -> list[tuple[str, str]]:
        o, n = (old.get("spec") or {}).get("clusterIP"), (new.get("spec") or {}).get("clusterIP")
        if o and n and o != n:
            return [("spec.clusterIPs[0]", "Invalid value: field is immutable")]
        return []


class SecretStrategy(Strategy):
    def default(self, obj: Obj) -> None:
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None)
        if string_data:
            data = obj.setdefault("data", {})
            for k, v in string_data.items():
                data[k] = base64.b64encode(str(v).encode()).decode()


class StatusResetStrategy(Strategy):
    """Types with a status subresource: status comes only through /status. A create stores the zero status
    (``initial``): a Go status struct is written even when empty (``omitempty`` leaves structs alone), with
    its fields that are not omitempty, e.g. a PodDisruptionBudget's four counts at 0."""

    def __init__(self, keep_status_on_create: bool = False, initial: Obj | None = None):
        self.keep = keep_status_on_create
        self.initial = initial or {}
        self._zero = tuple(k for k, v in self.initial.items() if v == 0 and not isinstance(v, bool))

    def prepare_create(self, obj: Obj) -> None:
        if not self.keep:
            obj["status"] = clone(self.initial)

    def prepare_status_update(self, new: Obj, old: Obj) -> None:
        st = new.get("status")
        if self._zero and not (isinstance(st, dict) and all(st.get(k) is not None for k in self._zero)):
            new["status"] = {**(st or {}), **{k: 0 for k in self._zero if (st or {}).get(k) is None}}

    def prepare_update(self, new: Obj, old: Obj) -> None:
        if "status" in old:
            new["status"] = old["status"]
        else:
            new.pop("status", None)


class PersistentVolumeStrategy(StatusResetStrategy):
    """pkg/registry/core/persistentvolume/strategy.go: a new volume is Pending (the PV controller, absent
    here, makes it Available); persistentVolumeReclaimPolicy defaults to Retain."""

    def default(self, obj: Obj) -> None:
        obj.setdefault("spec", {}).setdefault("persistentVolumeReclaimPolicy", "Retain")
        obj["spec"].setdefault("volumeMode", "Filesystem")

    def prepare_create(self, obj: Obj) -> None:
        from .engine import now_rfc3339

        obj["status"] = {"phase": "Pending", "lastPhaseTransitionTime": now_rfc3339()}


class NetworkPolicyStrategy(Strategy):
    """pkg/apis/networking/v1/defaults.go: policyTypes from the rules given; ports' protocol TCP."""

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("podSelector", {})
        if not spec.get("policyTypes"):
            types = ["Ingress"]
            if spec.get("egress"):
                types.append("Egress")
            spec["policyTypes"] = types
        for rules in (spec.get("ingress") or [], spec.get("egress") or []):
            for rule in rules:
                for port in (rule or {}).get("ports") or []:
                    port.setdefault("protocol", "TCP")


class HPAStrategy(StatusResetStrategy):
    """pkg/apis/autoscaling/v2/defaults.go: minReplicas 1; no metrics means 80% average CPU utilization."""

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("minReplicas", 1)
        if not spec.get("metrics"):
            spec["metrics"] = [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}},
                }
            ]


class StorageClassStrategy(Strategy):
    """pkg/apis/storage/v1/defaults.go."""

    def default(self, obj: Obj) -> None:
        obj.setdefault("reclaimPolicy", "Delete")
        obj.setdefault("volumeBindingMode", "Immediate")


class APIServiceStrategy(Strategy):
    """apiregistration.k8s.io/v1 APIService (k8s.io/kube-aggregator pkg/registry/apiservice, validation).

    Nothing is aggregated here: a local APIService (no ``spec.service``) is Available as the availability
    controller says ("Local APIServices are always available"); one backed by a service is not
    (ServiceNotFound), and its group is not served.
    """

    def default(self, obj: Obj) -> None:
        svc = (obj.setdefault("spec", {})).get("service")
        if isinstance(svc, dict):
            svc.setdefault("port", 443)

    def prepare_create(self, obj: Obj) -> None:
        obj["status"] = {"conditions": [available_condition(obj)]}

    def prepare_update(self, new: Obj, old: Obj) -> None:
        new["status"] = old.get("status", {})

    def validate_create(self, obj: Obj) -> list[tuple[str, str]]:
        spec = obj.get("spec") or {}
        name = (obj.get("metadata") or {}).get("name", "")
        errs: list[tuple[str, str]] = []
        if name != f"{spec.get('version', '')}.{spec.get('group', '')}":
            errs.append(("metadata.name", f'Invalid value: "{name}": must be `spec.version+"."+spec.group`'))
        if not spec.get("version"):
            errs.append(("spec.version", "Required value"))
        for f in ("groupPriorityMinimum", "versionPriority"):
            v = spec.get(f)
            if spec.get("service") is not None and (not isinstance(v, int) or v <= 0):
                errs.append((f"spec.{f}", f"Invalid value: {v or 0}: must be positive and less than 20000"))
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[tuple[str, str]]:
        return self.validate_create(new)


def seed_api_services(engine: Any) -> None:
    """The local APIServices kube-apiserver's autoregister controller keeps, one per served built-in group
    version ("v1." for the core group, "v1.apps", ...), ranked in discovery order."""
    from .discovery import GROUP_ORDER

    t = engine.store.table("apiregistration.k8s.io", "apiservices")
    strat = engine.strategies[("apiregistration.k8s.io", "apiservices")]
    for group, versions in engine.registry.groups().items():
        rank = GROUP_ORDER.index(group) if group in GROUP_ORDER else len(GROUP_ORDER)
        for i, version in enumerate(versions):
            spec: Obj = {
                "version": version,
                "groupPriorityMinimum": 18000 - 100 * rank,
                "versionPriority": 15 - i,
            }
            if group:
                spec = {"group": group, **spec}
            obj = {
                "apiVersion": "apiregistration.k8s.io/v1",
                "kind": "APIService",
                "metadata": {
                    "name": f"{version}.{group}",
                    "labels": {AUTOMANAGED: "onstart"},
                },
                "spec": spec,
            }
            strat.prepare_create(obj)
            engine._system_fields(obj)
            engine.store.put(t, obj, None)


def sync_crd_api_services(engine: Any) -> None:
    """The APIServices kube-apiserver's crdregistration controller keeps for the group versions that
    CustomResourceDefinitions serve (groupPriorityMinimum 1000, versionPriority 100, labelled automanaged),
    added and removed as CRDs come and go."""
    t = engine.store.table("apiregistration.k8s.io", "apiservices")
    strat = engine.strategies[("apiregistration.k8s.io", "apiservices")]
    served = {(rt.group, rt.version) for rt in engine.registry.all() if rt.custom}
    for bucket in list(t.by_ns.values()):
        for obj in list(bucket.values()):
            labels = obj["metadata"].get("labels") or {}
            spec = obj.get("spec") or {}
            if (
                labels.get(AUTOMANAGED) == "true"
                and (spec.get("group", ""), spec.get("version")) not in served
            ):
                engine.store.remove(t, obj)
    for group, version in sorted(served):
        name = f"{version}.{group}"
        if t.get("", name) is not None:
            continue
        obj = {
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": {"name": name, "labels": {AUTOMANAGED: "true"}},
            "spec": {
                "group": group,
                "version": version,
                "groupPriorityMinimum": 1000,
                "versionPriority": 100,
            },
        }
        strat.prepare_create(obj)
        engine._system_fields(obj)
        engine.store.put(t, obj, None)


AUTOMANAGED = "kube-aggregator.kubernetes.io/automanaged"


def available_condition(obj: Obj) -> Obj:
    from .engine import now_rfc3339

    svc = (obj.get("spec") or {}).get("service")
    if svc is None:
        status, reason, message = "True", "Local", "Local APIServices are always available"
    else:
        status, reason = "False", "ServiceNotFound"
        message = f'service/{svc.get("name")} in "{svc.get("namespace")}" is not present'
    return {
        "type": "Available",
        "status": status,
        "lastTransitionTime": now_rfc3339(),
        "reason": reason,
        "message": message,
    }


STRATEGIES: dict[tuple[str, str], Strategy] = {
    ("apiregistration.k8s.io", "apiservices"): APIServiceStrategy(),
    ("", "namespaces"): NamespaceStrategy(),
    ("", "services"): ServiceStrategy(),
    ("", "secrets"): SecretStrategy(),
    # Nodes: registering kubelets create them with their status (node strategy keeps it on create).
    ("", "nodes"): StatusResetStrategy(keep_status_on_create=True),
    ("", "persistentvolumeclaims"): StatusResetStrategy(initial={"phase": "Pending"}),
    ("", "resourcequotas"): StatusResetStrategy(),
    ("policy", "poddisruptionbudgets"): StatusResetStrategy(
        initial={"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0}
    ),
    ("batch", "cronjobs"): StatusResetStrategy(),
    ("", "persistentvolumes"): PersistentVolumeStrategy(),
    ("networking.k8s.io", "ingresses"): StatusResetStrategy(initial={"loadBalancer": {}}),
    ("networking.k8s.io", "networkpolicies"): NetworkPolicyStrategy(),
    ("storage.k8s.io", "storageclasses"): StorageClassStrategy(),
    ("storage.k8s.io", "volumeattachments"): StatusResetStrategy(initial={"attached": False}),
    ("autoscaling", "horizontalpodautoscalers"): HPAStrategy(initial={"desiredReplicas": 0}),
}
