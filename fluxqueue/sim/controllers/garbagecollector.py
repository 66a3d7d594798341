"""The garbage collector (pkg/controller/garbagecollector), over the resource types the simulation uses.

- Background: once an owner is gone, each dependent whose every owner is gone is deleted (background
  propagation); a dependent with another live owner only loses the dangling ownerReference.
- Foreground: the API server marks the owner with the ``foregroundDeletion`` finalizer; the collector deletes
  its dependents (those with blockOwnerDeletion foreground again) and removes the finalizer once no
  blocking dependent is left, which lets the API server drop the owner.
- Orphan: the API server itself drops the dependents' ownerReferences (see apiserver engine.delete), so
  there is nothing for the collector to do.
- A dependent that points at an owner uid the collector has never seen is checked with a GET after a short
  delay (the owner may have been deleted before the dependent was created) and collected if absent.
Namespace deletion is the API emulator's namespace controller (apiserver engine._empty_namespace).
"""

from __future__ import annotations

from typing import Any

from fluxqueue.log import get_logger
from fluxqueue.sim.apiserver import APIError
from fluxqueue.sim.apiserver import resources as R

from ..clock import Timers
from .base import Controller, Informer, Obj, owner_uids
from .thirdparty_crds import JOBSETS, MPIJOBS

log = get_logger(__name__)

FOREGROUND = "foregroundDeletion"

# The kinds the collector follows, by (apiVersion group, kind). Not Nodes and node Leases: they churn with
# every heartbeat and the cluster deletes a removed node's Lease itself.
KINDS: dict[tuple[str, str], tuple[str, str, str]] = {
    ("", "Pod"): R.PODS,
    ("", "ConfigMap"): R.CONFIGMAPS,
    ("", "Secret"): R.SECRETS,
    ("", "Service"): R.SERVICES,
    ("", "ReplicationController"): R.REPLICATIONCONTROLLERS,
    ("batch", "Job"): R.JOBS,
    ("apps", "ReplicaSet"): R.REPLICASETS,
    ("apps", "Deployment"): R.DEPLOYMENTS,
    ("apps", "StatefulSet"): R.STATEFULSETS,
    ("apps", "DaemonSet"): R.DAEMONSETS,
    ("apps", "ControllerRevision"): R.CONTROLLERREVISIONS,
    (R.FLUXJOBS[0], "FluxJob"): R.FLUXJOBS,
    (JOBSETS[0], "JobSet"): JOBSETS,
    (MPIJOBS[0], "MPIJob"): MPIJOBS,
}

Ref = tuple[tuple[str, str, str], str, str]  # (resource key, namespace, name)


def _group(api_version: str) -> str:
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""


