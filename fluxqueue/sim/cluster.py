"""The simulated cluster on top of the API emulator (contract C2): nodes, kubelets and controllers.

```python
cluster = SimCluster(api, ClusterSpec(nodes=16, cpus=32, memory="128Gi", gpus=0, racks=4), time_scale=60)
await cluster.start()
cluster.rejections          # kubelet admission rejections: over-commit evidence
await cluster.set_node_ready("node-003", False); await cluster.cordon("node-004")
await cluster.add_node("node-big", cpus=128); await cluster.remove_node("node-005")
await cluster.stop()
```

Running: one kubelet per node (:mod:`.kubelet`: admission, pod lifecycle, Leases and node status), the Job,
TTL-after-finished, ReplicaSet, Deployment, StatefulSet and DaemonSet controllers, the JobSet controller and
the MPI Operator (their CRDs, JobSet jobset.x-k8s.io/v1alpha2 and MPIJob kubeflow.org/v2beta1, are installed
at start, as a cluster with both add-ons would have them), the garbage collector
(:mod:`.controllers`), a pod garbage collector, and a stand-in for kube-scheduler that binds pods whose
schedulerName is ``default-scheduler`` (pods fluxqueue does not manage), as in a real cluster
(``ClusterSpec(default_scheduler=False)`` leaves them Pending). Namespace deletion is the API emulator's own
namespace controller.

Everything acts through ``api.client`` (same admission and API rules as HTTP clients) and reads from shared
informers; every delay is simulated time divided by ``time_scale`` (:mod:`fluxqueue.sim.clock`), served by one
timer heap. Node names are ``node-000``, ``node-001``, ... (zero-padded to at least three digits, more when
the count needs them). Racks and zones are contiguous blocks of nodes.

What the node lifecycle controller would do is done here when the simulation changes a node: NotReady adds
the node.kubernetes.io/not-ready NoSchedule and NoExecute taints, and the taint-eviction controller deletes
the node's pods once their toleration of it runs out (300 s by default, DefaultTolerationSeconds); cordon
sets spec.unschedulable and the node.kubernetes.io/unschedulable taint; a removed node's pods are deleted at
once, and pods bound to a node that does not exist (deleted with kubectl, or a misspelt nodeName) are
force-deleted after the pod garbage collector's 40 s quarantine.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from fluxqueue.log import get_logger
from fluxqueue.sim.apiserver import APIError
from fluxqueue.sim.apiserver import resources as R

from .clock import SimClock, Timers, rfc3339, rfc3339_micro
from .controllers import thirdparty_crds
from .controllers.base import Informer, Obj
from .controllers.daemonset import DaemonSetController
from .controllers.deployment import DeploymentController
from .controllers.events import EventRecorder
from .controllers.garbagecollector import KINDS, GarbageCollector
from .controllers.job import JobController
from .controllers.jobset import JobSetController
from .controllers.mpijob import MPIJobController
from .controllers.replicaset import ReplicaSetController
from .controllers.replicationcontroller import ReplicationControllerController
from .controllers.scheduler import DefaultScheduler
from .controllers.statefulset import StatefulSetController
from .controllers.ttl import TTLAfterFinishedController
from .kubelet import (
    NODE_LEASE_NAMESPACE,
    TAINT_NOT_READY,
    TAINT_UNSCHEDULABLE,
    Heartbeats,
    Kubelets,
    NodeAgent,
    NodeShape,
    lease_duration_s,
    lease_object,
    node_conditions,
    node_object,
    tolerates,
)

log = get_logger(__name__)

DEFAULT_NOT_READY_TOLERATION_S = 300.0
POD_GC_QUARANTINE_S = 40.0  # podgc quarantineTime


@dataclass
class ClusterSpec:
    nodes: int = 16
    cpus: int = 32
    memory: str = "128Gi"
    gpus: int = 0
    racks: int = 4
    zones: int = 1
    pods_per_node: int = 110
    ephemeral_storage: str = "100Gi"
    # simulated seconds
    pod_start_delay: float = 1.0  # bound -> Running
    # SIGTERM -> containers gone, capped by deletionGracePeriodSeconds; None: the whole grace period
    pod_stop_seconds: float | None = 1.0
    default_runtime: float = 10.0  # without the sim.fluxqueue.io/runtime annotation
    # load knobs
    heartbeats: bool = True
    heartbeat_writes_per_s: float = 100.0  # cap on lease + node status writes (real writes per second)
    events: bool = True
    controllers: bool = True
    # kube-scheduler's stand-in for pods with schedulerName default-scheduler (fluxqueue's pods are not)
    default_scheduler: bool = True


def node_names(count: int) -> list[str]:
    width = max(3, len(str(max(count - 1, 0))))
    return [f"node-{i:0{width}d}" for i in range(count)]


class SimCluster:
    def __init__(
        self, api: Any, spec: ClusterSpec | None = None, time_scale: float = 1.0, shared_reads: bool = True
    ):
        self.api = api
        self.client = api.client
        # informers read the emulator's stored objects without copies (writes always go through the client)
        self._engine = getattr(api, "engine", None) if shared_reads else None
        self.spec = spec or ClusterSpec()
        self.clock = SimClock(time_scale)
        if hasattr(api, "time_scale"):
            api.time_scale = self.clock.time_scale  # the emulator's watch timeouts run on simulated time
        self.timers: Timers | None = None
        self.informers: dict[tuple[str, str, str], Informer] = {}
        self.kubelets: Kubelets | None = None
        self.heartbeats: Heartbeats | None = None
        self.controllers: list[Any] = []
        self._node_index = 0
        self._evictions: dict[str, Any] = {}
        self._started = False

    # ----- public state
    @property
    def rejections(self) -> list[dict[str, Any]]:
        return self.kubelets.rejections if self.kubelets else []

    @property
    def time_scale(self) -> float:
        return self.clock.time_scale

    def informer(self, key: tuple[str, str, str]) -> Informer:
        inf = self.informers.get(key)
        if inf is None:
            inf = self.informers[key] = Informer(self.client, key, engine=self._engine)
        return inf

    # ----- lifecycle
    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        s = self.spec
        self.timers = Timers(self.clock)
        self.timers.start()
        pods = self.informer(R.PODS)
        nodes = self.informer(R.NODES)
        self.kubelets = Kubelets(
            self.client,
            self.clock,
            self.timers,
            pods.get,
            pod_start_delay=s.pod_start_delay,
            pod_stop_seconds=s.pod_stop_seconds,
            default_runtime=s.default_runtime,
            events=EventRecorder(self.client, enabled=s.events),
            observe=pods.observe,
            shared_results=self._engine is not None,
        )
        pods.add_handler(self.kubelets.on_pod)
        pods.add_handler(self._on_pod_for_podgc)
        nodes.add_handler(self._on_node)
        events = EventRecorder(self.client, enabled=s.events)
        if s.controllers:
            await thirdparty_crds.install(self.client)
            jobs = self.informer(R.JOBS)
            rsets = self.informer(R.REPLICASETS)
            self.controllers = [
                JobController(self.client, self.timers, self.clock, jobs, pods, events),
                JobSetController(
                    self.client, self.timers, self.informer(thirdparty_crds.JOBSETS), jobs, events
                ),
                MPIJobController(
                    self.client, self.timers, self.informer(thirdparty_crds.MPIJOBS), jobs, pods, events
                ),
                TTLAfterFinishedController(self.client, self.timers, self.clock, jobs),
                ReplicaSetController(self.client, self.timers, rsets, pods, events),
                ReplicationControllerController(
                    self.client, self.timers, self.informer(R.REPLICATIONCONTROLLERS), pods, events
                ),
                DeploymentController(self.client, self.timers, self.informer(R.DEPLOYMENTS), rsets, events),
                StatefulSetController(self.client, self.timers, self.informer(R.STATEFULSETS), pods, events),
                DaemonSetController(
                    self.client, self.timers, self.informer(R.DAEMONSETS), pods, nodes, events
                ),
            ]
            if s.default_scheduler:
                self.controllers.append(DefaultScheduler(self.client, self.timers, pods, nodes))
            gc_informers = {key: self.informer(key) for key in KINDS.values()}
            self.controllers.append(GarbageCollector(self.client, self.timers, gc_informers))
        # Nodes register before the informers start, so the kubelets know them when pods arrive.
        shapes = [self._shape(name) for name in node_names(s.nodes)]
        await self._register(shapes)
        await asyncio.gather(*(inf.start() for inf in list(self.informers.values())))
        for c in self.controllers:
            c.start()
        if s.heartbeats:
            self.heartbeats = Heartbeats(
                self.client, self.clock, self.kubelets, max_writes_per_s=s.heartbeat_writes_per_s
            )
            self.heartbeats.start()
        log.info("simulated cluster started", nodes=s.nodes, time_scale=self.clock.time_scale)

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        if self.heartbeats:
            await self.heartbeats.stop()
        for c in self.controllers:
            await c.stop()
        for inf in self.informers.values():
            await inf.stop()
        if self.timers:
            await self.timers.stop()

    # ----- nodes
    def _shape(self, name: str, **overrides: Any) -> NodeShape:
        s = self.spec
        i = self._node_index
        self._node_index += 1
        rack = i * max(s.racks, 1) // max(s.nodes, 1) if i < s.nodes else i % max(s.racks, 1)
        zone = i * max(s.zones, 1) // max(s.nodes, 1) if i < s.nodes else i % max(s.zones, 1)
        shape = NodeShape(
            name=name,
            cpus=s.cpus,
            memory=s.memory,
            gpus=s.gpus,
            pods=s.pods_per_node,
            ephemeral_storage=s.ephemeral_storage,
            zone=f"zone-{zone}",
            rack=f"rack-{rack}",
            index=i,
        )
        for k, v in overrides.items():
            if v is not None:
                setattr(shape, k, v)
        return shape

    async def _register(self, shapes: list[NodeShape]) -> None:
        assert self.kubelets is not None
        sem = asyncio.Semaphore(64)

        async def one(shape: NodeShape) -> None:
            async with sem:
                body = node_object(shape)
                try:
                    node = await self.client.create(R.NODES, body)
                except APIError as exc:
                    if exc.code != 409:
                        raise
                    node = await self.client.get(R.NODES, shape.name)
                self.kubelets.add(NodeAgent(shape.name, shape.index, node))
                duration = lease_duration_s(
                    max(self.spec.nodes, len(self.kubelets.nodes)),
                    self.spec.heartbeat_writes_per_s,
                    self.clock.time_scale,
                )
                lease = lease_object(shape.name, node["metadata"]["uid"], rfc3339_micro(), duration)
                try:
                    await self.client.create(R.LEASES, lease, namespace=NODE_LEASE_NAMESPACE)
                except APIError as exc:
                    if exc.code != 409:
                        raise

        await asyncio.gather(*(one(s) for s in shapes))

    def _on_node(self, typ: str, old: Obj | None, new: Obj | None) -> None:
        assert self.kubelets is not None
        if new is None:
            if old is not None:
                name = old["metadata"]["name"]
                self.kubelets.remove(name)
                assert self.timers is not None
                self.timers.after(POD_GC_QUARANTINE_S, self._collect_orphans, name)
            return
        agent = self.kubelets.nodes.get(new["metadata"]["name"])
        if agent is not None:
            agent.node = new  # labels, taints, allocatable as users change them (kubectl label/taint)

    # ----- pod garbage collector (pkg/controller/podgc gcOrphaned): pods bound to a node that does not
    # exist are force-deleted once the node has stayed absent for the quarantine.
    def _on_pod_for_podgc(self, typ: str, old: Obj | None, new: Obj | None) -> None:
        if new is None or typ != "ADDED" or self.kubelets is None or self.timers is None:
            return
        node = (new.get("spec") or {}).get("nodeName")
        if node and node not in self.kubelets.nodes:
            self.timers.after(POD_GC_QUARANTINE_S, self._collect_orphans, node)

    async def _collect_orphans(self, node: str) -> None:
        if self.informer(R.NODES).get("", node) is not None:
            return
        for p in [p for p in self.informer(R.PODS).items() if (p.get("spec") or {}).get("nodeName") == node]:
            md = p["metadata"]
            try:
                await self.client.delete(
                    R.PODS,
                    md["name"],
                    namespace=md.get("namespace"),
                    grace_period_seconds=0,
                    preconditions={"uid": md["uid"]},
                )
                log.info("pod garbage collector deleted orphaned pod", pod=md["name"], node=node)
            except APIError as exc:
                if exc.code not in (404, 409):
                    raise

    def _agent(self, name: str) -> NodeAgent:
        assert self.kubelets is not None
        agent = self.kubelets.nodes.get(name)
        if agent is None:
            raise KeyError(f"no simulated node {name!r}")
        return agent

    async def _patch_node(self, name: str, patch: Obj, subresource: str | None = None) -> Obj:
        node = await self.client.patch(R.NODES, name, patch, subresource=subresource)
        self.informer(R.NODES).observe(node)
        agent = self.kubelets.nodes.get(name) if self.kubelets else None
        if agent is not None:
            agent.node = node
        return node

    async def set_node_ready(self, name: str, ready: bool) -> None:
        """The node's kubelet reports Ready (or NotReady); the node lifecycle controller's taints follow."""
        agent = self._agent(name)
        now = rfc3339()
        await self._patch_node(name, {"status": {"conditions": node_conditions(ready, now, now)}}, "status")
        taints = [
            t for t in (agent.node.get("spec") or {}).get("taints") or [] if t.get("key") != TAINT_NOT_READY
        ]
        if not ready:
            taints += [
                {"key": TAINT_NOT_READY, "effect": "NoSchedule"},
                {"key": TAINT_NOT_READY, "effect": "NoExecute", "timeAdded": now},
            ]
        await self._patch_node(name, {"spec": {"taints": taints or None}})
        assert self.kubelets is not None and self.timers is not None
        self.kubelets.set_ready(name, ready)
        handle = self._evictions.pop(name, None)
        if handle:
            handle.cancel()
        if not ready:
            self._schedule_evictions(name, 0.0)

    def _schedule_evictions(self, name: str, elapsed: float) -> None:
        """Taint-eviction controller: pods that do not tolerate not-ready NoExecute forever are deleted when
        their tolerationSeconds run out; checked again at the next expiry."""
        assert self.timers is not None
        pods = [p for p in self.informer(R.PODS).items() if (p.get("spec") or {}).get("nodeName") == name]
        taint = {"key": TAINT_NOT_READY, "effect": "NoExecute"}
        due: list[tuple[float, Obj]] = []
        for p in pods:
            if p["metadata"].get("deletionTimestamp"):
                continue
            tols = [t for t in (p.get("spec") or {}).get("tolerations") or [] if tolerates([t], taint)]
            if not tols:
                due.append((0.0, p))
            elif all(t.get("tolerationSeconds") is not None for t in tols):
                due.append((float(min(t["tolerationSeconds"] for t in tols)), p))
        if not due:
            return
        first = min(d for d, _ in due)
        wait = max(0.0, first - elapsed)
        self._evictions[name] = self.timers.after(wait, self._evict, name, first)

    async def _evict(self, name: str, elapsed: float) -> None:
        self._evictions.pop(name, None)
        agent = self.kubelets.nodes.get(name) if self.kubelets else None
        if agent is None or agent.ready:
            return
        taint = {"key": TAINT_NOT_READY, "effect": "NoExecute"}
        for p in [p for p in self.informer(R.PODS).items() if (p.get("spec") or {}).get("nodeName") == name]:
            if p["metadata"].get("deletionTimestamp"):
                continue
            tols = [t for t in (p.get("spec") or {}).get("tolerations") or [] if tolerates([t], taint)]
            limit = min(
                (t.get("tolerationSeconds") for t in tols if t.get("tolerationSeconds") is not None),
                default=None,
            )
            if tols and (limit is None or limit > elapsed):
                continue
            try:
                await self.client.delete(
                    R.PODS, p["metadata"]["name"], namespace=p["metadata"].get("namespace")
                )
                log.info("evicted pod from NotReady node", pod=p["metadata"]["name"], node=name)
            except APIError as exc:
                if exc.code != 404:
                    raise
        self._schedule_evictions(name, elapsed)

    async def cordon(self, name: str, unschedulable: bool = True) -> None:
        """kubectl cordon: spec.unschedulable, plus the taint the node lifecycle controller adds for it."""
        agent = self._agent(name)
        taints = [
            t
            for t in (agent.node.get("spec") or {}).get("taints") or []
            if t.get("key") != TAINT_UNSCHEDULABLE
        ]
        if unschedulable:
            taints.append({"key": TAINT_UNSCHEDULABLE, "effect": "NoSchedule", "timeAdded": rfc3339()})
        await self._patch_node(
            name, {"spec": {"unschedulable": unschedulable or None, "taints": taints or None}}
        )

    async def uncordon(self, name: str) -> None:
        await self.cordon(name, False)

    async def taint(self, name: str, key: str, value: str | None = None, effect: str = "NoSchedule") -> None:
        agent = self._agent(name)
        taints = [
            t
            for t in (agent.node.get("spec") or {}).get("taints") or []
            if not (t.get("key") == key and t.get("effect") == effect)
        ]
        taint: Obj = {"key": key, "effect": effect}
        if value is not None:
            taint["value"] = value
        if effect == "NoExecute":
            taint["timeAdded"] = rfc3339()
        await self._patch_node(name, {"spec": {"taints": [*taints, taint]}})

    async def untaint(self, name: str, key: str, effect: str | None = None) -> None:
        agent = self._agent(name)
        taints = [
            t
            for t in (agent.node.get("spec") or {}).get("taints") or []
            if not (t.get("key") == key and (effect is None or t.get("effect") == effect))
        ]
        await self._patch_node(name, {"spec": {"taints": taints or None}})

    async def add_node(
        self,
        name: str,
        cpus: int | None = None,
        memory: str | None = None,
        gpus: int | None = None,
        pods: int | None = None,
        labels: dict[str, str] | None = None,
        rack: str | None = None,
        zone: str | None = None,
        taints: list[Obj] | None = None,
    ) -> Obj:
        """A new node joins (its kubelet registers the Node and starts heartbeating)."""
        shape = self._shape(
            name,
            cpus=cpus,
            memory=memory,
            gpus=gpus,
            pods=pods,
            labels=labels,
            rack=rack,
            zone=zone,
            taints=taints,
        )
        await self._register([shape])
        node = self._agent(name).node
        self.informer(R.NODES).observe(node)
        return node

    async def remove_node(self, name: str) -> None:
        """The node goes away: its Node and Lease are deleted and the pod garbage collector force-deletes
        the pods bound to it (orphaned pods)."""
        assert self.kubelets is not None
        self.kubelets.remove(name)
        for key, ns in ((R.NODES, None), (R.LEASES, NODE_LEASE_NAMESPACE)):
            try:
                await self.client.delete(key, name, namespace=ns)
            except APIError as exc:
                if exc.code != 404:
                    raise
        for p in [p for p in self.informer(R.PODS).items() if (p.get("spec") or {}).get("nodeName") == name]:
            md = p["metadata"]
            try:
                await self.client.delete(
                    R.PODS, md["name"], namespace=md.get("namespace"), grace_period_seconds=0
                )
            except APIError as exc:
                if exc.code != 404:
                    raise
