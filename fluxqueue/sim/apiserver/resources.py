"""The resource types the emulator serves, and the ``R.*`` keys other parts use to name them.

A key is ``(group, version, plural)``, e.g. ``PODS == ("", "v1", "pods")``. :class:`ResourceType` carries what
discovery, storage and the printers need to know about a type. Custom resources are added at run time when a
CustomResourceDefinition is created (see :mod:`.crd`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fluxqueue.kube import names

Key = tuple[str, str, str]

NAMESPACES: Key = ("", "v1", "namespaces")
NODES: Key = ("", "v1", "nodes")
PODS: Key = ("", "v1", "pods")
EVENTS: Key = ("", "v1", "events")
CONFIGMAPS: Key = ("", "v1", "configmaps")
SECRETS: Key = ("", "v1", "secrets")
SERVICES: Key = ("", "v1", "services")
ENDPOINTS: Key = ("", "v1", "endpoints")
SERVICEACCOUNTS: Key = ("", "v1", "serviceaccounts")
PERSISTENTVOLUMECLAIMS: Key = ("", "v1", "persistentvolumeclaims")
RESOURCEQUOTAS: Key = ("", "v1", "resourcequotas")
LIMITRANGES: Key = ("", "v1", "limitranges")
REPLICATIONCONTROLLERS: Key = ("", "v1", "replicationcontrollers")
APISERVICES: Key = ("apiregistration.k8s.io", "v1", "apiservices")
EVENTS_V1: Key = ("events.k8s.io", "v1", "events")
LEASES: Key = ("coordination.k8s.io", "v1", "leases")
JOBS: Key = ("batch", "v1", "jobs")
CRONJOBS: Key = ("batch", "v1", "cronjobs")
DEPLOYMENTS: Key = ("apps", "v1", "deployments")
REPLICASETS: Key = ("apps", "v1", "replicasets")
STATEFULSETS: Key = ("apps", "v1", "statefulsets")
DAEMONSETS: Key = ("apps", "v1", "daemonsets")
CONTROLLERREVISIONS: Key = ("apps", "v1", "controllerrevisions")
ROLES: Key = ("rbac.authorization.k8s.io", "v1", "roles")
ROLEBINDINGS: Key = ("rbac.authorization.k8s.io", "v1", "rolebindings")
CLUSTERROLES: Key = ("rbac.authorization.k8s.io", "v1", "clusterroles")
CLUSTERROLEBINDINGS: Key = ("rbac.authorization.k8s.io", "v1", "clusterrolebindings")
PRIORITYCLASSES: Key = ("scheduling.k8s.io", "v1", "priorityclasses")
POD_DISRUPTION_BUDGETS: Key = ("policy", "v1", "poddisruptionbudgets")
MUTATING_WEBHOOKS: Key = ("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations")
VALIDATING_WEBHOOKS: Key = ("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations")
CRDS: Key = ("apiextensions.k8s.io", "v1", "customresourcedefinitions")
FLUXJOBS: Key = (names.CRD_GROUP, names.CRD_VERSION, names.CRD_PLURAL)

# Condensed printer columns (Table output) for built-in kinds; the cell values are computed in .tables.
Column = dict[str, Any]


@dataclass
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()  # "status", "scale", "binding", "eviction"
    # Whether metadata.generation is maintained (types with a spec the controllers observe).
    has_generation: bool = False
    # Custom resources only: the CRD's schema for this version, printer columns, scale paths.
    schema: dict[str, Any] | None = None
    printer_columns: list[Column] = field(default_factory=list)
    custom: bool = False
    list_kind: str = ""
    scale: dict[str, Any] | None = None
    # Review types (SelfSubjectAccessReview, ...): create answers and stores nothing.
    virtual: bool = False

    def __post_init__(self) -> None:
        if not self.singular:
            self.singular = self.kind.lower()
        if not self.list_kind:
            self.list_kind = self.kind + "List"

    @property
    def key(self) -> Key:
        return (self.group, self.version, self.plural)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources


_ALL = ("all",)


def builtin_types() -> list[ResourceType]:
    """Built-in types, with short names and categories as `kubectl api-resources` shows them (1.35)."""
    RT = ResourceType
    st = ("status",)
    return [
        RT(
            "",
            "v1",
            "namespaces",
            "Namespace",
            False,
            short_names=("ns",),
            subresources=("status", "finalize"),
        ),
        RT("", "v1", "nodes", "Node", False, short_names=("no",), subresources=("status", "proxy")),
        RT(
            "",
            "v1",
            "pods",
            "Pod",
            True,
            short_names=("po",),
            categories=_ALL,
            subresources=(
                "status",
                "binding",
                "eviction",
                "log",
                "ephemeralcontainers",
                "resize",
                "exec",
                "attach",
                "portforward",
                "proxy",
            ),
            has_generation=True,
        ),
        RT("", "v1", "events", "Event", True, short_names=("ev",)),
        RT("", "v1", "configmaps", "ConfigMap", True, short_names=("cm",)),
        RT("", "v1", "secrets", "Secret", True),
        RT(
            "",
            "v1",
            "services",
            "Service",
            True,
            short_names=("svc",),
            categories=_ALL,
            subresources=("status", "proxy"),
        ),
        RT("", "v1", "endpoints", "Endpoints", True, short_names=("ep",)),
        RT("", "v1", "serviceaccounts", "ServiceAccount", True, short_names=("sa",), subresources=("token",)),
        RT(
            "",
            "v1",
            "persistentvolumeclaims",
            "PersistentVolumeClaim",
            True,
            short_names=("pvc",),
            subresources=st,
        ),
        RT("", "v1", "resourcequotas", "ResourceQuota", True, short_names=("quota",), subresources=st),
        RT("", "v1", "limitranges", "LimitRange", True, short_names=("limits",)),
        RT(
            "",
            "v1",
            "replicationcontrollers",
            "ReplicationController",
            True,
            short_names=("rc",),
            categories=_ALL,
            subresources=("status", "scale"),
            has_generation=True,
        ),
        RT("apiregistration.k8s.io", "v1", "apiservices", "APIService", False, subresources=st),
        RT("", "v1", "podtemplates", "PodTemplate", True),
        RT("", "v1", "persistentvolumes", "PersistentVolume", False, short_names=("pv",), subresources=st),
        RT("networking.k8s.io", "v1", "ingresses", "Ingress", True, short_names=("ing",), subresources=st),
        RT("networking.k8s.io", "v1", "ingressclasses", "IngressClass", False),
        RT("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, short_names=("netpol",)),
        RT("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True),
        RT("storage.k8s.io", "v1", "storageclasses", "StorageClass", False, short_names=("sc",)),
        RT("storage.k8s.io", "v1", "csidrivers", "CSIDriver", False),
        RT("storage.k8s.io", "v1", "csinodes", "CSINode", False),
        RT("storage.k8s.io", "v1", "volumeattachments", "VolumeAttachment", False, subresources=st),
        RT(
            "autoscaling",
            "v2",
            "horizontalpodautoscalers",
            "HorizontalPodAutoscaler",
            True,
            short_names=("hpa",),
            categories=_ALL,
            subresources=st,
        ),
        RT("node.k8s.io", "v1", "runtimeclasses", "RuntimeClass", False),
        RT("events.k8s.io", "v1", "events", "Event", True, short_names=("ev",)),
        RT("coordination.k8s.io", "v1", "leases", "Lease", True),
        RT("batch", "v1", "jobs", "Job", True, categories=_ALL, subresources=st, has_generation=True),
        RT("batch", "v1", "cronjobs", "CronJob", True, short_names=("cj",), categories=_ALL, subresources=st),
        RT(
            "apps",
            "v1",
            "deployments",
            "Deployment",
            True,
            short_names=("deploy",),
            categories=_ALL,
            subresources=("status", "scale"),
            has_generation=True,
        ),
        RT(
            "apps",
            "v1",
            "replicasets",
            "ReplicaSet",
            True,
            short_names=("rs",),
            categories=_ALL,
            subresources=("status", "scale"),
            has_generation=True,
        ),
        RT(
            "apps",
            "v1",
            "statefulsets",
            "StatefulSet",
            True,
            short_names=("sts",),
            categories=_ALL,
            subresources=("status", "scale"),
            has_generation=True,
        ),
        RT(
            "apps",
            "v1",
            "daemonsets",
            "DaemonSet",
            True,
            short_names=("ds",),
            categories=_ALL,
            subresources=st,
            has_generation=True,
        ),
        RT("apps", "v1", "controllerrevisions", "ControllerRevision", True),
        RT("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
        RT("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
        RT("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
        RT("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
        RT("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", False, short_names=("pc",)),
        RT(
            "policy",
            "v1",
            "poddisruptionbudgets",
            "PodDisruptionBudget",
            True,
            short_names=("pdb",),
            subresources=st,
        ),
        RT(
            "admissionregistration.k8s.io",
            "v1",
            "mutatingwebhookconfigurations",
            "MutatingWebhookConfiguration",
            False,
        ),
        RT(
            "admissionregistration.k8s.io",
            "v1",
            "validatingwebhookconfigurations",
            "ValidatingWebhookConfiguration",
            False,
        ),
        RT(
            "authorization.k8s.io",
            "v1",
            "selfsubjectaccessreviews",
            "SelfSubjectAccessReview",
            False,
            virtual=True,
        ),
        RT(
            "authorization.k8s.io",
            "v1",
            "selfsubjectrulesreviews",
            "SelfSubjectRulesReview",
            False,
            virtual=True,
        ),
        RT("authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview", False, virtual=True),
        RT("authentication.k8s.io", "v1", "tokenreviews", "TokenReview", False, virtual=True),
        RT(
            "authorization.k8s.io",
            "v1",
            "subjectaccessreviews",
            "SubjectAccessReview",
            False,
            virtual=True,
        ),
        RT(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            False,
            short_names=("crd", "crds"),
            subresources=st,
            has_generation=True,
        ),
    ]


class Registry:
    """Every served type, by key and by (group, kind)."""

    def __init__(self) -> None:
        self._by_key: dict[Key, ResourceType] = {}
        self._served: set[tuple[str, str]] | None = None  # (group, version) pairs, while no type changes
        for rt in builtin_types():
            self.add(rt)

    def add(self, rt: ResourceType) -> None:
        self._by_key[rt.key] = rt
        self._served = None

    def remove(self, key: Key) -> None:
        self._by_key.pop(key, None)
        self._served = None

    def serves(self, group: str, version: str) -> bool:
        """Whether some type is served at group/version (``version in groups()[group]``, without building it)."""
        if self._served is None:
            self._served = {(rt.group, rt.version) for rt in self._by_key.values()}
        return (group, version) in self._served

    def get(self, key: Key) -> ResourceType | None:
        return self._by_key.get(tuple(key))  # type: ignore[arg-type]

    def all(self) -> list[ResourceType]:
        return list(self._by_key.values())

    def groups(self) -> dict[str, list[str]]:
        """group -> served versions (preferred first)."""
        out: dict[str, list[str]] = {}
        for rt in self._by_key.values():
            versions = out.setdefault(rt.group, [])
            if rt.version not in versions:
                versions.append(rt.version)
        return out
