"""Pod sets: the pods of one unit that ask for the same thing (Kueue's PodSet, flux-sched's slot shape).

A unit has one or more pod sets. Each has a name (a Job's ``main``, a JobSet's replicated job, an MPIJob's
``launcher``/``worker``, a pod group's members of one shape), a count, the requests of each of its pods, and
where its pods may run (nodeSelector, required node affinity, tolerations). One Fluxion match asks for the
whole unit, one slot shape per pod set; each pod is then bound to a slot of its own set, so every pod lands
where its own request fits.

Pod sets are stored on the unit's row as JSON (``units.pod_sets``): :meth:`PodSet.to_json` /
:func:`pod_sets_from_json`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fluxqueue.kube.quantity import format_bytes
from fluxqueue.placement.resources import Resources, pod_requests

MAIN = "main"  # the name of a unit's only pod set when the workload does not name its sets
_TRAILING_INDEX = re.compile(r"-\d+$")


@dataclass(frozen=True)
class PodSet:
    name: str
    count: int
    per_pod: Resources
    node_selector: dict[str, str] = field(default_factory=dict)
    node_affinity_terms: list[dict[str, Any]] = field(default_factory=list)  # required terms, ORed
    tolerations: list[dict[str, Any]] = field(default_factory=list)

    @property
    def shape(self) -> tuple:
        """What makes two pods interchangeable: their requests and their placement rules."""
        return (
            self.per_pod.cpu_milli,
            self.per_pod.memory,
            self.per_pod.gpus,
            _canonical(self.node_selector),
            _canonical(self.node_affinity_terms),
            _canonical(self.tolerations),
        )

    @property
    def total(self) -> Resources:
        p = self.per_pod
        return Resources(p.cpu_milli * self.count, p.memory * self.count, p.gpus * self.count, self.count)

    def same_rules(self, other: PodSet) -> bool:
        return self.shape[3:] == other.shape[3:]

    def describe(self) -> str:
        """``launcher 1 x 8 CPU`` / ``worker 2 x 1 CPU, 4Gi, 1 GPU``: what people read on the FluxJob."""
        p = self.per_pod
        cpu = p.cpu_milli / 1000
        parts = [f"{cpu:g} CPU"]
        if p.memory:
            parts.append(format_bytes(p.memory))
        if p.gpus:
            parts.append(f"{p.gpus} GPU")
        return f"{self.name} {self.count} x {', '.join(parts)}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "count": self.count,
            "cpu_millis": self.per_pod.cpu_milli,
            "memory_bytes": self.per_pod.memory,
            "gpus": self.per_pod.gpus,
        }
        if self.node_selector:
            out["node_selector"] = self.node_selector
        if self.node_affinity_terms:
            out["node_affinity_terms"] = self.node_affinity_terms
        if self.tolerations:
            out["tolerations"] = self.tolerations
        return out


def pod_set_from_json(value: dict[str, Any]) -> PodSet:
    return PodSet(
        name=str(value.get("name") or MAIN),
        count=int(value.get("count") or 0),
        per_pod=Resources(
            int(value.get("cpu_millis") or 0),
            int(value.get("memory_bytes") or 0),
            int(value.get("gpus") or 0),
        ),
        node_selector=dict(value.get("node_selector") or {}),
        node_affinity_terms=list(value.get("node_affinity_terms") or []),
        tolerations=list(value.get("tolerations") or []),
    )


def pod_sets_from_json(values: Iterable[dict[str, Any]] | None) -> tuple[PodSet, ...]:
    return tuple(pod_set_from_json(v) for v in values or ())


def pod_sets_json(sets: Iterable[PodSet]) -> list[dict[str, Any]]:
    return [s.to_json() for s in sets]


def describe_pod_sets(sets: Iterable[PodSet]) -> str:
    return ", ".join(s.describe() for s in sets)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":")) if value else ""


def placement_rules(pod_spec: dict[str, Any]) -> tuple[dict[str, str], list[dict[str, Any]], list[dict]]:
    """nodeSelector, required node-affinity terms and tolerations of a pod spec (what kube-scheduler's
    NodeAffinity and TaintToleration filters read)."""
    selector = {str(k): str(v) for k, v in (pod_spec.get("nodeSelector") or {}).items()}
    required = ((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = list(required.get("nodeSelectorTerms") or [])
    tolerations = list(pod_spec.get("tolerations") or [])
    return selector, terms, tolerations


def pod_set_of(name: str, count: int, pod_or_template: dict[str, Any]) -> PodSet:
    """The pod set of ``count`` pods made from one pod or pod template."""
    selector, terms, tolerations = placement_rules(pod_or_template.get("spec") or {})
    return PodSet(
        name=name,
        count=count,
        per_pod=pod_requests(pod_or_template),
        node_selector=selector,
        node_affinity_terms=terms,
        tolerations=tolerations,
    )


def set_name_for_member(pod_name: str) -> str:
    """A readable set name from a member's name: ``mpi-worker-3`` -> ``mpi-worker``."""
    return _TRAILING_INDEX.sub("", pod_name) or pod_name or MAIN


def add_member(sets: tuple[PodSet, ...], member: PodSet) -> tuple[PodSet, ...]:
    """The sets with one more member (a pod group filling up): it joins the set of its shape, or starts one.

    Whatever order members arrive in, the sets come out the same but for their order and names (a set is
    named after the first member of its shape).
    """
    out = list(sets)
    for i, s in enumerate(out):
        if s.shape == member.shape:
            out[i] = PodSet(
                s.name,
                s.count + member.count,
                s.per_pod,
                s.node_selector,
                s.node_affinity_terms,
                s.tolerations,
            )
            return tuple(out)
    taken = {s.name for s in out}
    name, n = member.name, 2
    while name in taken:
        name, n = f"{member.name}-{n}", n + 1
    out.append(
        PodSet(
            name,
            member.count,
            member.per_pod,
            member.node_selector,
            member.node_affinity_terms,
            member.tolerations,
        )
    )
    return tuple(out)


def set_for_pod(sets: tuple[PodSet, ...], pod: dict[str, Any]) -> str | None:
    """The name of the set whose shape is the pod's (pod groups, whose sets are built from shapes)."""
    probe = pod_set_of("", 1, pod)
    for s in sets:
        if s.shape == probe.shape:
            return s.name
    return None
