"""Discovery documents: /api, /apis, per group-version resource lists, aggregated discovery (apidiscovery v2).

Shapes follow k8s.io/apimachinery/pkg/apis/meta/v1 (APIVersions, APIGroupList, APIResourceList) and
k8s.io/api/apidiscovery/v2 (APIGroupDiscoveryList), which kubectl 1.35 asks for first.
"""

from __future__ import annotations

import hashlib
from typing import Any

from .resources import Registry, ResourceType

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
SUB_VERBS = {
    "status": ["get", "patch", "update"],
    "scale": ["get", "patch", "update"],
    "binding": ["create"],
    "eviction": ["create"],
    "log": ["get"],
    "finalize": ["update"],
    "proxy": ["create", "delete", "get", "patch", "update"],
    "token": ["create"],
    "ephemeralcontainers": ["get", "patch", "update"],
    "resize": ["get", "patch", "update"],
    "exec": ["create", "get"],
    "attach": ["create", "get"],
    "portforward": ["create", "get"],
}
SUB_KIND = {
    "scale": ("autoscaling", "v1", "Scale"),
    "binding": ("", "v1", "Binding"),
    "eviction": ("policy", "v1", "Eviction"),
    "token": ("authentication.k8s.io", "v1", "TokenRequest"),
    "exec": ("", "v1", "PodExecOptions"),
    "attach": ("", "v1", "PodAttachOptions"),
    "portforward": ("", "v1", "PodPortForwardOptions"),
}
# Preferred group order as a real cluster lists them (kubectl prints api-resources in this order).
GROUP_ORDER = [
    "",
    "apiregistration.k8s.io",
    "apps",
    "events.k8s.io",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "autoscaling",
    "batch",
    "certificates.k8s.io",
    "networking.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "storage.k8s.io",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "scheduling.k8s.io",
    "coordination.k8s.io",
    "node.k8s.io",
    "discovery.k8s.io",
    "flowcontrol.apiserver.k8s.io",
]


def _hash(rt: ResourceType) -> str:
    return hashlib.sha256(f"{rt.group}/{rt.version}/{rt.kind}".encode()).digest()[:8].hex()


def _verbs(rt: ResourceType) -> list[str]:
    return ["create"] if rt.virtual else list(VERBS)


def _sub_kind(rt: ResourceType, sub: str) -> tuple[str, str, str]:
    if sub == "proxy":
        return ("", "v1", f"{rt.kind}ProxyOptions")  # NodeProxyOptions, PodProxyOptions, ServiceProxyOptions
    return SUB_KIND.get(sub, (rt.group, rt.version, rt.kind))


def resource_list(registry: Registry, group: str, version: str) -> dict[str, Any]:
    resources: list[dict[str, Any]] = []
    for rt in registry.all():
        if rt.group != group or rt.version != version:
            continue
        entry: dict[str, Any] = {
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": _verbs(rt),
            "storageVersionHash": _hash(rt),
        }
        if rt.short_names:
            entry["shortNames"] = list(rt.short_names)
        if rt.categories:
            entry["categories"] = list(rt.categories)
        resources.append(entry)
        for sub in rt.subresources:
            g, v, k = _sub_kind(rt, sub)
            se: dict[str, Any] = {
                "name": f"{rt.plural}/{sub}",
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": k,
                "verbs": SUB_VERBS.get(sub, ["get"]),
            }
            if (g, v) != (rt.group, rt.version):
                se["group"], se["version"] = g, v
            resources.append(se)
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}


def _ordered_groups(registry: Registry) -> list[tuple[str, list[str]]]:
    groups = registry.groups()
    rank = {g: i for i, g in enumerate(GROUP_ORDER)}
    return sorted(groups.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0]))


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def group_list(registry: Registry) -> dict[str, Any]:
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [group_doc(g, versions) for g, versions in _ordered_groups(registry) if g],
    }


def group_doc(group: str, versions: list[str]) -> dict[str, Any]:
    vs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": vs, "preferredVersion": vs[0]}


def aggregated(registry: Registry, core: bool, version: str = "v2") -> dict[str, Any]:
    """apidiscovery.k8s.io/v2 APIGroupDiscoveryList for /api (core) or /apis (named groups)."""
    items = []
    for g, versions in _ordered_groups(registry):
        if (g == "") != core:
            continue
        vdocs = []
        for v in versions:
            resources = []
            for rt in registry.all():
                if rt.group != g or rt.version != v:
                    continue
                r: dict[str, Any] = {
                    "resource": rt.plural,
                    "responseKind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
                    "scope": "Namespaced" if rt.namespaced else "Cluster",
                    "singularResource": rt.singular,
                    "verbs": _verbs(rt),
                }
                if rt.short_names:
                    r["shortNames"] = list(rt.short_names)
                if rt.categories:
                    r["categories"] = list(rt.categories)
                subs = []
                for sub in rt.subresources:
                    sg, sv, sk = _sub_kind(rt, sub)
                    subs.append(
                        {
                            "subresource": sub,
                            "responseKind": {"group": sg, "version": sv, "kind": sk},
                            "verbs": SUB_VERBS.get(sub, ["get"]),
                        }
                    )
                if subs:
                    r["subresources"] = subs
                resources.append(r)
            vdocs.append({"version": v, "resources": resources, "freshness": "Current"})
        items.append({"metadata": {"name": g, "creationTimestamp": None}, "versions": vdocs})
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": f"apidiscovery.k8s.io/{version}",
        "metadata": {},
        "items": items,
    }
