"""The cluster as Fluxion sees it: a JGF graph built from Kubernetes Nodes and the pods we do not manage.

Hierarchy: ``cluster -> [zone ->] rack -> node -> {core, memory, gpu}``. The zone level appears only when some
node carries ``topology.kubernetes.io/zone`` (nodes without it go to zone ``default``); racks come from
``fluxqueue.io/rack`` (one rack ``rack0`` when absent). Node vertices are named with the exact Kubernetes node
name, so allocations map back without guessing (prior-art §7.4, §7.6).

What a node offers is its allocatable minus the requests of *foreign* pods bound to it and not finished
(DaemonSets, system pods, pods of other schedulers, anything that slipped past the webhook), as kube-scheduler
counts requests (:func:`fluxqueue.placement.resources.pod_requests`):

* cores: ``floor((allocatable cpu - foreign cpu) / 1000m)`` vertices;
* memory: ``floor((allocatable - foreign) / chunk)`` vertices of one chunk each (default 1 GiB; the unit
  convention is in :mod:`fluxqueue.placement.slots`);
* gpus: allocatable ``nvidia.com/gpu`` minus foreign GPU requests.

Excluded nodes (recorded with a reason): control-plane role label, cordoned (``spec.unschedulable``), NotReady
(Ready condition not "True", which also covers a node that never reported), being deleted. Tainted nodes stay
in the graph with their taints recorded; jobspecs keep pods off them unless tolerated
(:mod:`fluxqueue.placement.constraints`).

Node properties (RFC 31): every label as ``<key>`` (value = label value) and ``<key>=<value>``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fluxqueue.fluxion.jgf import GraphBuilder, dumps, loads
from fluxqueue.kube import names
from fluxqueue.kube.quantity import format_bytes
from fluxqueue.placement import constraints
from fluxqueue.placement.resources import ZERO, Resources, pod_requests, resource_list
from fluxqueue.placement.slots import memory_unit, slot_shape

CONTROL_PLANE_LABELS = (names.LABEL_CONTROL_PLANE, "node-role.kubernetes.io/master")
DEFAULT_RACK = "rack0"
DEFAULT_ZONE = "default"
TERMINAL_PHASES = ("Succeeded", "Failed")


@dataclass(frozen=True)
class NodeCapacity:
    """What one node offers fluxqueue (after foreign pods), and what Kubernetes says about it."""

    name: str
    cores: int
    memory_chunks: int
    memory: int  # bytes usable = memory_chunks * chunk
    gpus: int
    allocatable: Resources
    foreign: Resources
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[dict[str, Any]] = field(default_factory=list)
    zone: str = DEFAULT_ZONE
    rack: str = DEFAULT_RACK
    pods: int = 110  # allocatable pods minus foreign pods (informational; Fluxion does not model it)

    def slots_for(self, per_pod: Resources, memory_chunk_bytes: int) -> int:
        """How many pods of this shape the node could hold when empty of fluxqueue work."""
        cores, chunks, gpus = slot_shape(per_pod, memory_chunk_bytes)
        limits = [self.cores // cores]
        if chunks:
            limits.append(self.memory_chunks // chunks)
        if gpus:
            limits.append(self.gpus // gpus)
        return max(0, min(limits))


@dataclass
class ClusterGraph:
    # The JGF is kept as its JSON text: as Python dicts, 1,000 nodes of 32 cores and 128 memory chunks are
    # about a million small objects that every full garbage collection walks while the graph lives.
    jgf_text: str
    nodes: dict[str, NodeCapacity]
    excluded: dict[str, str]  # node name -> reason it is not in the graph
    memory_chunk_bytes: int = 2**30

    @property
    def jgf(self) -> dict[str, Any]:
        """The JGF document, parsed on each call (for replay and inspection; Fluxion gets the text)."""
        return loads(self.jgf_text)

    @property
    def fingerprint(self) -> str:
        """Identifies the graph's content (the builder's output is deterministic for a set of nodes)."""
        cached = self.__dict__.get("_fingerprint")
        if cached is None:
            cached = self.__dict__["_fingerprint"] = hashlib.sha256(self.jgf_text.encode()).hexdigest()
        return cached

    @property
    def largest_node(self) -> NodeCapacity | None:
        if not self.nodes:
            return None
        return max(self.nodes.values(), key=lambda n: (n.cores, n.memory, n.gpus, n.name))

    def node_capacity(self, name: str) -> NodeCapacity | None:
        return self.nodes.get(name)

    def node_views(self) -> list[constraints.NodeView]:
        # Built once per graph (every jobspec asks for it; a graph's nodes do not change after it is built).
        cached = self.__dict__.get("_node_views")
        if cached is None or len(cached) != len(self.nodes):
            cached = self.__dict__["_node_views"] = [
                (n.name, n.labels, n.taints) for n in self.nodes.values()
            ]
        return cached

    def tainted_node_views(self) -> list[constraints.NodeView]:
        cached = self.__dict__.get("_tainted_views")
        views = self.node_views()
        if cached is None or cached[0] is not views:
            cached = self.__dict__["_tainted_views"] = (views, [v for v in views if v[2]])
        return cached[1]

    def eligible_nodes(self, rules: Any) -> list[NodeCapacity]:
        """Nodes whose labels and taints let the pods of ``rules`` (a pod set) on."""
        return [n for n in self.nodes.values() if constraints.node_allows(rules, n.name, n.labels, n.taints)]

    def fits_ever(self, unit: Any) -> tuple[bool, str]:
        """Whether the unit could be placed on this graph with nothing else running, judged per node.

        ``(False, reason)`` reads like "asks 96 cores per pod, largest eligible node has 64". Summed capacity
        is never enough: a pod lives on one node. Each pod set is judged on the nodes it may use (necessary,
        not sufficient, for sets that compete for the same nodes: Fluxion has the last word). Re-judge when
        the graph changes (nodes added, foreign load gone).
        """
        if unit.size <= 0:
            return True, ""
        if not self.nodes:
            return False, "no schedulable nodes in the cluster" + _excluded_hint(self.excluded)
        whole_nodes = 0
        named = len(unit.pod_sets) > 1
        for pod_set in unit.pod_sets:
            ok, why, fitting = self._set_fits_ever(pod_set, unit.exclusive)
            if not ok:
                return False, f"pod set {pod_set.name}: {why}" if named else why
            whole_nodes = max(whole_nodes, fitting)
        if unit.exclusive:
            total = sum(s.count for s in unit.pod_sets)
            if total > len(self.nodes):
                return False, f"asks {total} whole nodes, the cluster has {len(self.nodes)}"
        return True, ""

    def _set_fits_ever(self, pod_set: Any, exclusive: bool) -> tuple[bool, str, int]:
        eligible = self.eligible_nodes(pod_set)
        if not eligible:
            reasons: dict[str, int] = {}
            for n in self.nodes.values():
                why = constraints.why_not(pod_set, n.name, n.labels, n.taints)
                reasons[why] = reasons.get(why, 0) + 1
            detail = ", ".join(f"{count} by {why}" for why, count in sorted(reasons.items()))
            return False, f"no node matches the pod's node constraints ({detail})", 0
        per_pod = pod_set.per_pod
        cores, chunks, gpus = slot_shape(per_pod, self.memory_chunk_bytes)
        best = max(eligible, key=lambda n: (n.cores, n.memory, n.gpus))
        for need, have_of, what in (
            (cores, lambda n: n.cores, "cores"),
            (chunks, lambda n: n.memory_chunks, "memory"),
            (gpus, lambda n: n.gpus, "GPUs"),
        ):
            if need and not any(have_of(n) >= need for n in eligible):
                largest = max(have_of(n) for n in eligible)
                if what == "memory":
                    asked = format_bytes(need * self.memory_chunk_bytes)
                    got = format_bytes(largest * self.memory_chunk_bytes)
                    return False, f"asks {asked} memory per pod, largest eligible node has {got}", 0
                return False, f"asks {need} {what} per pod, largest eligible node has {largest}", 0
        if exclusive:
            fitting = sum(1 for n in eligible if n.slots_for(per_pod, self.memory_chunk_bytes) >= 1)
            if fitting < pod_set.count:
                return (
                    False,
                    f"asks {pod_set.count} whole nodes, only {fitting} eligible nodes fit one pod",
                    0,
                )
            return True, "", fitting
        capacity = sum(n.slots_for(per_pod, self.memory_chunk_bytes) for n in eligible)
        if capacity < pod_set.count:
            return (
                False,
                (
                    f"asks {pod_set.count} pods of {per_pod.describe()}, eligible nodes hold at most {capacity} "
                    f"(largest: {best.name}, {best.cores} cores)"
                ),
                0,
            )
        return True, "", capacity


def _excluded_hint(excluded: dict[str, str]) -> str:
    if not excluded:
        return ""
    reasons: dict[str, int] = {}
    for why in excluded.values():
        reasons[why] = reasons.get(why, 0) + 1
    return " (" + ", ".join(f"{c} {why}" for why, c in sorted(reasons.items())) + ")"


def exclusion_reason(node: dict[str, Any]) -> str | None:
    """Why the node must not receive fluxqueue work, or None."""
    meta = node.get("metadata") or {}
    labels = meta.get("labels") or {}
    if meta.get("deletionTimestamp"):
        return "being deleted"
    for label in CONTROL_PLANE_LABELS:
        if label in labels:
            return "control-plane"
    if (node.get("spec") or {}).get("unschedulable"):
        return "cordoned"
    conditions = (node.get("status") or {}).get("conditions") or []
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    if ready is None or ready.get("status") != "True":
        return "NotReady"
    return None


def foreign_load(pods: Iterable[dict[str, Any]]) -> dict[str, Resources]:
    """Requests of bound, unfinished pods per node (pods counts them)."""
    load: dict[str, Resources] = {}
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if not node or (pod.get("status") or {}).get("phase") in TERMINAL_PHASES:
            continue
        load[node] = load.get(node, ZERO) + pod_requests(pod)
    return load


def build_cluster_graph(
    nodes: Iterable[dict[str, Any]],
    foreign_pods: Iterable[dict[str, Any]] = (),
    memory_chunk_bytes: int = 2**30,
) -> ClusterGraph:
    """The graph Fluxion is initialised with. Deterministic: nodes sorted by zone, rack, name."""
    chunk_size, chunk_unit = memory_unit(memory_chunk_bytes)
    load = foreign_load(foreign_pods)
    capacities: dict[str, NodeCapacity] = {}
    excluded: dict[str, str] = {}
    for node in nodes:
        meta = node.get("metadata") or {}
        name = meta.get("name") or ""
        reason = exclusion_reason(node)
        if reason:
            excluded[name] = reason
            continue
        status = node.get("status") or {}
        alloc_list = status.get("allocatable") or status.get("capacity") or {}
        allocatable = resource_list(alloc_list)
        try:
            max_pods = int(alloc_list.get("pods", 110))
        except (TypeError, ValueError):
            max_pods = 110
        allocatable = Resources(allocatable.cpu_milli, allocatable.memory, allocatable.gpus, max_pods)
        foreign = load.get(name, ZERO)
        free = allocatable - foreign
        labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
        chunks = max(0, free.memory) // memory_chunk_bytes
        capacities[name] = NodeCapacity(
            name=name,
            cores=max(0, free.cpu_milli) // 1000,
            memory_chunks=chunks,
            memory=chunks * memory_chunk_bytes,
            gpus=max(0, free.gpus),
            allocatable=allocatable,
            foreign=foreign,
            labels=labels,
            taints=list((node.get("spec") or {}).get("taints") or []),
            zone=labels.get(names.LABEL_ZONE, DEFAULT_ZONE),
            rack=labels.get(names.LABEL_RACK, DEFAULT_RACK),
            pods=max(0, free.pods),
        )
    with_zones = any(names.LABEL_ZONE in c.labels for c in capacities.values())
    builder = GraphBuilder()
    zone_vertices: dict[str, int] = {}
    rack_vertices: dict[tuple[str, str], int] = {}
    ordered = sorted(capacities.values(), key=lambda c: (c.zone, c.rack, c.name))
    for index, cap in enumerate(ordered):
        parent = builder.root
        if with_zones:
            if cap.zone not in zone_vertices:
                zone_vertices[cap.zone] = builder.add(builder.root, "zone", _vertex_name(cap.zone))
            parent = zone_vertices[cap.zone]
        rack_key = (cap.zone if with_zones else "", cap.rack)
        if rack_key not in rack_vertices:
            rack_vertices[rack_key] = builder.add(parent, "rack", _vertex_name(cap.rack))
        n = builder.add(
            rack_vertices[rack_key],
            "node",
            cap.name,
            vid=index,
            properties=constraints.node_properties(cap.labels),
        )
        if cap.cores:
            builder.add_many(n, "core", cap.cores)
        if cap.gpus:
            builder.add_many(n, "gpu", cap.gpus)
        if cap.memory_chunks:
            builder.add_many(n, "memory", cap.memory_chunks, size=chunk_size, unit=chunk_unit)
    return ClusterGraph(
        jgf_text=dumps(builder.to_jgf()),
        nodes={c.name: c for c in ordered},
        excluded=excluded,
        memory_chunk_bytes=memory_chunk_bytes,
    )


def _vertex_name(label_value: str) -> str:
    # Vertex names become path components; label values cannot hold "/" but be defensive.
    return label_value.replace("/", "_") or "unnamed"
