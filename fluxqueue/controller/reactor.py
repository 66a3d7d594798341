"""What reacts: watch events on Jobs, Pods, Nodes turned into submissions, bindings and releases.

Every handler is idempotent and cheap for events that change nothing; the periodic sweep calls the same
handlers for every cached object, so an event missed while disconnected (or a pod gated while the controller
was down) is picked up within one sweep: nothing stays gated forever.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fluxqueue.controller.context import Context
from fluxqueue.controller.fluxjob import owner_reference
from fluxqueue.controller.pods import holder_key, is_ours, unit_pods, wrapped_objects
from fluxqueue.controller.scheduler import Scheduler
from fluxqueue.controller.units import owner_key, scheduling_unit, submission_for
from fluxqueue.dependencies.spec import DependencyError, parse_dependency
from fluxqueue.kube import names
from fluxqueue.kube.client import APIError
from fluxqueue.log import get_logger
from fluxqueue.placement.jobspec import jobspec_for
from fluxqueue.placement.units import UnitDefaults, UnitError, read_settings, same_dependency
from fluxqueue.queue.store import (
    ACTIVE_STATES,
    CANCELLED,
    FAILED,
    HELD,
    HOLDING_STATES,
    PREEMPTED,
    QUEUED,
    TERMINAL_STATES,
    WAITING,
    Unit,
)
from fluxqueue.workloads.base import Workload, pod_running
from fluxqueue.workloads.job import JobWorkload
from fluxqueue.workloads.pod import PodWorkload
from fluxqueue.workloads.podgroup import PodGroupWorkload, group_outcome
from fluxqueue.workloads.registry import unit_of_pod, workload

log = get_logger(__name__)

TERMINAL_PHASES = ("Succeeded", "Failed")
# Seconds a filling group's "n of size present" status waits for more members before it is written (each member
# restarts the wait; a group that completes is told "Queued" instead): members of a gang arrive in bursts, and a
# status write per member was most of a gang's API requests under a flood.
GROUP_STATUS_DELAY = 2.0
# Seconds members are gathered before they are added as owners of the FluxJob in one patch (at once when the
# group completes). Owners only matter to the garbage collector, once every member is gone.
GROUP_OWNER_DELAY = 1.0
LANES = 256  # units whose pod events are handled at once (each waits mostly on API and database round trips)
# A pod event whose handler failed (the database or the API server away for a moment) is handled again after
# RETRY_FIRST_S, doubling up to RETRY_MAX_S, as controller-runtime requeues a failed reconcile with backoff.
RETRY_FIRST_S = 0.25
RETRY_MAX_S = 30.0


def _meta(obj: dict) -> dict:
    return obj.get("metadata") or {}


def _phase(pod: dict) -> str | None:
    return (pod.get("status") or {}).get("phase")


def _gated(pod: dict) -> bool:
    return any(
        g.get("name") == names.SCHEDULING_GATE for g in (pod.get("spec") or {}).get("schedulingGates") or []
    )


class Reactor:
    def __init__(self, ctx: Context, scheduler: Scheduler):
        self.ctx = ctx
        self.scheduler = scheduler
        # The unit lifecycle, called directly: starting (unsuspend, bind), ending, status.
        self.start = scheduler.start
        self.end = scheduler.end
        self.status = scheduler.status
        self.by_owner: dict[str, int] = {}  # wrapped object's uid (or group key) -> unit id
        self.members: set[str] = set()  # uids of pods already joined to a group
        self.sweeps = 0
        # Submissions are serialised per wrapped object (the sweep and the watch handlers may see the same
        # object at once), not globally: one global lock made every pod wait for the previous pod's database
        # and API round trips, capping admission-to-queue at ~30 pods/s.
        self._key_locks: dict[str, asyncio.Lock] = {}
        self._key_users: dict[str, int] = {}
        # Pod events of one unit are handled in order, in their own lane; different units concurrently.
        self._lanes: dict[str, collections.deque] = {}
        self._lane_tasks: set[asyncio.Task] = set()
        self._lane_slots = asyncio.Semaphore(LANES)
        self._retries: dict[str, int] = {}  # pod uid -> failed attempts in a row
        self._retry_timers: set[asyncio.TimerHandle] = set()
        self._group_fluxjobs: dict[int, dict] = {}  # unit id -> its FluxJob while members join
        # unit id -> members not yet owners of its FluxJob, and an event set when they are to go at once
        self._pending_owners: dict[int, tuple[list[dict], asyncio.Event]] = {}

    @contextlib.asynccontextmanager
    async def _submitting(self, key: str) -> AsyncIterator[None]:
        lock = self._key_locks.setdefault(key, asyncio.Lock())
        self._key_users[key] = self._key_users.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._key_users[key] -= 1
            if not self._key_users[key]:
                del self._key_users[key]
                self._key_locks.pop(key, None)

    # ---- pod event lanes ----------------------------------------------------------------------------

    def on_pod_event(self, kind: str, pod: dict, old: dict | None) -> None:
        """The pod informer's handler: foreign pods inline; ours in their unit's lane."""
        if not is_ours(pod):
            meta = _meta(pod)
            if kind == "DELETED" or (pod.get("spec") or {}).get("nodeName"):
                self.start.forget_pod(meta.get("uid") or "")
            self._foreign_pod(kind, pod, old)
            return
        key = holder_key(pod)
        lane = self._lanes.get(key)
        if lane is not None:
            lane.append((kind, pod, old))
            return
        self._lanes[key] = lane = collections.deque([(kind, pod, old)])
        task = asyncio.create_task(self._run_lane(key, lane))
        self._lane_tasks.add(task)
        task.add_done_callback(self._lane_tasks.discard)

    async def _run_lane(self, key: str, lane: collections.deque) -> None:
        try:
            async with self._lane_slots:
                while lane:
                    kind, pod, old = lane.popleft()
                    try:
                        await self.on_pod(kind, pod, old)
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        log.exception("pod handler failed", unit=key, event=kind)
                        self._retry_later(
                            _meta(pod).get("uid") or "", lambda k=kind, p=pod, o=old: self._retry_pod(k, p, o)
                        )
                    else:
                        if self._retries:
                            self._retries.pop(_meta(pod).get("uid") or "", None)
        finally:
            if self._lanes.get(key) is lane:
                del self._lanes[key]

    def _retry_later(self, uid: str, again: Callable[[], None]) -> None:
        """Call ``again`` after a backoff: a failed event is handled again (a group member whose join failed
        must not wait for the sweep, a safety net that may be a minute away under load)."""
        attempt = self._retries.get(uid, 0)
        self._retries[uid] = attempt + 1
        delay = min(RETRY_MAX_S, RETRY_FIRST_S * 2**attempt)

        def fire() -> None:
            self._retry_timers.discard(timer)
            again()

        timer = asyncio.get_running_loop().call_later(delay, fire)
        self._retry_timers.add(timer)

    def _retry_pod(self, kind: str, pod: dict, old: dict | None) -> None:
        meta = _meta(pod)
        if kind != "DELETED":
            # Acted on as the pod is now; one deleted or replaced since had its own events handled.
            now = self.ctx.pods.get(meta.get("namespace") or "", meta.get("name") or "")
            if now is None or _meta(now).get("uid") != meta.get("uid"):
                self._retries.pop(meta.get("uid") or "", None)
                return
            pod = now
        self.on_pod_event(kind, pod, old)

    async def drain(self) -> None:
        """Stop the lanes (leadership lost or stopping): the next leader's sweep redoes what they missed."""
        for timer in self._retry_timers:
            timer.cancel()
        self._retry_timers.clear()
        self._retries.clear()
        tasks = list(self._lane_tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._lanes.clear()

    @property
    def defaults(self) -> UnitDefaults:
        s = self.ctx.settings
        classes = {}
        if self.ctx.priorityclasses is not None:
            # Job pod templates are not resolved by the Priority admission plugin: look the class up here.
            classes = {
                _meta(pc).get("name"): int(pc.get("value") or 0) for pc in self.ctx.priorityclasses.items()
            }
        classes.update(s.priority_classes)
        return UnitDefaults(default_duration=s.default_duration, priority_classes=classes)

    async def load(self) -> None:
        """Remember the units the database knows (after a restart)."""
        for unit in await self.ctx.store.active():
            self.by_owner[unit.owner_uid] = unit.id
            if unit.state in HOLDING_STATES:
                self.ctx.holding.add(unit.owner_uid)
        for unit in await self.ctx.store.draining():
            self.ctx.holding.add(unit.owner_uid)
            self.end.draining[unit.id] = unit
            if unit.kind == PodGroupWorkload.kind:
                for _pod, uid in await self.ctx.store.group_members(unit.id):
                    self.members.add(uid)

    def _graph(self):
        graphs = self.scheduler.graphs
        return graphs.graph if graphs.graph is not None and not self.ctx.graph_dirty else graphs.rebuild()

    # ---- Nodes --------------------------------------------------------------------------------------

    def on_node(self, kind: str, node: dict, old: dict | None) -> None:
        if kind == "MODIFIED" and old is not None and _node_shape(node) == _node_shape(old):
            return  # heartbeats
        self.ctx.graph_dirty = True
        self.ctx.wake("node")

    # ---- workload objects (Job, JobSet, MPIJob...) ----------------------------------------------------

    def workload_handler(self, kind_name: str) -> Any:
        """The informer handler for one workload kind's objects."""
        kind = workload(kind_name)

        async def handle(event: str, obj: dict, old: dict | None) -> None:
            meta = _meta(obj)
            uid = meta.get("uid") or ""
            try:
                await self.on_workload(kind, event, obj, old)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("workload handler failed", kind=kind_name, object=meta.get("name"), event=event)
                self._retry_later(uid, lambda: self._retry_workload(kind_name, handle, event, obj, old))
            else:
                if self._retries:
                    self._retries.pop(uid, None)

        return handle

    def _retry_workload(self, kind_name: str, handle: Any, event: str, obj: dict, old: dict | None) -> None:
        meta = _meta(obj)
        if event != "DELETED":
            informer = self.ctx.objects.get(kind_name)
            now = informer.get(meta.get("namespace") or "", meta.get("name") or "") if informer else None
            if now is None or _meta(now).get("uid") != meta.get("uid"):
                self._retries.pop(meta.get("uid") or "", None)
                return
            obj = now
        task = asyncio.create_task(handle(event, obj, old))
        self._lane_tasks.add(task)
        task.add_done_callback(self._lane_tasks.discard)

    async def on_job(self, event: str, job: dict, old: dict | None) -> None:
        await self.on_workload(workload(JobWorkload.kind), event, job, old)

    async def on_workload(self, kind: Workload, event: str, obj: dict, old: dict | None) -> None:
        meta = _meta(obj)
        if self.ctx.skipped_namespace(meta.get("namespace")):
            return
        if (meta.get("labels") or {}).get(names.LABEL_MANAGED) != "true":
            return
        uid = meta.get("uid") or ""
        unit_id = self.by_owner.get(uid)
        if event == "DELETED":
            unit = await self.ctx.store.by_owner(uid)
            if unit is not None:
                await self.end.finish(unit, CANCELLED, f"{kind.api_kind} deleted")
            return
        if unit_id is None:
            if (meta.get("annotations") or {}).get(names.ANNOTATION_USER_SUSPENDED) == "true":
                return  # the user holds it; the webhook re-suspends it for us when they let go
            if not kind.suspended(obj) or kind.outcome(obj) or meta.get("deletionTimestamp"):
                return  # not ours to start (created while the webhook was away): foreign load
            await self.submit_workload(kind, obj)
            return
        outcome = kind.outcome(obj)
        if outcome is not None:
            unit = await self.ctx.store.get(unit_id)
            if unit is not None and unit.state in ACTIVE_STATES:
                await self.end.finish(unit, *outcome, warning=outcome[0] != "Succeeded")
        elif kind.started(obj) and unit_id not in self.start.running:
            unit = await self.ctx.store.get(unit_id)
            if unit is not None:
                await self.start.note_running(unit)

    async def submit_workload(self, kind: Workload, obj: dict) -> Unit | None:
        try:
            su = kind.unit(obj, self.defaults)
        except UnitError as exc:
            await self.ctx.actions.event([obj], "InvalidSettings", str(exc), "Warning")
            return None
        if su.size <= 0:
            return None  # parallelism 0: nothing to place until the user raises it
        return await self._submit(su, [obj])

    async def submit_job(self, job: dict) -> Unit | None:
        return await self.submit_workload(workload(JobWorkload.kind), job)

    async def _submit(self, su: Any, owners: list[dict]) -> Unit | None:
        async with self._submitting(owner_key(su)):
            if owner_key(su) in self.by_owner:
                return None  # queued meanwhile by the sweep or the watch (both check before locking)
            return await self._submit_unlocked(su, owners)

    async def _submit_unlocked(self, su: Any, owners: list[dict]) -> Unit | None:
        ctx = self.ctx
        try:
            spec = jobspec_for(su, self._graph())
        except UnitError as exc:
            await ctx.actions.event(owners, "InvalidSettings", str(exc), "Warning")
            return None
        unit, created = await ctx.store.submit(
            submission_for(su, reason="waiting for the next scheduling pass")
        )
        self.by_owner[unit.owner_uid] = unit.id
        if created and unit.state == HELD:
            self.scheduler.dependencies.held_submitted()
        if created:
            # Queued from here on: the pass may place (or reject) it while its FluxJob is being created
            # (under a flood the API server's answer takes tens of milliseconds); a status that found no
            # FluxJob is written again just below, once it exists.
            ctx.wake("submitted")
        if await ctx.actions.ensure_fluxjob(unit, owners, spec) is not None:
            created_ids = self.status.fluxjob_created
            if len(created_ids) > 100_000:
                created_ids.clear()  # units that ended before their FluxJob was seen created linger here
            created_ids.add(unit.id)
        if unit.id in self.status.missed:
            self.status.missed.discard(unit.id)
            fresh = await ctx.store.get(unit.id)
            if fresh is not None:
                await self.status.publish(fresh)
        if created:
            log.info("queued", unit=unit.key, size=unit.size, priority=unit.priority)
            # The FluxJob tells the story; the wrapped object hears from us when it is placed (or cannot be).
            # Its status (and a "Queued" Event) is first written by a pass that leaves it waiting: a unit placed
            # at once is only told "Scheduled", two requests less per unit in a flood.
            if ctx.metrics is not None:
                with contextlib.suppress(Exception):
                    ctx.metrics.observe_queued(unit)
        return unit

    # ---- Pods ---------------------------------------------------------------------------------------

    async def on_pod(self, kind: str, pod: dict, old: dict | None) -> None:
        meta = _meta(pod)
        uid = meta.get("uid") or ""
        if kind == "DELETED" or (pod.get("spec") or {}).get("nodeName"):
            self.start.forget_pod(uid)  # the watch has caught up with our binding
        if not is_ours(pod):
            self._foreign_pod(kind, pod, old)
            return
        ns = meta.get("namespace")
        if self.ctx.skipped_namespace(ns):
            return
        if (pod.get("spec") or {}).get("nodeName") and holder_key(pod) not in self.ctx.holding:
            # Ours but outliving its unit: counted as foreign load until it ends.
            self._foreign_pod(kind, pod, old)
        if self.end.draining and (kind == "DELETED" or _phase(pod) in TERMINAL_PHASES):
            await self.end.settle_draining()
        try:
            ref = unit_of_pod(pod)
        except UnitError as exc:
            if kind == "ADDED":
                await self.ctx.actions.event([pod], "InvalidSettings", str(exc), "Warning")
            return
        if ref is None:
            return
        if ref.kind == PodWorkload.kind:
            await self._bare_pod(kind, pod)
        elif ref.kind == PodGroupWorkload.kind:
            await self._group_pod(kind, pod, ref.name)
        else:
            await self._workload_pod(kind, pod, ref.owner_key)

    def _foreign_pod(self, kind: str, pod: dict, old: dict | None) -> None:
        node = (pod.get("spec") or {}).get("nodeName")
        old_node = ((old or {}).get("spec") or {}).get("nodeName")
        if not node and not old_node:
            return
        if kind == "MODIFIED" and node == old_node and _phase(pod) == _phase(old or {}):
            return
        self.ctx.graph_dirty = True
        if kind == "DELETED" or _phase(pod) in TERMINAL_PHASES:
            self.ctx.wake("foreign pod gone")

    async def _workload_pod(self, kind: str, pod: dict, owner: str) -> None:
        """A pod of a workload object's unit (a Job's, a JobSet's, an MPIJob's): bound to the allocation."""
        unit_id = self.by_owner.get(owner)
        if unit_id is None:
            return
        spec = pod.get("spec") or {}
        if kind != "DELETED" and not spec.get("nodeName") and _phase(pod) not in TERMINAL_PHASES:
            await self.start.bind_unit_pods(unit_id)
        elif kind != "DELETED" and pod_running(pod):
            if unit_id not in self.start.running:
                await self.start.mark_running(unit_id)
        elif kind == "DELETED" or _phase(pod) in TERMINAL_PHASES:
            # A slot came free: a replacement pod may be waiting for it.
            if kind != "DELETED" and _phase(pod) == "Failed":
                await self._tell_pod_failed(unit_id, pod)
            await self.start.bind_unit_pods(unit_id)

    async def _bare_pod(self, kind: str, pod: dict) -> None:
        uid = _meta(pod).get("uid") or ""
        unit_id = self.by_owner.get(uid)
        if kind == "DELETED":
            unit = await self.ctx.store.by_owner(uid)
            if unit is not None:
                await self.end.finish(unit, CANCELLED, "pod deleted")
            return
        if unit_id is None:
            if (
                _gated(pod)
                and not (pod.get("spec") or {}).get("nodeName")
                and _phase(pod) not in TERMINAL_PHASES
            ):
                try:
                    su = workload(PodWorkload.kind).unit(pod, self.defaults)
                except UnitError as exc:
                    await self.ctx.actions.event([pod], "InvalidSettings", str(exc), "Warning")
                    return
                await self._submit(su, [pod])
            return
        outcome = workload(PodWorkload.kind).outcome(pod)
        if outcome is not None:
            unit = await self.ctx.store.get(unit_id)
            if unit is not None and unit.state in ACTIVE_STATES:
                await self.end.finish(unit, *outcome, warning=outcome[0] != "Succeeded")
        elif pod_running(pod) and unit_id not in self.start.running:
            await self.start.mark_running(unit_id)

    async def _group_pod(self, kind: str, pod: dict, group: str) -> None:
        meta = _meta(pod)
        ns, uid = meta.get("namespace"), meta.get("uid") or ""
        terminal = kind == "DELETED" or _phase(pod) in TERMINAL_PHASES or bool(meta.get("deletionTimestamp"))
        if terminal:
            unit = await self.ctx.store.live_group(ns, group)
            if unit is not None:
                await self.check_group(unit)
            return
        if uid not in self.members:
            if _gated(pod) and not (pod.get("spec") or {}).get("nodeName"):
                await self.join_group(pod)
            return
        if pod_running(pod) and self.by_owner.get(f"group:{ns}/{group}") not in self.start.running:
            unit = await self.ctx.store.live_group(ns, group)
            if unit is not None:
                await self.start.note_running(unit)

    async def join_group(self, pod: dict) -> Unit | None:
        async with self._submitting(holder_key(pod)):
            if (_meta(pod).get("uid") or "") in self.members:
                return None
            return await self._join_group_unlocked(pod)

    async def _join_group_unlocked(self, pod: dict) -> Unit | None:
        ctx = self.ctx
        try:
            su = PodGroupWorkload().unit(pod, self.defaults, group_size=self._podgroup_size(pod))
            jobspec_for(su, self._graph())  # refuses a member that could never be placed
        except UnitError as exc:
            await ctx.actions.event([pod], "InvalidSettings", str(exc), "Warning")
            return None
        meta = _meta(pod)
        unit, count = await ctx.store.join_group(submission_for(su), meta["name"], meta.get("uid") or "")
        self.members.add(meta.get("uid") or "")
        self.by_owner[owner_key(su)] = unit.id
        if su.dependency is not None or unit.dependency is not None:
            await self._check_group_dependency(unit, su, pod)
        # The group's FluxJob as we last wrote it: later members add themselves as owners without a create
        # that conflicts and a get (two requests per member).
        fluxjob = self._group_fluxjobs.get(unit.id)
        if fluxjob is None:
            fluxjob = await ctx.actions.ensure_fluxjob(unit, [pod])
        if fluxjob is not None:
            refs = fluxjob.setdefault("metadata", {}).setdefault("ownerReferences", [])
            if not any(r.get("uid") == meta.get("uid") for r in refs):
                self._add_owner_soon(unit, pod)
                refs.append(owner_reference(pod, controller=False))
            self._group_fluxjobs[unit.id] = fluxjob
        if count >= unit.size:
            self._group_fluxjobs.pop(unit.id, None)
            pending = self._pending_owners.get(unit.id)
            if pending is not None:
                pending[1].set()  # complete: no more members to wait for
        if unit.state == QUEUED and count == unit.size:
            # Told "Queued" only if it then waits in the queue (as a single unit is): one Event less per gang.
            log.info("group complete; queued", unit=unit.key, size=unit.size)
            ctx.wake("group complete")
        if unit.state == WAITING:
            # Members arrive in bursts: the count is written once the burst is over, not once per member, and
            # the "Waiting" Event goes with the first such write (a group that fills within the burst is never
            # told it waits). Well within the group's timeout, so a group that never fills is seen waiting
            # before it fails.
            delay = min(GROUP_STATUS_DELAY, ctx.settings.group_timeout / 4)
            await self.status.publish(unit, defer=delay, members=count)
        elif unit.state == QUEUED:
            self.status.drop_deferred(unit.id)  # complete: the next pass tells where it stands
        else:
            await self.status.publish(unit)
        return unit

    async def _check_group_dependency(self, unit: Unit, su: Any, pod: dict) -> None:
        """All members of a group name its dependency (the first one's is the group's): a member that
        disagrees is told so (the webhook sees one pod at a time and cannot)."""
        if unit.state == HELD:
            self.scheduler.dependencies.held_submitted()  # complete: decided in the next pass
        group = None
        if unit.dependency is not None:
            with contextlib.suppress(DependencyError):
                group = parse_dependency(unit.dependency, own_name=unit.object_name)
        if not same_dependency(group, su.dependency):
            message = (
                f"members of pod group {unit.group_name!r} disagree on {names.ANNOTATION_DEPENDENCY}: the group "
                f"waits for {unit.dependency or 'nothing'!r}, this member names "
                f"{su.dependency.text if su.dependency else 'nothing'!r}; the group's is kept"
            )
            await self.ctx.actions.event([pod], "InvalidSettings", message, "Warning")

    def _podgroup_size(self, pod: dict) -> int | None:
        """coscheduling's group size: its PodGroup's ``spec.minMember`` (scheduler-plugins
        ``apis/scheduling/v1alpha1``), when that CRD is served and the PodGroup exists."""
        if self.ctx.coscheduling is None:
            return None
        settings = read_settings([_meta(pod)])
        if not settings.size_from_podgroup:
            return None
        group = self.ctx.coscheduling.get(_meta(pod).get("namespace"), settings.group_name or "")
        size = ((group or {}).get("spec") or {}).get("minMember")
        return size if isinstance(size, int) and size > 0 else None

    async def _tell_pod_failed(self, unit_id: int, pod: dict) -> None:
        """A pod of a placed unit failed (the kubelet rejected it, OutOf*, or it crashed): its FluxJob says so."""
        unit = await self.ctx.store.get(unit_id)
        if unit is None or unit.state not in HOLDING_STATES:
            return
        status = pod.get("status") or {}
        why = status.get("reason") or status.get("message") or "failed"
        message = f"pod {_meta(pod).get('name')} failed on {(pod.get('spec') or {}).get('nodeName')}: {why}"
        await self.ctx.actions.event([self.ctx.actions.fluxjob_ref(unit)], "PodFailed", message, "Warning")

    def _add_owner_soon(self, unit: Unit, pod: dict) -> None:
        """Make ``pod`` an owner of its group's FluxJob; members joining within GROUP_OWNER_DELAY are added
        in one patch (the FluxJob was created with the first member as owner)."""
        pending = self._pending_owners.get(unit.id)
        if pending is None:
            pending = self._pending_owners[unit.id] = ([], asyncio.Event())
            task = asyncio.create_task(self._add_owners_later(unit, pending))
            self._lane_tasks.add(task)
            task.add_done_callback(self._lane_tasks.discard)
        pending[0].append(pod)

    async def _add_owners_later(self, unit: Unit, pending: tuple[list[dict], asyncio.Event]) -> None:
        pods, due = pending
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(due.wait(), GROUP_OWNER_DELAY)
        finally:
            self._pending_owners.pop(unit.id, None)
        if pods:
            await self.ctx.actions.add_owners(unit, pods)

    async def check_group(self, unit: Unit) -> None:
        members = await self.ctx.store.group_members(unit.id)
        pods = []
        for name, uid in members:
            pod = self.ctx.pods.get(unit.namespace, name)
            pods.append(pod if pod is not None and _meta(pod).get("uid") == uid else None)
        outcome = group_outcome(pods, unit.size)
        # A member that cannot run: failed (rejected by its kubelet, crashed) or being deleted while it ran
        # (by a user, or with its node).
        present = [p for p in pods if p is not None]
        alive = [
            p for p in present if _phase(p) not in TERMINAL_PHASES and not _meta(p).get("deletionTimestamp")
        ]
        failed = [p for p in present if _phase(p) == "Failed" and not _meta(p).get("deletionTimestamp")]
        killed = [p for p in present if _meta(p).get("deletionTimestamp") and _phase(p) != "Succeeded"]
        # (All of it being deleted is the user cancelling the group: group_outcome says Cancelled.)
        broken = failed + (killed if alive else [])
        if outcome is None and broken and unit.state in HOLDING_STATES:
            # A gang with a member that cannot run is over: it ends Failed, the rest of it is deleted and the
            # allocation comes back once they are gone.
            await self._fail_group(unit, broken[0], [p for p in pods if p is not None and p not in broken])
        elif outcome is not None:
            await self.end.finish(unit, *outcome, warning=outcome[0] != "Succeeded")
        elif self.end.group_expired(unit):
            await self.end.expire_group(unit, [p for p in pods if p is not None])
        elif unit.state in HOLDING_STATES:
            await self.start.bind_unit_pods(unit.id)

    async def _fail_group(self, unit: Unit, failed: dict, others: list[dict]) -> None:
        status = failed.get("status") or {}
        node = (failed.get("spec") or {}).get("nodeName")
        if _phase(failed) == "Failed":
            what = f"failed on {node}: {status.get('reason') or status.get('message') or 'failed'}"
        else:
            what = f"was deleted while it ran on {node}"
        reason = f"member {_meta(failed).get('name')} {what}; the group's other pods were deleted"
        done = await self.end.finish(unit, FAILED, reason, warning=True)
        if done is None:
            return
        for pod in others:
            if _phase(pod) in TERMINAL_PHASES or _meta(pod).get("deletionTimestamp"):
                continue
            await self.ctx.actions.event([pod], "GroupFailed", reason, "Warning")
            with contextlib.suppress(Exception):
                await self.ctx.actions.delete_pod(pod)

    # ---- the sweep ----------------------------------------------------------------------------------

    async def sweep(self, settle: float = 0.0) -> None:
        """Reconcile the database with the cluster (anything an event missed).

        ``settle``: leave alone what changed less than that many seconds ago (its events are being handled;
        a periodic sweep that redid the work in flight of a flood of units, one unit at a time, took 30 s
        and doubled its requests). The start-up sweep takes everything.
        """
        ctx = self.ctx
        await self.end.settle_draining()
        cutoff = datetime.now(UTC) - timedelta(seconds=settle) if settle > 0 else None
        active = await ctx.store.active()
        await self._rewrite_stale_statuses({(u.namespace, u.name) for u in active}, cutoff)
        for unit in active:
            if cutoff is not None and _changed_since(unit, cutoff):
                continue
            try:
                await self._reconcile_unit(unit)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reconcile failed", unit=unit.key)
        # Adopt what we never saw: managed Jobs and gated pods with no unit (missed while down or away).
        for kind_name, informer in ctx.objects.items():
            kind = workload(kind_name)
            for obj in informer.items():
                if (_meta(obj).get("uid") or "") not in self.by_owner:
                    await self.on_workload(kind, "ADDED", obj, None)
        for pod in ctx.pods.items():
            meta = _meta(pod)
            if (
                is_ours(pod)
                and _gated(pod)
                and meta.get("uid") not in self.by_owner
                and meta.get("uid") not in self.members
                and holder_key(pod) not in self._lanes  # its events are being handled right now
            ):
                try:
                    await self.on_pod("ADDED", pod, None)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("adopting a pod failed", pod=f"{meta.get('namespace')}/{meta.get('name')}")
        self.sweeps += 1

    async def _rewrite_stale_statuses(self, active: set[tuple[str, str]], cutoff: datetime | None) -> None:
        """Write again the status of ended units whose FluxJob still shows them live: the controller stopped
        between ending the unit (in the database) and writing its status. Units that ended after ``cutoff``
        are left alone (their write may be in flight)."""
        keys = []
        for fluxjob in self.ctx.fluxjobs.items():
            meta = _meta(fluxjob)
            key = (meta.get("namespace") or "", meta.get("name") or "")
            phase = (fluxjob.get("status") or {}).get("phase")
            if phase not in TERMINAL_STATES and key not in active and not meta.get("deletionTimestamp"):
                keys.append(key)
        for unit in await self.ctx.store.by_names(keys):
            if unit.state not in TERMINAL_STATES:
                continue
            if cutoff is not None and (unit.finished_at is None or unit.finished_at > cutoff):
                continue
            log.info("rewriting the status of an ended unit", unit=unit.key, state=unit.state)
            await self.status.publish(unit)
            self.status.forget_status(unit.id)

    async def _reconcile_unit(self, unit: Unit) -> None:
        ctx = self.ctx
        self.by_owner.setdefault(unit.owner_uid, unit.id)
        wrapped: list[dict] = []
        informer = ctx.objects.get(unit.kind)
        if unit.kind == PodGroupWorkload.kind:
            await self.check_group(unit)
            fresh = await ctx.store.get(unit.id)
            if fresh is None or fresh.state not in ACTIVE_STATES:
                return
            unit = fresh
            wrapped = wrapped_objects(ctx, unit)
        elif informer is not None or unit.kind == PodWorkload.kind:
            kind = workload(unit.kind)
            obj = (informer or ctx.pods).get(unit.namespace, unit.object_name)
            what = kind.api_kind or "pod"
            if obj is None or _meta(obj).get("uid") != unit.owner_uid:
                await self.end.finish(unit, CANCELLED, f"{what} deleted")
                return
            outcome = kind.outcome(obj)
            if outcome is not None:
                await self.end.finish(unit, *outcome, warning=outcome[0] != "Succeeded")
                return
            wrapped = [obj]
        else:
            return  # a kind whose API is not served (its CRD was removed): left as it is
        if ctx.fluxjobs.get(unit.namespace, unit.name) is None and wrapped:
            spec = None
            with contextlib.suppress(UnitError):
                spec = jobspec_for(scheduling_unit(unit), self._graph())
            await ctx.actions.ensure_fluxjob(unit, wrapped, spec)
            self.status.published.pop(unit.id, None)
            await self.status.publish(unit)
        if unit.state == PREEMPTED:
            # Suspended again if a stopped controller had not, and requeued once its pods are gone.
            with contextlib.suppress(APIError):
                await self.end.preempt(unit, unit.reason)
            return
        if unit.state in HOLDING_STATES:
            if not unit.started:
                await self.start.start(unit.id)
                return
            pods = unit_pods(ctx, unit)
            if any(
                not (p.get("spec") or {}).get("nodeName") and _phase(p) not in TERMINAL_PHASES for p in pods
            ):
                await self.start.bind_unit_pods(unit.id)
            if unit.state == "Scheduled":
                await self.start.note_running(unit)


def _changed_since(unit: Unit, cutoff: datetime) -> bool:
    """Whether the unit was submitted, queued or placed after ``cutoff``."""
    return any(t is not None and t > cutoff for t in (unit.submitted_at, unit.queued_at, unit.scheduled_at))


def _node_shape(node: dict) -> tuple:
    """What of a Node matters to the graph (not heartbeat timestamps)."""
    status = node.get("status") or {}
    ready = next((c.get("status") for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    spec = node.get("spec") or {}
    return (
        repr(sorted((_meta(node).get("labels") or {}).items())),
        repr(status.get("allocatable")),
        ready,
        spec.get("unschedulable"),
        repr(spec.get("taints")),
        _meta(node).get("deletionTimestamp"),
    )
