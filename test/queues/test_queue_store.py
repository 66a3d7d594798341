"""What the tenant queues read and write in PostgreSQL: usage of holding units, pending demand, the mirror of
the Queue objects and the views built on it."""

from __future__ import annotations

import pytest

from fluxqueue.queue.store import NodeShare, QueueStore, UnitSubmission

GI = 2**30


def submission(
    name: str, namespace: str, cpus: int, count: int = 1, queue: str = "default"
) -> UnitSubmission:
    return UnitSubmission(
        namespace=namespace,
        name=f"{name}-job",
        kind="Job",
        object_name=name,
        owner_uid=f"uid-{namespace}-{name}",
        size=count,
        duration_s=60,
        pod_sets=[{"name": "main", "count": count, "cpu_millis": cpus * 1000, "memory_bytes": GI, "gpus": 0}],
        queue=queue,
    )


@pytest.fixture
async def store(migrated_dsn):
    s = await QueueStore.open(migrated_dsn)
    yield s
    await s.close()


async def test_usage_counts_pod_set_requests_times_counts_of_units_holding_allocations(store):
    held, _ = await store.submit(submission("a", "team-a", cpus=2, count=3))
    await store.submit(submission("b", "team-a", cpus=4))
    await store.submit(submission("c", "team-b", cpus=1, queue="team-a"))
    await store.schedule(held.id, jobid=1, epoch=1, nodes=[NodeShare("n1", 6, 3 * GI, 0, 3)], reason="placed")
    usage = await store.queue_usage()
    assert usage == [
        {
            "namespace": "team-a",
            "queue": "default",
            "units": 1,
            "cpu_millis": 6000,
            "memory_bytes": 3 * GI,
            "gpus": 0,
        }
    ]
    pending = {(r["namespace"], r["queue"]): r["cpu_millis"] for r in await store.queue_pending()}
    assert pending == {("team-a", "default"): 4000, ("team-b", "team-a"): 1000}


async def test_the_queue_mirror_feeds_the_usage_and_fair_share_views(store):
    held, _ = await store.submit(submission("a", "team-a", cpus=2, count=3))
    await store.submit(submission("c", "elsewhere", cpus=1, queue="team-b"))
    await store.schedule(held.id, jobid=1, epoch=1, nodes=[NodeShare("n1", 6, 3 * GI, 0, 3)], reason="placed")
    queues = [
        {
            "name": "team-a",
            "namespaces": ["team-a"],
            "quota": {"cpu": 4000},
            "limit": {},
            "weight": 1,
            "share": 0.1,
        },
        {
            "name": "team-b",
            "namespaces": [],
            "quota": {"cpu": 8000},
            "limit": {"cpu": 8000},
            "weight": 2,
            "share": 0,
        },
        {"name": "gone", "namespaces": [], "quota": {}, "limit": {}, "weight": 1, "share": 0},
    ]
    await store.mirror_queues(queues)
    await store.mirror_queues(queues[:2])
    rows = {r["queue"]: r for r in await store.view("queue_usage")}
    assert set(rows) == {"team-a", "team-b"}
    assert (
        rows["team-a"]["running"],
        float(rows["team-a"]["cpus_used"]),
        float(rows["team-a"]["cpus_quota"]),
    ) == (
        1,
        6.0,
        4.0,
    )
    assert (rows["team-b"]["pending"], float(rows["team-b"]["cpus_pending"])) == (1, 1.0)
    assert [r["queue"] for r in await store.view("fair_share")] == ["team-b", "team-a"]


async def test_the_queue_command_groups_pending_units_by_tenant_queue(store, migrated_dsn):
    import asyncio
    import subprocess
    import sys

    await store.submit(submission("a", "team-a", cpus=2))
    await store.submit(submission("b", "team-b", cpus=1))
    await store.submit(submission("c", "elsewhere", cpus=1, queue="team-a"))
    queues = [
        {
            "name": "team-a",
            "namespaces": ["team-a"],
            "quota": {"cpu": 4000},
            "limit": {},
            "weight": 1,
            "share": 0,
        },
        {"name": "team-b", "namespaces": ["team-b"], "quota": {}, "limit": {}, "weight": 1, "share": 0},
    ]
    await store.mirror_queues(queues)
    out = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "fluxqueue", "queue", "--dsn", migrated_dsn],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    blocks = out.stdout.strip().split("\n\n")
    assert (
        blocks[0].splitlines()[0]
        == "queue team-a: 2 pending, 0 running, 0.000 CPUs used of 4.000 guaranteed, share 0.0000"
    )
    assert [line.split()[2] for line in blocks[0].splitlines()[2:]] == ["a-job", "c-job"]
    assert blocks[1].splitlines()[0].startswith("queue team-b: 1 pending")


async def test_a_preemption_is_recorded_before_eviction_and_found_again_until_marked(store):
    waiting, _ = await store.submit(submission("w", "team-a", cpus=4))
    victim, _ = await store.submit(submission("v", "team-b", cpus=4))
    await store.schedule(victim.id, jobid=7, epoch=1, nodes=[NodeShare("n1", 4, GI, 0, 1)], reason="placed")
    [holder] = await store.holders()
    assert (holder["id"], holder["fluxion_jobid"], holder["shares"], holder["preempted"]) == (
        victim.id,
        7,
        [["n1", 4, GI, 0]],
        False,
    )
    ids = await store.record_preemptions(
        waiting.id, [victim.id], "reclaim", "preempted to make room for team-a/w-job"
    )
    assert await store.preempting() == {waiting.id}  # its victim still holds
    assert [r["victim_id"] for r in await store.unevicted_preemptions()] == [
        victim.id
    ]  # a new leader redoes it
    await store.mark_evicted(ids)
    assert await store.unevicted_preemptions() == []
    assert (await store.holders())[0]["preempted"] is True
    await store.finish(victim.id, "Cancelled", "preempted")
    assert await store.preempting() == set()
    [row] = await store.view("preemption_history")
    assert (row["preemptor"], row["victim"], row["cause"]) == ("team-a/w-job", "team-b/v-job", "reclaim")