class GarbageCollector(Controller):
    name = "garbage-collector"
    workers = 2

    def __init__(self, client: Any, timers: Timers, informers: dict[tuple[str, str, str], Informer]):
        super().__init__(client, timers)
        self.informers = informers
        self.uids: dict[str, Ref] = {}  # every object we know, by uid
        self.dependents: dict[str, set[Ref]] = {}  # owner uid -> dependents
        for key, inf in informers.items():
            inf.add_handler(self._handler(key))

    def _handler(self, key: tuple[str, str, str]):
        def on_change(typ: str, old: Obj | None, new: Obj | None) -> None:
            obj = new or old
            if obj is None:
                return
            md = obj["metadata"]
            ref: Ref = (key, md.get("namespace", ""), md["name"])
            uid = md["uid"]
            for o in owner_uids(old) if old else []:
                s = self.dependents.get(o)
                if s is not None:
                    s.discard(ref)
            if new is None:
                self.uids.pop(uid, None)
                for dep in list(self.dependents.pop(uid, ())):
                    self.queue.add(("dependent", dep))
                # an owner deleted in the foreground may be waiting for this one to go
                for o in owner_uids(old) if old else []:
                    oref = self.uids.get(o)
                    if oref is not None:
                        self.queue.add(("foreground", oref))
                return
            self.uids[uid] = ref
            for o in owner_uids(new):
                self.dependents.setdefault(o, set()).add(ref)
                if o not in self.uids:
                    self.queue.add_after(("dependent", ref), 0.5 * self.timers.clock.time_scale)
            if md.get("deletionTimestamp") and FOREGROUND in (md.get("finalizers") or ()):
                self.queue.add(("foreground", ref))
            # a dependent that changed while its owner is being deleted in the foreground
            for o in owner_uids(new):
                oref = self.uids.get(o)
                if oref is not None:
                    owner = self.informers[oref[0]].get(oref[1], oref[2])
                    if owner is not None and FOREGROUND in (owner["metadata"].get("finalizers") or ()):
                        self.queue.add(("foreground", oref))

        return on_change

    def _get(self, ref: Ref) -> Obj | None:
        inf = self.informers.get(ref[0])
        return inf.get(ref[1], ref[2]) if inf else None

    async def _owner_alive(self, dep: Obj, owner: Obj) -> bool:
        uid = owner.get("uid")
        if uid in self.uids:
            return True
        key = KINDS.get((_group(owner.get("apiVersion", "")), owner.get("kind", "")))
        if key is None:
            return True  # a kind we do not follow: never collect on its account
        ns = dep["metadata"].get("namespace")
        try:
            cur = await self.client.get(key, owner["name"], namespace=ns or None)
        except APIError as exc:
            if exc.code == 404:
                return False
            raise
        return cur["metadata"].get("uid") == uid

    async def reconcile(self, item: tuple[str, Ref]) -> None:
        what, ref = item
        if what == "dependent":
            await self._collect_dependent(ref)
        else:
            await self._foreground(ref)

    async def _collect_dependent(self, ref: Ref) -> None:
        dep = self._get(ref)
        if dep is None or (
            dep["metadata"].get("deletionTimestamp")
            and FOREGROUND not in (dep["metadata"].get("finalizers") or ())
        ):
            return
        owners = dep["metadata"].get("ownerReferences") or []
        if not owners:
            return
        dead = [o for o in owners if not await self._owner_alive(dep, o)]
        if not dead:
            return
        key, ns, name = ref
        if len(dead) == len(owners):
            # every owner is gone: delete it (attemptToDeleteItem, background propagation)
            try:
                out = await self.client.delete(
                    key, name, namespace=ns or None, propagation_policy="Background"
                )
                self.informers[key].observe_deleted(out)
            except APIError as exc:
                if exc.code not in (404, 409):
                    raise
            return
        keep = [o for o in owners if o not in dead]
        try:
            out = await self.client.patch(
                key,
                name,
                [
                    {"op": "test", "path": "/metadata/uid", "value": dep["metadata"]["uid"]},
                    {"op": "replace", "path": "/metadata/ownerReferences", "value": keep},
                ],
                namespace=ns or None,
                patch_type="json",
            )
            self.informers[key].observe(out)
        except APIError as exc:
            if exc.code not in (404, 409, 422):
                raise

    async def _foreground(self, ref: Ref) -> None:
        owner = self._get(ref)
        if owner is None:
            return
        md = owner["metadata"]
        if not md.get("deletionTimestamp") or FOREGROUND not in (md.get("finalizers") or ()):
            return
        blocking = 0
        for dref in list(self.dependents.get(md["uid"], ())):
            dep = self._get(dref)
            if dep is None:
                continue
            oref = next(
                (o for o in dep["metadata"].get("ownerReferences") or [] if o.get("uid") == md["uid"]), None
            )
            if oref is None:
                continue
            if oref.get("blockOwnerDeletion"):
                blocking += 1
            if not dep["metadata"].get("deletionTimestamp"):
                key, ns, name = dref
                try:
                    out = await self.client.delete(
                        key, name, namespace=ns or None, propagation_policy="Foreground"
                    )
                    self.informers[key].observe_deleted(out)
                except APIError as exc:
                    if exc.code not in (404, 409):
                        raise
        if blocking:
            return  # woken again as the blocking dependents change or go
        fins = [f for f in md.get("finalizers") or [] if f != FOREGROUND]
        key, ns, name = ref
        try:
            out = await self.client.patch(
                key,
                name,
                [
                    {"op": "test", "path": "/metadata/uid", "value": md["uid"]},
                    {"op": "replace", "path": "/metadata/finalizers", "value": fins},
                ],
                namespace=ns or None,
                patch_type="json",
            )
            self.informers[key].observe_deleted(out)
        except APIError as exc:
            if exc.code not in (404, 409, 422):
                raise
