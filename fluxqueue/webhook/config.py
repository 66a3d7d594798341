"""Settings of the admission webhook (all of them; the webhook reads nothing else)."""

from __future__ import annotations

from dataclasses import dataclass, field

from fluxqueue.kube import names
from fluxqueue.placement.units import UnitDefaults

# Namespaces Kubernetes itself runs in; fluxqueue never holds their pods.
KUBERNETES_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease")


@dataclass(frozen=True)
class WebhookConfig:
    # fluxqueue's own namespace: its controller, Fluxion and PostgreSQL must never wait in its own queue.
    namespace: str = "fluxqueue-system"
    # More namespaces to leave alone (e.g. monitoring, ingress), on top of Kubernetes' own and ours.
    extra_system_namespaces: tuple[str, ...] = ()
    scheduler_name: str = names.SCHEDULER_NAME
    gate: str = names.SCHEDULING_GATE
    default_duration: int = 3600  # seconds, when neither a label nor activeDeadlineSeconds says
    # Scheduler names that mean "nobody chose a scheduler": pods naming these are taken over.
    takeover_scheduler_names: tuple[str, ...] = ("", "default-scheduler")
    # When true, an unsuspend of a managed Job is only let through if the same request sets the placement
    # annotation (fluxqueue.io/nodes) the controller writes; anything else is re-suspended and queued.
    strict_unsuspend: bool = False
    priority_classes: dict[str, int] = field(default_factory=dict)

    @property
    def system_namespaces(self) -> frozenset[str]:
        return frozenset((*KUBERNETES_NAMESPACES, self.namespace, *self.extra_system_namespaces))

    @property
    def unit_defaults(self) -> UnitDefaults:
        return UnitDefaults(default_duration=self.default_duration, priority_classes=self.priority_classes)
