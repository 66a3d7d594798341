"""Strategies for core types other than pods: namespaces, services, nodes, secrets.

Sources: pkg/registry/core/namespace/strategy.go (spec.finalizers ["kubernetes"], phase Active, the
kubernetes.io/metadata.name label), pkg/apis/core/v1/defaults.go (Service defaults), pkg/registry/core/service
(ClusterIP allocation from the service CIDR), pkg/registry/core/secret/strategy.go (stringData folded into
data on write).
"""

from __future__ import annotations

import base64
import itertools

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
    """Types with a status subresource: status comes only through /status (create keeps it empty)."""

    def __init__(self, keep_status_on_create: bool = False):
        self.keep = keep_status_on_create

    def prepare_create(self, obj: Obj) -> None:
        if not self.keep:
            obj.pop("status", None)

    def prepare_update(self, new: Obj, old: Obj) -> None:
        if "status" in old:
            new["status"] = old["status"]
        else:
            new.pop("status", None)


STRATEGIES: dict[tuple[str, str], Strategy] = {
    ("", "namespaces"): NamespaceStrategy(),
    ("", "services"): ServiceStrategy(),
    ("", "secrets"): SecretStrategy(),
    # Nodes: registering kubelets create them with their status (node strategy keeps it on create).
    ("", "nodes"): StatusResetStrategy(keep_status_on_create=True),
    ("", "persistentvolumeclaims"): StatusResetStrategy(),
    ("", "resourcequotas"): StatusResetStrategy(),
    ("policy", "poddisruptionbudgets"): StatusResetStrategy(),
    ("batch", "cronjobs"): StatusResetStrategy(),
}
