"""Creating a controller's pods as controller_utils.go RealPodControl.CreatePods does: through the API (so
admission webhooks see them, like a real controller's), with a SuccessfulCreate or FailedCreate Event on the
owner. The ReplicaSet, DaemonSet and Job controllers use it; the StatefulSet controller words its Events
its own way (stateful_set_control.go), as the real one does."""

from __future__ import annotations

from typing import Any

from fluxqueue.sim.apiserver import APIError
from fluxqueue.sim.apiserver import resources as R

from .base import Informer, Obj
from .events import EventRecorder


async def create_pod(
    client: Any, pods: Informer, events: EventRecorder, owner: Obj, body: Obj, component: str
) -> Obj:
    """Create ``body`` in the owner's namespace; APIError is raised after the FailedCreate Event."""
    try:
        pod = await client.create(R.PODS, body, namespace=owner["metadata"].get("namespace"))
    except APIError as exc:
        await events.record(owner, "Warning", "FailedCreate", f"Error creating: {exc}", component)
        raise
    pods.observe(pod)  # the next decision counts it even before the watch delivers it
    await events.record(
        owner, "Normal", "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}", component
    )
    return pod
