"""The queue store: a thin async layer over the ``fluxqueue`` schema (asyncpg, one pool).

Every state change is one statement or one transaction, and the ``units_state_history`` trigger writes its
history row and NOTIFYs ``fluxqueue_wakeup`` inside the same transaction. The SQL is in ``sql/*.sql``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from fluxqueue.log import get_logger
from fluxqueue.queue.batching import Batcher
from fluxqueue.queue.sql import QUERIES

log = get_logger(__name__)

WAKEUP_CHANNEL = "fluxqueue_wakeup"
# One scheduling pass at a time across every replica (session advisory lock key, "fqpass").
PASS_LOCK_KEY = 0x66717061_7373

WAITING = "Waiting"
HELD = "Held"  # its dependency (fluxqueue.io/dependency) does not hold yet: never matched
QUEUED = "Queued"
RESERVED = "Reserved"
SCHEDULED = "Scheduled"
RUNNING = "Running"
PREEMPTED = "Preempted"  # evicted, its workload suspended and its pods stopping: requeued once they are gone
SUCCEEDED = "Succeeded"
FAILED = "Failed"
UNSATISFIABLE = "Unsatisfiable"
CANCELLED = "Cancelled"

PENDING_STATES = (QUEUED, RESERVED)
HOLDING_STATES = (SCHEDULED, RUNNING)
ACTIVE_STATES = (WAITING, HELD, QUEUED, RESERVED, SCHEDULED, RUNNING, PREEMPTED)
TERMINAL_STATES = (SUCCEEDED, FAILED, UNSATISFIABLE, CANCELLED)


@dataclass(frozen=True)
class UnitSubmission:
    """What the controller knows about a unit when it first sees it."""

    namespace: str
    name: str  # the FluxJob's name
    kind: str  # a workload adapter's kind (fluxqueue.workloads)
    object_name: str
    owner_uid: str
    size: int
    duration_s: int
    pod_sets: list = field(default_factory=list)  # PodSet.to_json() of each set
    exclusive: bool = False
    priority: int = 0
    group_name: str | None = None
    queue: str = "default"
    state: str = QUEUED
    reason: str = ""
    placement: dict = field(default_factory=dict)
    # fluxqueue.io/dependency as written, and its terms ({condition, target, delay_s, joined} each): a unit
    # with one starts Held.
    dependency: str | None = None
    dependency_terms: tuple = ()


@dataclass(frozen=True)
class Unit:
    id: int
    namespace: str
    name: str
    kind: str
    object_name: str
    owner_uid: str
    size: int
    exclusive: bool
    duration_s: int
    priority: int
    group_name: str | None
    queue: str
    state: str
    submitted_at: datetime
    queued_at: datetime | None
    scheduled_at: datetime | None
    finished_at: datetime | None
    reason: str
    attempts: int
    started: bool  # the Kubernetes side of its placement is done (workload unsuspended, pods bound)
    placement: dict
    pod_sets: list
    dependency: str | None = None  # fluxqueue.io/dependency as written
    requeues: int = 0  # times preempted and requeued

    @classmethod
    def from_record(cls, record: asyncpg.Record) -> Unit:
        return cls(**{f.name: record[f.name] for f in fields(cls)})

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Released:
    """An allocation just marked released: its Fluxion job id and the Fluxion load (epoch) it belongs to."""

    fluxion_jobid: int
    epoch: int


def _released(row: asyncpg.Record | None) -> Released | None:
    return Released(row["fluxion_jobid"], row["epoch"]) if row is not None else None


@dataclass(frozen=True)
class NodeShare:
    """What one node gives a unit."""

    node: str
    cores: int
    memory_bytes: int
    gpus: int
    slots: int


@dataclass(frozen=True)
class Allocation:
    unit_id: int
    fluxion_jobid: int
    epoch: int
    allocated_at: datetime
    released_at: datetime | None
    nodes: list[NodeShare] = field(default_factory=list)
    duration_s: int = 0
    owner_uid: str = ""  # the unit's owner key (held_allocations only)

    @property
    def node_names(self) -> list[str]:
        return [n.node for n in self.nodes]


@dataclass(frozen=True)
class HistoryRow:
    id: int
    unit_id: int
    at: datetime
    from_state: str | None
    to_state: str
    reason: str


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=_json_text, decoder=orjson.loads, schema="pg_catalog")


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


async def _reset_connection(_conn: asyncpg.Connection) -> None:
    """Nothing to undo on release, so no round trip (asyncpg's default reset query cost one per use, ~5% of
    the controller's CPU at scale). asyncpg still rolls back an open transaction and drops listeners before
    calling this. The only session state the pool's connections ever take is the pass lock, and
    ``pass_lock`` closes a connection whose unlock did not run, so a lock never outlives its holder."""


def _identity_of(unit: Unit | UnitSubmission) -> tuple:
    """What makes a unit unique among the live ones (the units_owner and units_live_group indexes)."""
    return (unit.namespace, unit.group_name) if unit.kind == "PodGroup" else (unit.owner_uid,)


class QueueStore:
    """Open with ``await QueueStore.open(dsn)``; ``await store.close()`` when done."""

    def __init__(self, pool: asyncpg.Pool, dsn: str):
        self._pool = pool
        self._dsn = dsn
        self._q = QUERIES
        # Writes made for many units at once under load (see fluxqueue.queue.batching).
        self._schedule_batch: Batcher[dict, Unit | None] = Batcher(self._schedule_many)
        self._running_batch: Batcher[tuple[int, str], Unit | None] = Batcher(self._running_many)
        self._bindings_batch: Batcher[tuple[int, list[tuple[str, str, str]], bool], None] = Batcher(
            self._bindings_many
        )
        self._submit_batch: Batcher[UnitSubmission, Unit | None] = Batcher(self._submit_many)
        self._join_batch: Batcher[tuple[dict, str, str], tuple[Unit, int]] = Batcher(self._join_many)

    @classmethod
    async def open(cls, dsn: str, *, min_size: int = 1, max_size: int = 5) -> QueueStore:
        pool = await asyncpg.create_pool(
            dsn, min_size=min_size, max_size=max_size, init=_init_connection, reset=_reset_connection
        )
        return cls(pool, dsn)

    async def close(self) -> None:
        await self._pool.close()

    @property
    def dsn(self) -> str:
        return self._dsn

    # ---- submission -----------------------------------------------------------------------------------

    async def submit(self, sub: UnitSubmission) -> tuple[Unit, bool]:
        """Queue a unit once per wrapped object; returns (the unit, whether this call created it).

        Submissions arriving together (a flood of pods) are inserted by one statement; one whose unit exists
        already is then looked up on its own. A unit with a dependency starts Held, its terms written with it."""
        if sub.dependency is not None:
            return await self._submit_held(sub)
        created = await self._submit_batch.submit(sub)
        if created is not None:
            return created, True
        return await self._submit_one(sub)

    async def _submit_many(self, subs: list[UnitSubmission]) -> list[Unit | None]:
        rows = await self._pool.fetch(self._q["insert_units"], [sub.__dict__ for sub in subs])
        units = {_identity_of(u): u for u in map(Unit.from_record, rows)}
        # Two submissions of one unit in a batch: the first gets the new row, the second looks it up.
        return [units.pop(_identity_of(s), None) for s in subs]

    async def _submit_one(self, sub: UnitSubmission) -> tuple[Unit, bool]:
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(self._q["insert_unit"], *self._insert_args(sub))
            if row is not None:
                return Unit.from_record(row), True
            if sub.kind == "PodGroup":
                row = await conn.fetchrow(self._q["live_group"], sub.namespace, sub.group_name)
            else:
                row = await conn.fetchrow(self._q["unit_by_owner"], sub.owner_uid)
            if row is None:  # lost a race with a unit that finished in between: try once more
                row = await conn.fetchrow(self._q["insert_unit"], *self._insert_args(sub))
                return Unit.from_record(row), True
            return Unit.from_record(row), False

    async def _submit_held(self, sub: UnitSubmission) -> tuple[Unit, bool]:
        async with self._pool.acquire() as conn:
            async with conn.transaction():
                held = replace(sub, state=HELD)
                row = await conn.fetchrow(
                    self._q["insert_held_unit"], *self._insert_args(held), sub.dependency
                )
                if row is not None:
                    await conn.execute(self._q["insert_dependencies"], row["id"], list(sub.dependency_terms))
                    return Unit.from_record(row), True
        return await self._submit_one(sub)

    async def join_group(self, sub: UnitSubmission, pod: str, pod_uid: str) -> tuple[Unit, int]:
        """Record one member of a pod group; the group moves Waiting -> Queued once it has ``size`` members.

        Returns the unit and its member count. Joining twice is harmless.
        """
        waiting = {**sub.__dict__, "state": WAITING, "kind": "PodGroup"}
        return await self._join_batch.submit((waiting, pod, pod_uid))

    async def _join_one(self, waiting: dict, pod: str, pod_uid: str) -> tuple[Unit, int]:
        row = await self._pool.fetchrow(self._q["join_group"], waiting, pod, pod_uid)
        return Unit.from_record(row), int(row["members"])

    async def _join_many(self, items: list[tuple[dict, str, str]]) -> list[tuple[Unit, int] | BaseException]:
        if len(items) == 1:
            return [await self._join_one(*items[0])]
        try:
            rows = await self._pool.fetch(
                self._q["join_groups"], [i[0] for i in items], [i[1] for i in items], [i[2] for i in items]
            )
            return [(Unit.from_record(r), int(r["members"])) for r in rows]
        except asyncpg.PostgresError:
            # One join that fails (a group that changed too often) must not fail the members beside it.
            out: list[tuple[Unit, int] | BaseException] = []
            for item in items:
                try:
                    out.append(await self._join_one(*item))
                except asyncpg.PostgresError as exc:
                    out.append(exc)
            return out

    async def group_members(self, unit_id: int) -> list[tuple[str, str]]:
        rows = await self._pool.fetch(self._q["group_members"], unit_id)
        return [(r["pod"], r["pod_uid"]) for r in rows]

    @staticmethod
    def _insert_args(sub: UnitSubmission) -> list[Any]:
        return [
            sub.namespace,
            sub.name,
            sub.kind,
            sub.object_name,
            sub.owner_uid,
            sub.size,
            sub.pod_sets,
            sub.exclusive,
            sub.duration_s,
            sub.priority,
            sub.group_name,
            sub.queue,
            sub.state,
            sub.reason,
            sub.placement,
        ]

    # ---- reading ----------------------------------------------------------------------------------------

    async def get(self, unit_id: int) -> Unit | None:
        row = await self._pool.fetchrow(self._q["unit_by_id"], unit_id)
        return Unit.from_record(row) if row else None

    async def by_owner(self, owner_uid: str) -> Unit | None:
        row = await self._pool.fetchrow(self._q["unit_by_owner"], owner_uid)
        return Unit.from_record(row) if row else None

    async def by_name(self, namespace: str, name: str) -> Unit | None:
        row = await self._pool.fetchrow(self._q["unit_by_name"], namespace, name)
        return Unit.from_record(row) if row else None

    async def by_names(self, keys: list[tuple[str, str]]) -> list[Unit]:
        """The newest unit of each (namespace, name), in one statement (missing ones are left out)."""
        if not keys:
            return []
        rows = await self._pool.fetch(self._q["units_by_names"], [k[0] for k in keys], [k[1] for k in keys])
        return [Unit.from_record(r) for r in rows]

    async def live_group(self, namespace: str, group_name: str) -> Unit | None:
        row = await self._pool.fetchrow(self._q["live_group"], namespace, group_name)
        return Unit.from_record(row) if row else None

    async def pending(self, limit: int | None = None) -> list[Unit]:
        """Queued and Reserved units in scheduling order (priority desc, submitted asc, id); the first
        ``limit`` of them when given."""
        if limit:
            rows = await self._pool.fetch(self._q["pending_units_head"], limit)
        else:
            rows = await self._pool.fetch(self._q["pending_units"])
        return [Unit.from_record(r) for r in rows]

    async def active(self) -> list[Unit]:
        return [Unit.from_record(r) for r in await self._pool.fetch(self._q["active_units"])]

    async def position(self, unit_id: int) -> int | None:
        return await self._pool.fetchval(self._q["queue_position"], unit_id)

    async def state_counts(self) -> dict[str, int]:
        """Units per active state (the queue-length gauge)."""
        return {r["state"]: r["n"] for r in await self._pool.fetch(self._q["state_counts"])}

    async def history(self, unit_id: int) -> list[HistoryRow]:
        return [HistoryRow(**dict(r)) for r in await self._pool.fetch(self._q["history"], unit_id)]

    async def view(self, name: str) -> list[dict]:
        """Rows of a human view: ``queue``, ``running``, ``nodes``, ``held`` or ``waits``."""
        if name not in (
            "queue",
            "running",
            "nodes",
            "held",
            "waits",
            "queue_usage",
            "fair_share",
            "preemption_history",
            "runs",
        ):
            raise ValueError(f"no view {name!r}")
        return [dict(r) for r in await self._pool.fetch(self._q[f"{name}_view"])]

    # ---- tenant queues (fluxqueue.queues; only asked while Queue objects exist) -----------------------

    async def queue_usage(self) -> list[dict]:
        """What the units holding an allocation ask, per (namespace, queue label): rows of namespace, queue,
        units, cpu_millis, memory_bytes, gpus."""
        return [dict(r) for r in await self._pool.fetch(self._q["queue_usage"])]

    async def queue_pending(self) -> list[dict]:
        """What the waiting units ask, per (namespace, queue label), as :meth:`queue_usage`."""
        return [dict(r) for r in await self._pool.fetch(self._q["queue_pending"])]

    async def mirror_queues(self, queues: list[dict]) -> None:
        """The Queue objects as they are now ({name, namespaces, quota, limit, weight, share} each), for the
        psql views; queues no longer declared are dropped. With ``decayed`` (resource -> mean amount) and
        ``decayed_age`` (wall seconds since it was computed) a queue's fair-share memory is kept too, for the
        next leader (:meth:`decayed_usage`); without them the stored one stays."""
        await self._pool.execute(self._q["mirror_queues"], queues)

    async def decayed_usage(self) -> dict[str, tuple[dict[str, float], float]]:
        """Queue -> (its usage decayed over the half-life as last written, wall seconds since then)."""
        rows = await self._pool.fetch(self._q["decayed_usage"])
        return {
            r["name"]: ({k: float(v) for k, v in r["decayed_usage"].items()}, float(r["age_seconds"]))
            for r in rows
        }

    async def pending_queues(self) -> dict[tuple[str, str], str]:
        """(namespace, FluxJob name) of each pending unit -> the tenant queue it belongs to; empty while no
        Queue object exists."""
        rows = await self._pool.fetch(self._q["pending_queues"])
        return {(r["namespace"], r["name"]): r["queue"] for r in rows}

    async def holders(self) -> list[dict]:
        """Every unit holding an allocation: id, namespace, name, kind, queue, priority, state, pod_sets,
        owner_uid, fluxion_jobid, epoch, allocated_at, shares ([node, cores, memory_bytes, gpus] each) and
        preempted (already a victim once)."""
        return [dict(r) for r in await self._pool.fetch(self._q["holders"])]

    async def preempting(self) -> set[int]:
        """Units whose preemption victims still hold their allocations."""
        return {r["preemptor_id"] for r in await self._pool.fetch(self._q["preempting"])}

    async def record_preemptions(
        self, preemptor_id: int, victim_ids: list[int], cause: str, reason: str
    ) -> list[int]:
        """The decision, before any eviction (one statement); returns the rows' ids."""
        rows = await self._pool.fetch(self._q["record_preemptions"], preemptor_id, victim_ids, cause, reason)
        return [r["id"] for r in rows]

    async def unevicted_preemptions(self) -> list[dict]:
        """Decided evictions not carried out yet (a controller stopped half way): id, victim_id, reason."""
        return [dict(r) for r in await self._pool.fetch(self._q["unevicted_preemptions"])]

    async def mark_evicted(self, ids: list[int]) -> None:
        if ids:
            await self._pool.execute(self._q["mark_evicted"], ids)

    # ---- dependencies ---------------------------------------------------------------------------------

    async def held(self) -> list[tuple[Unit, list[dict]]]:
        """Every held unit and its terms, in the queue's order."""
        rows = await self._pool.fetch(self._q["held_units"])
        return [(Unit.from_record(r), list(r["terms"] or [])) for r in rows]

    async def units_named(self, keys: Iterable[tuple[str, str]]) -> list[dict]:
        """Every unit whose FluxJob is one of the (namespace, FluxJob name) ``keys``: id, namespace,
        object_name, state, scheduled_at, finished_at, singleton (it has a singleton term)."""
        keys = list(keys)
        if not keys:
            return []
        rows = await self._pool.fetch(self._q["units_named"], [k[0] for k in keys], [k[1] for k in keys])
        return [dict(r) for r in rows]

    async def singleton_peers(self, keys: Iterable[tuple[str, str]]) -> list[dict]:
        """Live units with a singleton term of one of the (namespace, name) ``keys``."""
        keys = list(keys)
        if not keys:
            return []
        rows = await self._pool.fetch(self._q["singleton_peers"], [k[0] for k in keys], [k[1] for k in keys])
        return [dict(r) for r in rows]

    async def release_held(self, items: list[tuple[int, str]]) -> list[Unit]:
        """Held -> Queued for (unit id, reason) each; returns the units moved (one ended meanwhile is not)."""
        if not items:
            return []
        rows = await self._pool.fetch(self._q["release_held"], [i[0] for i in items], [i[1] for i in items])
        return [Unit.from_record(r) for r in rows]

    async def set_held_reasons(self, items: list[tuple[int, str]]) -> list[Unit]:
        """What held units wait for; returns those whose reason changed."""
        if not items:
            return []
        rows = await self._pool.fetch(
            self._q["set_held_reasons"], [i[0] for i in items], [i[1] for i in items]
        )
        return [Unit.from_record(r) for r in rows]

    # ---- transitions ------------------------------------------------------------------------------------

    async def transition(
        self, unit_id: int, to_state: str, reason: str, *, from_states: Iterable[str], attempt: bool = False
    ) -> Unit | None:
        """Move to ``to_state`` only from one of ``from_states``; None when the unit was elsewhere."""
        row = await self._pool.fetchrow(
            self._q["set_state"], unit_id, to_state, reason, list(from_states), int(attempt)
        )
        return Unit.from_record(row) if row else None

    async def set_waiting_reasons(self, reasons: list[tuple[int, str, bool]]) -> None:
        """The reasons of many waiting units at once: (unit id, reason, whether Fluxion was asked)."""
        if reasons:
            await self._pool.execute(
                self._q["set_waiting_reasons"],
                [r[0] for r in reasons],
                [r[1] for r in reasons],
                [int(r[2]) for r in reasons],
            )

    async def schedule(
        self, unit_id: int, *, jobid: int, epoch: int, nodes: Iterable[NodeShare], reason: str
    ) -> Unit | None:
        """Persist an allocation and move the unit to Scheduled, atomically.

        None when the unit is no longer pending (deleted or scheduled by someone else): the caller must then
        cancel the Fluxion job it holds.
        """
        item = {
            "unit_id": unit_id,
            "reason": reason,
            "jobid": jobid,
            "epoch": epoch,
            "nodes": [
                {
                    "node": n.node,
                    "cores": n.cores,
                    "memory_bytes": n.memory_bytes,
                    "gpus": n.gpus,
                    "slots": n.slots,
                }
                for n in nodes
            ],
        }
        return await self._schedule_batch.submit(item)

    async def _schedule_many(self, items: list[dict]) -> list[Unit | None]:
        # Two placements of one unit in a batch (two passes racing): the first is written, the second
        # gets None like any placement that finds the unit no longer pending.
        first = {}
        for n, item in enumerate(items):
            first.setdefault(item["unit_id"], n)
        unique = [items[n] for n in sorted(first.values())]
        rows = await self._pool.fetch(self._q["schedule_units"], unique)
        by_id = {r["id"]: Unit.from_record(r) for r in rows}
        return [
            by_id.get(item["unit_id"]) if first[item["unit_id"]] == n else None
            for n, item in enumerate(items)
        ]

    async def start_running(self, unit_id: int, reason: str = "pods running") -> Unit | None:
        """Scheduled -> Running (batched with other units' starts); None when it was not Scheduled."""
        return await self._running_batch.submit((unit_id, reason))

    async def _running_many(self, items: list[tuple[int, str]]) -> list[Unit | None]:
        by_id: dict[int, Unit] = {}
        for reason in {r for _, r in items}:
            ids = [i for i, r in items if r == reason]
            for row in await self._pool.fetch(self._q["set_running_units"], ids, reason):
                by_id[row["id"]] = Unit.from_record(row)
        # A unit asked twice in one batch is moved once: the first asker gets it.
        out: list[Unit | None] = []
        for unit_id, _ in items:
            out.append(by_id.pop(unit_id, None))
        return out

    async def finish(
        self, unit_id: int, state: str, reason: str, *, release: bool = True
    ) -> tuple[Unit | None, Released | None]:
        """End a unit: terminal state and (with ``release``) its allocation marked released, in one transaction.

        Returns (the unit, or None when it had already ended; the allocation released, if one was).
        Without ``release`` the allocation stays held until ``release_allocation``: the unit has ended but its
        pods are still on their nodes.
        """
        if state not in TERMINAL_STATES:
            raise ValueError(f"{state} is not terminal")
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(self._q["set_state"], unit_id, state, reason, list(ACTIVE_STATES), 0)
            if row is None:
                return None, None
            released = await conn.fetchrow(self._q["release_allocation"], unit_id) if release else None
            return Unit.from_record(row), _released(released)

    async def release_allocation(self, unit_id: int) -> Released | None:
        """Mark a held allocation released; returns it (None when nothing was held)."""
        return _released(await self._pool.fetchrow(self._q["release_allocation"], unit_id))

    async def preempt(self, unit_id: int, reason: str) -> Unit | None:
        """Scheduled/Running -> Preempted (its workload is suspended next; the allocation stays held until
        :meth:`requeue`); None when the unit was in another state."""
        row = await self._pool.fetchrow(self._q["preempt_unit"], unit_id, reason)
        return Unit.from_record(row) if row else None

    async def requeue(self, unit_id: int, reason: str) -> tuple[Unit | None, Released | None]:
        """Preempted -> Queued with its original submit time, its allocation (with its node shares and
        bindings) moved to ``past_allocations``, in one transaction. Returns (the unit, or None when it was
        not Preempted; what Fluxion must cancel)."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(self._q["requeue_unit"], unit_id, reason)
            if row is None:
                return None, None
            released = await conn.fetchrow(self._q["archive_allocation"], unit_id, reason)
            await conn.execute(self._q["drop_allocation"], unit_id)
            return Unit.from_record(row), _released(released)

    async def draining(self) -> list[Unit]:
        """Units that have ended (or were preempted) but still hold their allocation (their pods had not left
        their nodes)."""
        return [Unit.from_record(r) for r in await self._pool.fetch(self._q["draining_units"])]

    async def requeue_unsatisfiable(self, reason: str) -> list[Unit]:
        """Every Unsatisfiable unit back to Queued (after the cluster's capacity changed)."""
        return [Unit.from_record(r) for r in await self._pool.fetch(self._q["requeue_unsatisfiable"], reason)]

    async def record_bindings(
        self, unit_id: int, bindings: Iterable[tuple[str, str, str]], *, started: bool = False
    ) -> None:
        """Record pods bound as (pod, pod uid, node); with ``started`` also mark the unit started
        (batched with other units' bindings)."""
        await self._bindings_batch.submit((unit_id, list(bindings), started))

    async def _bindings_many(self, items: list[tuple[int, list[tuple[str, str, str]], bool]]) -> list[None]:
        rows = [(unit_id, *b) for unit_id, bound, _ in items for b in bound]
        await self._pool.execute(
            self._q["record_bindings"],
            [r[0] for r in rows],
            [r[1] for r in rows],
            [r[2] for r in rows],
            [r[3] for r in rows],
            [unit_id for unit_id, _, started in items if started],
        )
        return [None] * len(items)

    # ---- allocations and bindings -----------------------------------------------------------------------

    async def allocation(self, unit_id: int) -> Allocation | None:
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(self._q["allocation"], unit_id)
            if row is None:
                return None
            nodes = [NodeShare(**dict(r)) for r in await conn.fetch(self._q["allocation_nodes"], unit_id)]
        return Allocation(**dict(row), nodes=nodes)

    async def held_allocations(self) -> list[Allocation]:
        """Allocations not yet released, oldest first (what Fluxion must hold)."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(self._q["held_allocations"])
            shares: dict[int, list[NodeShare]] = {}
            for r in await conn.fetch(self._q["held_allocation_nodes"]):
                d = dict(r)
                shares.setdefault(d.pop("unit_id"), []).append(NodeShare(**d))
        out = []
        for row in rows:
            d = dict(row)
            d.pop("scheduled_at", None)
            out.append(Allocation(**d, nodes=shares.get(d["unit_id"], [])))
        return out

    async def exclusive_units(self, unit_ids: list[int]) -> set[int]:
        """Which of these units asked for whole nodes."""
        rows = await self._pool.fetch(self._q["exclusive_units"], unit_ids)
        return {r["id"] for r in rows}

    async def count_held_in_load(self, load_id: int) -> int:
        """How many allocations are held under Fluxion load ``load_id`` (Fluxion should hold as many)."""
        return int(await self._pool.fetchval(self._q["count_held_in_load"], load_id))

    async def set_allocation_epoch(self, unit_ids: list[int], epoch: int) -> set[int]:
        """Held allocations replayed into Fluxion load ``epoch`` under their ids; returns the units moved (one
        released meanwhile is not)."""
        if not unit_ids:
            return set()
        rows = await self._pool.fetch(self._q["set_allocation_epoch"], unit_ids, epoch)
        return {r["unit_id"] for r in rows}

    async def update_allocation_id(self, unit_id: int, jobid: int, epoch: int) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(self._q["update_allocation_id"], unit_id, jobid, epoch)

    # ---- reservations (one pass only) -------------------------------------------------------------------

    async def reserve(self, unit_id: int, reason: str) -> None:
        """A unit the pass reserved resources for (Fluxion holds the reservation until the pass ends)."""
        await self._pool.execute(self._q["set_state"], unit_id, RESERVED, reason, [QUEUED, RESERVED], 1)

    async def requeue_unreserved(self, keep_reserved: Iterable[int] = ()) -> None:
        """Reserved units not in ``keep_reserved`` (no reservation this pass) go back to Queued."""
        await self._pool.execute(self._q["requeue_unreserved"], list(keep_reserved))

    # ---- coordination -----------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def pass_lock(self) -> AsyncIterator[bool]:
        """Hold the pass lock for the duration of the block; yields False if another pass holds it."""
        async with self._pool.acquire() as conn:
            got = await conn.fetchval(self._q["try_pass_lock"], PASS_LOCK_KEY)
            try:
                yield bool(got)
            finally:
                if got:
                    await _unlock(conn, self._q["pass_unlock"])

    async def listen(self, on_wakeup: Callable[[str], None], *, stop: asyncio.Event) -> None:
        """LISTEN on ``fluxqueue_wakeup`` until ``stop`` is set, reconnecting after a lost connection.

        The caller also runs a periodic pass, so a notification lost while reconnecting costs one period.
        """
        while not stop.is_set():
            conn = None
            try:
                conn = await asyncpg.connect(self._dsn)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(WAKEUP_CHANNEL, lambda _c, _pid, _ch, payload: on_wakeup(payload))
                on_wakeup("listening")  # anything sent while we were away: look once
                stop_task = asyncio.ensure_future(stop.wait())
                lost_task = asyncio.ensure_future(lost.wait())
                try:
                    await asyncio.wait({stop_task, lost_task}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    stop_task.cancel()
                    lost_task.cancel()
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("wakeup listener lost its connection; retrying", error=str(exc))
                await _sleep_or_stop(stop, 1.0)
            finally:
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await conn.close()


async def _unlock(conn: Any, query: str) -> None:
    """Let go of the pass lock. A session PostgreSQL ended meanwhile (a failover, pg_terminate_backend) took
    the lock with it: asyncpg has then handed the connection back to the pool already, and any call on it
    raises InterfaceError ("released back to the pool"), which is not a failure of the pass."""
    try:
        await conn.fetchval(query, PASS_LOCK_KEY)
    except asyncpg.InterfaceError:
        with contextlib.suppress(asyncpg.InterfaceError):
            conn.terminate()  # still ours ("another operation in progress"): end it, and the lock with it
    except (Exception, asyncio.CancelledError):
        with contextlib.suppress(asyncpg.InterfaceError):
            # The pool does not reset sessions: end this one, and the lock with it.
            conn.terminate()
        raise


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
