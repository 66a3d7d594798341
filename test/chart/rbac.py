"""Test helpers: which RBAC permission each Kubernetes API request needs, and whether the chart's rules grant
it. Follows the apiserver's RequestInfo resolution (k8s.io/apiserver/pkg/endpoints/request/requestinfo.go) and
RBAC rule matching (k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac: RuleAllows)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Access:
    verb: str
    group: str
    resource: str  # "pods" or "pods/binding"
    namespace: str
    name: str

    def __str__(self) -> str:
        where = f" in {self.namespace}" if self.namespace else ""
        return f"{self.verb} {self.group or 'core'}/{self.resource} {self.name!r}{where}"


def access_of(method: str, url: str) -> Access | None:
    """The permission a request needs; None for non-resource URLs (discovery, /version, /openapi)."""
    parts = urlsplit(url)
    segs = [s for s in parts.path.split("/") if s]
    if segs[:1] == ["api"] and len(segs) >= 2:
        group, rest = "", segs[2:]
    elif segs[:1] == ["apis"] and len(segs) >= 3:
        group, rest = segs[1], segs[3:]
    else:
        return None
    if not rest:
        return None
    namespace = ""
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    if len(rest) > 2:
        resource = f"{resource}/{rest[2]}"
    if resource == "namespaces" and name:
        namespace = name
    query = parse_qs(parts.query)
    if method == "GET":
        verb = "watch" if query.get("watch", ["false"])[0] in ("true", "1") else ("get" if name else "list")
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method) or (
            "delete" if name else "deletecollection"
        )
    return Access(verb, group, resource, namespace, name)


def _rule_allows(rule: dict, a: Access) -> bool:
    def has(values, value):
        return "*" in values or value in values

    if not has(rule.get("verbs", []), a.verb):
        return False
    if not has(rule.get("apiGroups", []), a.group):
        return False
    if not has(rule.get("resources", []), a.resource):
        return False
    names = rule.get("resourceNames") or []
    # resourceNames can never match a create or a list/watch without a name (RuleAllows).
    return not names or (a.name != "" and a.name in names)


def allowed(access: Access, manifests: list[dict], service_account: str, namespace: str) -> bool:
    """Whether the rendered (Cluster)Roles bound to the ServiceAccount grant ``access``."""
    roles = {(m["kind"], m["metadata"].get("namespace", ""), m["metadata"]["name"]): m for m in manifests}
    for binding in manifests:
        if binding["kind"] not in ("ClusterRoleBinding", "RoleBinding"):
            continue
        if not any(
            s["kind"] == "ServiceAccount" and s["name"] == service_account and s.get("namespace") == namespace
            for s in binding["subjects"]
        ):
            continue
        ref = binding["roleRef"]
        role_ns = "" if ref["kind"] == "ClusterRole" else binding["metadata"]["namespace"]
        role = roles.get((ref["kind"], role_ns, ref["name"]))
        if role is None:
            continue
        # A RoleBinding grants only inside its own namespace.
        if binding["kind"] == "RoleBinding" and access.namespace != binding["metadata"]["namespace"]:
            continue
        if any(_rule_allows(rule, access) for rule in role.get("rules", [])):
            return True
    return False
