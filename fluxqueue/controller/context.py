"""What the controller's parts share: clients, caches, the store, and the wake-up signal."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from fluxqueue.controller.actions import Actions
from fluxqueue.controller.settings import ControllerSettings
from fluxqueue.kube.watch import Informer
from fluxqueue.queue.store import QueueStore


@dataclass
class Context:
    settings: ControllerSettings
    client: Any  # fluxqueue.kube.client.KubeClient
    store: QueueStore
    fluxion: Any  # fluxqueue.fluxion.client.FluxionClient
    actions: Actions
    jobs: Informer
    pods: Informer
    nodes: Informer
    fluxjobs: Informer
    priorityclasses: Informer | None = None
    # The watched objects of each workload kind that is an API object (Job, JobSet, MPIJob), by kind; kinds
    # whose API the cluster does not serve are absent.
    objects: dict[str, Informer] = field(default_factory=dict)
    coscheduling: Informer | None = None  # scheduler-plugins PodGroups (their minMember), when served
    queues: Informer | None = None  # tenant Queue objects (fluxqueue.queues), when their CRD is served
    metrics: Any = None
    wake_event: asyncio.Event = field(default_factory=asyncio.Event)
    # The cluster graph must be rebuilt (nodes or foreign pods changed).
    graph_dirty: bool = True
    # Owner keys of the units holding an allocation (their bound pods are not foreign load).
    holding: set[str] = field(default_factory=set)
    # Whether Fluxion answers MatchBatch (ours does; flux-sched's public service does not).
    match_batching: bool = True
    # One lock per unit id: releases and bindings of one unit never interleave.
    unit_locks: dict[int, asyncio.Lock] = field(default_factory=dict)

    def wake(self, why: str = "") -> None:
        self.wake_event.set()

    def lock_for(self, unit_id: int) -> asyncio.Lock:
        lock = self.unit_locks.get(unit_id)
        if lock is None:
            lock = self.unit_locks[unit_id] = asyncio.Lock()
        return lock

    def skipped_namespace(self, namespace: str | None) -> bool:
        return namespace == self.settings.namespace or namespace in self.settings.skip_namespaces
