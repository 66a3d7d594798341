"""What acts on Kubernetes: FluxJob objects and status, Events, unsuspending Jobs, ungating and binding pods.

Each action is idempotent, so a retry after a crash (or a repeated watch event) does no harm: creating a
FluxJob that exists is fine, unsuspending an unsuspended Job is fine, a pod already bound where we want it
counts as done.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fluxqueue.controller.fluxjob import fluxjob_body, owner_reference
from fluxqueue.kube import names
from fluxqueue.kube.client import FLUXJOBS, PODS, APIError, binding_body
from fluxqueue.kube.events import EventRecorder
from fluxqueue.log import get_logger
from fluxqueue.queue.store import Unit

log = get_logger(__name__)


# FluxJobs whose uid is remembered, and Events held for FluxJobs not created yet (bounded: a FluxJob that can
# never be created, or one deleted by hand, must not hold memory for ever).
MAX_REMEMBERED_FLUXJOBS = 100_000
MAX_HELD_EVENTS = 10_000


class Actions:
    def __init__(
        self,
        client: Any,
        recorder: EventRecorder,
        fluxjob_lookup: Callable[[str, str], dict | None] | None = None,
    ):
        self.client = client
        self.recorder = recorder
        # The FluxJob informer's cache (a FluxJob created by an earlier run of the controller).
        self.fluxjob_lookup = fluxjob_lookup
        self._fluxjob_uids: dict[tuple[str, str], str] = {}
        self._held_events: dict[tuple[str, str], list[tuple[str, str, str]]] = {}

    # ---- FluxJob ------------------------------------------------------------------------------------

    async def ensure_fluxjob(
        self, unit: Unit, owners: list[dict], jobspec: dict | None = None
    ) -> dict | None:
        """Create the FluxJob for ``unit`` unless it exists; returns it (None when it cannot be created)."""
        body = fluxjob_body(unit, owners, jobspec)
        try:
            fluxjob = await self.client.create(FLUXJOBS, body, namespace=unit.namespace)
        except APIError as exc:
            if exc.code != 409:
                log.warning("could not create FluxJob", fluxjob=unit.key, error=str(exc))
                return None
            try:
                fluxjob = await self.client.get(FLUXJOBS, unit.name, namespace=unit.namespace)
            except APIError:
                return None
        await self._fluxjob_exists(unit.namespace, unit.name, (fluxjob.get("metadata") or {}).get("uid"))
        return fluxjob

    async def _fluxjob_exists(self, namespace: str, name: str, uid: str | None) -> None:
        """Remember the FluxJob's uid and post the Events held until it existed."""
        if not uid:
            return
        key = (namespace, name)
        if len(self._fluxjob_uids) >= MAX_REMEMBERED_FLUXJOBS:
            self._fluxjob_uids.pop(next(iter(self._fluxjob_uids)))
        self._fluxjob_uids[key] = uid
        for reason, message, type_ in self._held_events.pop(key, []):
            await self.recorder.record(self._ref(namespace, name, uid), reason, message, type_)

    def forget_fluxjob(self, unit: Unit) -> None:
        """The unit has ended: its FluxJob's uid is no longer needed here."""
        self._fluxjob_uids.pop((unit.namespace, unit.name), None)

    async def add_owners(self, unit: Unit, owners: list[dict]) -> None:
        """Add pod group members as owners of the group's FluxJob, in one patch (GC deletes the FluxJob
        after the last owner is gone). The FluxJob has at least its first member as owner already."""
        ops = [
            {
                "op": "add",
                "path": "/metadata/ownerReferences/-",
                "value": owner_reference(o, controller=False),
            }
            for o in owners
        ]
        try:
            await self.client.patch(FLUXJOBS, unit.name, ops, namespace=unit.namespace, patch_type="json")
        except APIError as exc:
            log.warning("could not add FluxJob owners", fluxjob=unit.key, error=str(exc))

    async def set_status(self, unit: Unit, status: dict) -> bool:
        """Write the status subresource; False when the FluxJob does not exist (yet, or any more)."""
        try:
            await self.client.patch(
                FLUXJOBS,
                unit.name,
                {"status": status},
                namespace=unit.namespace,
                patch_type="merge",
                subresource="status",
            )
            return True
        except APIError as exc:
            if exc.code != 404:
                log.warning("could not update FluxJob status", fluxjob=unit.key, error=str(exc))
            return False

    def fluxjob_ref(self, unit: Unit) -> dict:
        """Enough of the FluxJob for an Event's involvedObject, with its uid when it is known: ``kubectl
        describe`` lists the Events whose involvedObject.uid is the object's (an Event without it is shown
        by ``kubectl get events`` only). :meth:`event` holds an Event for a FluxJob not created yet."""
        key = (unit.namespace, unit.name)
        uid = self._fluxjob_uids.get(key)
        if uid is None and self.fluxjob_lookup is not None:
            uid = ((self.fluxjob_lookup(*key) or {}).get("metadata") or {}).get("uid")
        return self._ref(unit.namespace, unit.name, uid)

    @staticmethod
    def _ref(namespace: str, name: str, uid: str | None) -> dict:
        meta = {"name": name, "namespace": namespace}
        if uid:
            meta["uid"] = uid
        return {
            "apiVersion": f"{names.CRD_GROUP}/{names.CRD_VERSION}",
            "kind": names.CRD_KIND,
            "metadata": meta,
        }

    async def event(self, objs: list[dict | None], reason: str, message: str, type_: str = "Normal") -> None:
        for obj in objs:
            if not obj:
                continue
            meta = obj.get("metadata") or {}
            if obj.get("kind") == names.CRD_KIND and not meta.get("uid"):
                # The unit was judged before its FluxJob was created (it is queued first): the Event is
                # posted once the FluxJob exists, so that it is attached to it.
                if len(self._held_events) >= MAX_HELD_EVENTS:
                    self._held_events.pop(next(iter(self._held_events)))
                key = (meta.get("namespace") or "", meta.get("name") or "")
                self._held_events.setdefault(key, []).append((reason, message, type_))
                continue
            await self.recorder.record(obj, reason, message, type_)

    # ---- starting work ------------------------------------------------------------------------------

    async def start_workload(
        self, kind: Any, namespace: str, name: str, nodes: list[str], jobid: int, fluxjob: str
    ) -> dict:
        """Unsuspend the workload so its own controller creates the pods (we bind them as they appear).

        The placement goes in annotations (a node list outgrows a 63-character label value, prior-art §12).
        """
        patch = kind.start_patch(
            {
                names.ANNOTATION_NODES: ",".join(nodes),
                names.ANNOTATION_FLUXION_JOBID: str(jobid),
                names.ANNOTATION_FLUXJOB: fluxjob,
            }
        )
        return await self.client.patch(kind.api, name, patch, namespace=namespace, patch_type="merge")

    async def suspend_workload(self, kind: Any, namespace: str, name: str) -> dict:
        """Suspend a started workload again (preemption): its controller deletes its pods."""
        return await self.client.patch(
            kind.api, name, kind.suspend_patch(), namespace=namespace, patch_type="merge"
        )

    async def bind_pod(
        self, pod: dict, node: str, *, jobid: int | None = None, fluxjob: str | None = None
    ) -> bool:
        """Remove our gate (if held) and POST a Binding; True once the pod is on ``node``.

        The API server refuses to bind a gated pod (409, prior-art §12), so the gate goes first.
        """
        meta = pod["metadata"]
        ns, name = meta.get("namespace"), meta["name"]
        gates = (pod.get("spec") or {}).get("schedulingGates") or []
        index = next((i for i, g in enumerate(gates) if g.get("name") == names.SCHEDULING_GATE), None)
        if index is not None:
            ops: list[dict] = [
                {"op": "test", "path": f"/spec/schedulingGates/{index}/name", "value": names.SCHEDULING_GATE},
                {"op": "remove", "path": f"/spec/schedulingGates/{index}"},
            ]
            if fluxjob:
                if not meta.get("annotations"):
                    ops.append({"op": "add", "path": "/metadata/annotations", "value": {}})
                ops.append(
                    {"op": "add", "path": "/metadata/annotations/fluxqueue.io~1fluxjob", "value": fluxjob}
                )
                if jobid is not None:
                    ops.append(
                        {
                            "op": "add",
                            "path": "/metadata/annotations/fluxqueue.io~1fluxion-jobid",
                            "value": str(jobid),
                        }
                    )
            try:
                await self.client.patch(PODS, name, ops, namespace=ns, patch_type="json")
            except APIError as exc:
                if exc.code == 404:
                    return False
                if exc.code not in (409, 422):  # 422: the gate is already gone (test op failed); go on
                    raise
        try:
            binding = binding_body(name, node, ns)
            await self.client.create(PODS, binding, namespace=ns, subresource="binding", name=name)
            return True
        except APIError as exc:
            if exc.code == 404:
                return False
            if exc.code == 409:
                current = await self.client.get(PODS, name, namespace=ns)
                bound = (current.get("spec") or {}).get("nodeName")
                if bound == node:
                    return True
                if bound:
                    log.error("pod already bound elsewhere", pod=f"{ns}/{name}", node=bound, wanted=node)
                    return True
            raise

    async def delete_pod(self, pod: dict) -> None:
        meta = pod["metadata"]
        try:
            await self.client.delete(PODS, meta["name"], namespace=meta.get("namespace"))
        except APIError as exc:
            if exc.code != 404:
                raise
