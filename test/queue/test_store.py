"""The queue store against a real PostgreSQL: ordering, idempotence, transitions with history, views."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import asyncpg
import pytest

from fluxqueue.queue.store import (
    CANCELLED,
    QUEUED,
    RESERVED,
    RUNNING,
    SCHEDULED,
    SUCCEEDED,
    WAITING,
    NodeShare,
    QueueStore,
    UnitSubmission,
)


def submission(
    name: str,
    *,
    priority: int = 0,
    size: int = 1,
    kind: str = "Job",
    uid: str | None = None,
    group: str | None = None,
) -> UnitSubmission:
    return UnitSubmission(
        namespace="default",
        name=f"{name}-{kind.lower()}",
        kind=kind,
        object_name=name,
        owner_uid=uid or f"uid-{name}",
        size=size,
        duration_s=60,
        pod_sets=[{"name": "main", "count": size, "cpu_millis": 1000, "memory_bytes": 2**30, "gpus": 0}],
        priority=priority,
        group_name=group,
    )


@pytest.fixture
async def store(migrated_dsn):
    s = await QueueStore.open(migrated_dsn)
    yield s
    await s.close()


async def test_pending_units_come_out_by_priority_then_submission_order(store):
    for name, prio in [("a", 0), ("b", 10), ("c", 0), ("d", 10)]:
        await store.submit(submission(name, priority=prio))
    assert [u.object_name for u in await store.pending()] == ["b", "d", "a", "c"]
    view = await store.view("queue")
    assert [(r["position"], r["name"]) for r in view] == [
        (1, "b-job"),
        (2, "d-job"),
        (3, "a-job"),
        (4, "c-job"),
    ]


async def test_submitting_the_same_object_twice_queues_it_once(store):
    first, created1 = await store.submit(submission("a"))
    again, created2 = await store.submit(submission("a"))
    assert created1 and not created2
    assert again.id == first.id
    assert len(await store.pending()) == 1


async def test_submissions_arriving_together_are_queued_in_order_each_once(store):
    await store.submit(submission("old"))
    subs = [
        submission("a"),
        submission("b", priority=5),
        submission("a"),  # the same object twice in one batch
        submission("old"),  # already queued before the batch
        submission("g", kind="PodGroup", uid="group:default/g", group="g", size=2),
        submission("c"),
    ]
    results = await asyncio.gather(*(store.submit(s) for s in subs))
    assert [created for _, created in results] == [True, True, False, False, True, True]
    assert results[0][0].id == results[2][0].id
    assert results[3][0].object_name == "old"
    assert [u.object_name for u in await store.pending()] == ["b", "old", "a", "g", "c"]
    assert store._submit_batch.batches < len(subs)  # written together, not one statement each


async def test_every_transition_leaves_a_history_row_and_terminal_states_release_the_allocation(store):
    unit, _ = await store.submit(submission("a", size=2))
    scheduled = await store.schedule(
        unit.id,
        jobid=7,
        epoch=1,
        reason="placed",
        nodes=[NodeShare("n1", 2, 2**31, 0, 2)],
    )
    assert scheduled.state == SCHEDULED and (await store.allocation(unit.id)).fluxion_jobid == 7
    assert (await store.view("nodes"))[0]["cores"] == 2
    assert await store.transition(unit.id, RUNNING, "pods running", from_states=[SCHEDULED])
    done, released = await store.finish(unit.id, SUCCEEDED, "Job completed")
    assert done.state == SUCCEEDED and done.finished_at is not None
    assert (released.fluxion_jobid, released.epoch) == (7, 1)  # the id means something in that load only
    # Finishing twice does nothing and returns no job id to cancel again.
    assert await store.finish(unit.id, CANCELLED, "deleted") == (None, None)
    assert [(h.from_state, h.to_state) for h in await store.history(unit.id)] == [
        (None, QUEUED),
        (QUEUED, SCHEDULED),
        (SCHEDULED, RUNNING),
        (RUNNING, SUCCEEDED),
    ]
    assert await store.held_allocations() == []
    assert await store.view("nodes") == []


async def test_waiting_reasons_are_written_together_and_spare_units_that_moved_on(store):
    a, _ = await store.submit(submission("a"))
    b, _ = await store.submit(submission("b"))
    await store.schedule(b.id, jobid=3, epoch=1, nodes=[NodeShare("n1", 1, 0, 0, 1)], reason="placed")
    await store.set_waiting_reasons([(a.id, "waiting for 1 core", True), (b.id, "waiting for 1 core", True)])
    await store.set_waiting_reasons([(a.id, "waiting for 1 core", True)])  # unchanged: nothing counted
    a2, b2 = await store.get(a.id), await store.get(b.id)
    assert (a2.reason, a2.attempts) == ("waiting for 1 core", a.attempts + 1)
    assert (b2.state, b2.reason) == (SCHEDULED, "placed")


async def test_a_unit_is_scheduled_once_even_when_two_passes_race(store):
    unit, _ = await store.submit(submission("a"))
    results = await asyncio.gather(
        *(
            store.schedule(unit.id, jobid=j, epoch=1, reason="", nodes=[NodeShare("n1", 1, 0, 0, 1)])
            for j in (1, 2)
        )
    )
    assert sum(r is not None for r in results) == 1
    held = await store.held_allocations()
    assert len(held) == 1 and held[0].nodes == [NodeShare("n1", 1, 0, 0, 1)]


async def test_placements_written_together_each_get_their_unit_and_shares(store):
    units = [(await store.submit(submission(f"u{i}")))[0] for i in range(5)]
    gone = units[4]
    assert await store.transition(gone.id, CANCELLED, "deleted", from_states=[QUEUED])
    results = await asyncio.gather(
        *(
            store.schedule(
                u.id,
                jobid=100 + n,
                epoch=3,
                reason=f"Scheduled on n{n}",
                nodes=[NodeShare(f"n{n}", 2, 2**30, 0, 1), NodeShare(f"m{n}", 1, 0, 1, 1)],
            )
            for n, u in enumerate(units)
        )
    )
    assert [r.id if r else None for r in results] == [u.id for u in units[:4]] + [None]
    assert all(r.state == SCHEDULED for r in results[:4])
    held = {a.unit_id: a for a in await store.held_allocations()}
    assert set(held) == {u.id for u in units[:4]}
    for n, u in enumerate(units[:4]):
        a = held[u.id]
        assert (a.fluxion_jobid, a.epoch) == (100 + n, 3)
        assert a.nodes == [NodeShare(f"m{n}", 1, 0, 1, 1), NodeShare(f"n{n}", 2, 2**30, 0, 1)]
    # Starts and bindings of several units are batched too.
    started = await asyncio.gather(
        *(store.start_running(u.id) for u in units[:2]), store.start_running(gone.id)
    )
    assert [s.state if s else None for s in started] == [RUNNING, RUNNING, None]
    await asyncio.gather(
        store.record_bindings(units[0].id, [("p0", "uid0", "n0")], started=True),
        store.record_bindings(units[1].id, [("p1", "uid1", "n1"), ("p2", "uid2", "m1")], started=False),
    )
    assert (await store.get(units[0].id)).started and not (await store.get(units[1].id)).started
    nodes = {r["node"]: r["pods"] for r in await store.view("nodes")}
    assert nodes["n0"] == 1 and nodes["n1"] == 1 and nodes["m1"] == 1


async def test_only_one_pass_holds_the_pass_lock(store):
    async with store.pass_lock() as first:
        async with store.pass_lock() as second:
            assert first and not second
    async with store.pass_lock() as again:
        assert again


async def test_a_pod_group_waits_until_its_last_member_joins(store):
    sub = submission("g", kind="PodGroup", size=3, uid="group:default/g", group="g")
    for i in range(2):
        unit, count = await store.join_group(sub, f"p{i}", f"uid{i}")
        assert unit.state == WAITING and count == i + 1
    unit, count = await store.join_group(sub, "p1", "uid1")  # a repeated event
    assert count == 2 and unit.state == WAITING
    assert unit.reason == "waiting for group members: 2 of 3 present"
    unit, count = await store.join_group(sub, "p2", "uid2")
    assert unit.state == QUEUED and count == 3
    assert [p for p, _ in await store.group_members(unit.id)] == ["p0", "p1", "p2"]


async def test_members_joining_at_once_queue_their_group_exactly_once(store):
    sub = submission("h", kind="PodGroup", size=8, uid="group:default/h", group="h")
    joined = await asyncio.gather(*(store.join_group(sub, f"p{i}", f"uid{i}") for i in range(8)))
    assert sorted(count for _, count in joined) == list(range(1, 9))
    assert len({unit.id for unit, _ in joined}) == 1
    unit = await store.get(joined[0][0].id)
    assert unit.state == QUEUED and unit.reason == "all 8 members present"
    assert [(h.from_state, h.to_state) for h in await store.history(unit.id)] == [
        (None, WAITING),
        (WAITING, QUEUED),
    ]
    assert store._join_batch.batches < 8  # joined by one statement, not one each


async def test_members_joining_through_two_controllers_queue_their_group_exactly_once(store, migrated_dsn):
    other = await QueueStore.open(migrated_dsn)  # its own connections: joins in concurrent transactions
    try:
        sub = submission("k", kind="PodGroup", size=8, uid="group:default/k", group="k")
        joined = await asyncio.gather(
            *(s.join_group(sub, f"p{i}", f"uid{i}") for i, s in enumerate([store, other] * 4))
        )
    finally:
        await other.close()
    assert sorted(count for _, count in joined) == list(range(1, 9))
    unit = await store.get(joined[0][0].id)
    assert unit.state == QUEUED
    assert [h.to_state for h in await store.history(unit.id)] == [WAITING, QUEUED]


async def test_units_not_reserved_again_return_to_queued(store):
    a, _ = await store.submit(submission("a"))
    b, _ = await store.submit(submission("b"))
    await store.reserve(a.id, "reserved to start at 10:00:00 UTC on n1")
    await store.reserve(b.id, "reserved to start at 10:05:00 UTC on n2")
    assert {u.state for u in await store.pending()} == {RESERVED}
    await store.requeue_unreserved(keep_reserved=[a.id])
    assert (await store.get(a.id)).state == RESERVED
    assert (await store.get(b.id)).state == QUEUED


async def test_a_submission_wakes_a_listener(store):
    woke: asyncio.Queue[str] = asyncio.Queue()
    stop = asyncio.Event()
    task = asyncio.create_task(store.listen(woke.put_nowait, stop=stop))
    assert await asyncio.wait_for(woke.get(), 5) == "listening"
    unit, _ = await store.submit(submission("a"))
    assert await asyncio.wait_for(woke.get(), 5) == f"Queued {unit.id}"
    stop.set()
    await asyncio.wait_for(task, 5)


async def test_history_is_append_only_and_views_are_readable_in_sql(store, migrated_dsn):
    unit, _ = await store.submit(submission("a"))
    conn = await asyncpg.connect(migrated_dsn)
    try:
        with pytest.raises(asyncpg.RaiseError):
            await conn.execute("UPDATE fluxqueue.state_changes SET to_state = 'Failed'")
        rows = await conn.fetch("SELECT name, to_state FROM fluxqueue.history")
        assert [tuple(r) for r in rows] == [("a-job", QUEUED)]
        for view in ("queue", "running", "nodes"):
            await conn.fetch(f"SELECT * FROM fluxqueue.{view}")
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("UPDATE fluxqueue.units SET state = 'Lost' WHERE id = $1", unit.id)
    finally:
        await conn.close()


async def test_queue_command_prints_the_queue_as_a_table(store, migrated_dsn):
    import subprocess
    import sys

    await store.submit(submission("a", priority=5))
    await store.submit(submission("b"))
    out = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "fluxqueue", "queue", "--dsn", migrated_dsn],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:3] == ["POSITION", "NAMESPACE", "NAME"]
    assert [line.split()[2] for line in lines[1:]] == ["a-job", "b-job"]


def test_queue_command_without_a_database_says_so_in_one_line():
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "fluxqueue", "queue", "--dsn", "postgresql://nobody@127.0.0.1:1/none"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert out.stderr.startswith("fluxqueue: error: cannot connect to the database")
    assert len(out.stderr.strip().splitlines()) == 1


async def test_unsatisfiable_units_can_be_queued_again_and_states_are_counted(store):
    a, _ = await store.submit(submission("a"))
    b, _ = await store.submit(submission("b"))
    await store.finish(a.id, "Unsatisfiable", "asks 96 cores per pod, largest node has 64")
    assert await store.state_counts() == {"Queued": 1}
    again = await store.requeue_unsatisfiable("the cluster changed")
    assert [u.id for u in again] == [a.id]
    assert again[0].state == "Queued" and again[0].finished_at is None
    assert await store.state_counts() == {"Queued": 2}
    assert [(h.from_state, h.to_state) for h in await store.history(a.id)][-1] == ("Unsatisfiable", "Queued")
    assert b.id != a.id


async def test_an_ended_unit_can_keep_its_allocation_until_its_pods_are_gone(store):
    unit, _ = await store.submit(submission("a"))
    await store.schedule(unit.id, jobid=9, epoch=1, reason="", nodes=[NodeShare("n1", 1, 0, 0, 1)])
    done, released = await store.finish(unit.id, "Failed", "Job failed", release=False)
    assert done.state == "Failed" and released is None
    assert [u.id for u in await store.draining()] == [unit.id]
    assert [a.unit_id for a in await store.held_allocations()] == [unit.id]  # replayed after a restart
    assert (await store.release_allocation(unit.id)).fluxion_jobid == 9
    assert await store.draining() == [] and await store.held_allocations() == []
    assert await store.release_allocation(unit.id) is None


async def test_requeueing_unsatisfiable_units_skips_a_group_whose_name_is_live_again(store):
    # An unsatisfiable group "g", then a new live group of the same name: requeueing used to raise
    # UniqueViolationError (units_live_group) and leave every unsatisfiable unit unjudged for good.
    old = await store.submit(submission("g", kind="PodGroup", uid="group:default/g", group="g", size=2))
    await store.finish(old[0].id, "Unsatisfiable", "asks too much")
    live, _ = await store.join_group(
        submission("g", kind="PodGroup", uid="group:default/g", group="g", size=2), "g-0", "uid-g-0"
    )
    job, _ = await store.submit(submission("j"))
    await store.finish(job.id, "Unsatisfiable", "asks too much")
    again = await store.requeue_unsatisfiable("the cluster changed")
    assert [u.id for u in again] == [job.id]
    assert (await store.get(old[0].id)).state == "Unsatisfiable"
    assert (await store.get(live.id)).state == "Waiting"


async def test_a_group_adds_each_member_to_the_pod_set_of_its_shape_in_any_order(store):
    def member(cpu: int, name: str):
        sub = submission("mpi", kind="PodGroup", uid="group:default/mpi", group="mpi", size=3)
        one = {"name": name, "count": 1, "cpu_millis": cpu, "memory_bytes": 0, "gpus": 0}
        return replace(sub, pod_sets=[one])

    await store.join_group(member(1000, "mpi-worker"), "mpi-worker-0", "u0")
    await store.join_group(member(1000, "mpi-worker"), "mpi-worker-1", "u1")
    await store.join_group(member(1000, "mpi-worker"), "mpi-worker-1", "u1")  # a repeated event
    unit, count = await store.join_group(member(8000, "mpi-launcher"), "mpi-launcher", "u2")
    assert count == 3 and unit.state == "Queued"
    assert [(s["name"], s["count"], s["cpu_millis"]) for s in unit.pod_sets] == [
        ("mpi-worker", 2, 1000),
        ("mpi-launcher", 1, 8000),
    ]
    rows = await store.view("queue")
    assert rows[0]["pod_sets"] == "mpi-worker 2 x 1 CPU, mpi-launcher 1 x 8 CPU"


async def test_a_pass_whose_lock_connection_is_cut_ends_cleanly_and_the_lock_is_free_again(store):
    """PostgreSQL ends the session holding the pass lock (a failover, pg_terminate_backend): the lock went with
    the session, so leaving the pass must not fail on the lost connection, and the next pass takes the lock."""
    conn = await asyncpg.connect(store.dsn)
    try:
        async with store.pass_lock() as mine:
            assert mine
            holder = await conn.fetchval(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted LIMIT 1"
            )
            assert await conn.fetchval("SELECT pg_terminate_backend($1)", holder)
            await asyncio.sleep(0.2)  # the client sees the connection closed
        async with store.pass_lock() as again:
            assert again
    finally:
        await conn.close()
