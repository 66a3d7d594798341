"""Preempt and requeue in the store, against a real PostgreSQL: Running -> Preempted (allocation still held)
-> Queued (allocation, node shares and bindings archived in one transaction), placed again afresh."""

from __future__ import annotations

import asyncpg
import pytest

from fluxqueue.queue.store import PREEMPTED, QUEUED, RUNNING, SUCCEEDED, NodeShare, QueueStore, UnitSubmission


@pytest.fixture
async def store(migrated_dsn):
    s = await QueueStore.open(migrated_dsn)
    yield s
    await s.close()


def submission(name: str) -> UnitSubmission:
    return UnitSubmission(
        namespace="team-b",
        name=f"{name}-job",
        kind="Job",
        object_name=name,
        owner_uid=f"uid-{name}",
        size=2,
        duration_s=60,
    )


async def place(store: QueueStore, unit_id: int, jobid: int, node: str) -> None:
    placed = await store.schedule(
        unit_id, jobid=jobid, epoch=1, reason="", nodes=[NodeShare(node, 2, 0, 0, 2)]
    )
    assert placed is not None
    await store.record_bindings(
        unit_id, [("p0", f"uid-p0-{jobid}", node), ("p1", f"uid-p1-{jobid}", node)], started=True
    )
    assert await store.start_running(unit_id) is not None


async def test_a_preempted_unit_holds_until_requeued_then_is_placed_again_afresh(store):
    unit, _ = await store.submit(submission("b3"))
    await place(store, unit.id, jobid=7, node="n1")
    preempted = await store.preempt(unit.id, "preempted to make room for team-a/a0-job")
    assert preempted is not None and preempted.state == PREEMPTED and not preempted.started
    assert await store.preempt(unit.id, "again") is None  # only from Scheduled/Running
    # Still held (its pods are stopping): Fluxion keeps it, and a restarted controller watches it drain.
    assert [a.unit_id for a in await store.held_allocations()] == [unit.id]
    assert [u.id for u in await store.draining()] == [unit.id]
    assert await store.pending() == []

    requeued, released = await store.requeue(unit.id, "requeued after it was preempted")
    assert requeued is not None and requeued.state == QUEUED and requeued.requeues == 1
    assert requeued.submitted_at == unit.submitted_at and requeued.scheduled_at is None
    assert released is not None and (released.fluxion_jobid, released.epoch) == (7, 1)
    assert await store.requeue(unit.id, "twice") == (None, None)
    assert await store.held_allocations() == [] and await store.allocation(unit.id) is None
    assert [u.id for u in await store.pending()] == [unit.id]

    # Placed again: a new allocation (no conflict with the old one), bindings of the new pods only
    await place(store, unit.id, jobid=9, node="n2")
    alloc = await store.allocation(unit.id)
    assert alloc is not None and alloc.fluxion_jobid == 9 and alloc.node_names == ["n2"]
    shown = await store.view("runs")  # `fluxqueue queue runs`
    assert [(r["name"], r["run"], r["nodes"]) for r in shown] == [("b3-job", 1, "n1"), ("b3-job", 2, "n2")]
    conn = await asyncpg.connect(store.dsn)
    try:
        past = await conn.fetch("SELECT * FROM fluxqueue.past_allocations WHERE unit_id = $1", unit.id)
        assert len(past) == 1 and past[0]["fluxion_jobid"] == 7 and past[0]["reason"].startswith("requeued")
        assert '"node": "n1"' in past[0]["nodes"] and "uid-p0-7" in past[0]["bindings"]
        bound = await conn.fetch("SELECT pod_uid FROM fluxqueue.pod_bindings WHERE unit_id = $1", unit.id)
        assert sorted(r["pod_uid"] for r in bound) == ["uid-p0-9", "uid-p1-9"]
        runs = await conn.fetch("SELECT run, nodes, reason FROM fluxqueue.runs WHERE unit_id = $1", unit.id)
        assert [(r["run"], r["nodes"], r["reason"]) for r in runs] == [
            (1, "n1", "requeued after it was preempted"),
            (2, "n2", "holding"),
        ]
        moves = await conn.fetch(
            "SELECT from_state, to_state FROM fluxqueue.state_changes WHERE unit_id = $1 ORDER BY id", unit.id
        )
        assert [(m["from_state"], m["to_state"]) for m in moves] == [
            (None, "Queued"),
            ("Queued", "Scheduled"),
            ("Scheduled", "Running"),
            ("Running", "Preempted"),
            ("Preempted", "Queued"),
            ("Queued", "Scheduled"),
            ("Scheduled", "Running"),
        ]
    finally:
        await conn.close()


async def test_a_unit_ended_while_preempted_is_not_requeued_and_gives_its_allocation_back(store):
    unit, _ = await store.submit(submission("b2"))
    await place(store, unit.id, jobid=3, node="n1")
    assert await store.preempt(unit.id, "preempted") is not None
    done, released = await store.finish(unit.id, SUCCEEDED, "Job deleted", release=True)
    assert done is not None and released is not None
    assert await store.requeue(unit.id, "too late") == (None, None)
    assert await store.held_allocations() == []


async def test_a_requeued_unit_placed_again_is_a_candidate_again_and_its_old_preemptor_no_longer_waits(store):
    victim, _ = await store.submit(submission("b1"))
    preemptor, _ = await store.submit(submission("a0"))
    await place(store, victim.id, jobid=1, node="n1")
    await store.record_preemptions(preemptor.id, [victim.id], "reclaim", "preempted to make room")
    holders = {h["id"]: h for h in await store.holders()}
    assert holders[victim.id]["preempted"] and await store.preempting() == {preemptor.id}
    assert await store.preempt(victim.id, "preempted to make room") is not None
    assert await store.preempting() == {preemptor.id}  # its room is not free until the victim's pods are gone
    await store.requeue(victim.id, "requeued")
    assert await store.preempting() == set()
    await place(store, victim.id, jobid=2, node="n2")
    holders = {h["id"]: h for h in await store.holders()}
    assert not holders[victim.id]["preempted"] and holders[victim.id]["state"] == RUNNING
    assert await store.preempting() == set()
