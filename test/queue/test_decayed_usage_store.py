"""The fair share's memory of past usage in PostgreSQL (migration 0011): written with the queue mirror, read back
by the next leader and decayed over the wall-clock time in between, so a restart or failover forgets nothing."""

from __future__ import annotations

from types import SimpleNamespace

import asyncpg
import pytest

from fluxqueue.controller.queueing import QueueGate
from fluxqueue.controller.settings import ControllerSettings
from fluxqueue.queue.store import NodeShare, QueueStore, UnitSubmission
from fluxqueue.queues.share import CPU, GPU, MEMORY

GI = 2**30
HOUR = 3600.0


def queue_row(name: str, **extra) -> dict:
    return {"name": name, "namespaces": [name], "quota": {}, "limit": {}, "weight": 1, "share": 0, **extra}


@pytest.fixture
async def store(migrated_dsn):
    s = await QueueStore.open(migrated_dsn)
    yield s
    await s.close()


async def test_the_decayed_usage_is_stored_with_the_mirror_and_read_back_with_its_age(store, migrated_dsn):
    mean = {CPU: 12000.5, MEMORY: 8.0 * GI, GPU: 0.25}
    await store.mirror_queues([queue_row("busy", decayed=mean, decayed_age=30.0), queue_row("idle")])
    stored = await store.decayed_usage()
    assert set(stored) == {"busy"}  # idle was never computed: nothing to read back
    got, age = stored["busy"]
    assert got == mean
    assert 30.0 <= age < 40.0
    # A mirror written without it (the Queue objects only) keeps what is stored.
    await store.mirror_queues([queue_row("busy", share=0.5), queue_row("idle")])
    assert (await store.decayed_usage())["busy"][0] == mean
    # A person sees it in psql, readable.
    rows = {r["queue"]: r for r in await store.view("fair_share")}
    assert (float(rows["busy"]["cpus_decayed"]), rows["busy"]["memory_decayed"]) == (12.001, "8192 MB")
    assert float(rows["busy"]["gpus_decayed"]) == 0.25 and rows["busy"]["decayed_at"] is not None
    assert rows["idle"]["cpus_decayed"] is None and rows["idle"]["decayed_at"] is None
    conn = await asyncpg.connect(migrated_dsn)
    try:
        comment = await conn.fetchval(
            "SELECT col_description(attrelid, attnum) FROM pg_attribute"
            " WHERE attrelid = 'fluxqueue.queues'::regclass AND attname = 'decayed_at'"
        )
    finally:
        await conn.close()
    assert "wall-clock" in comment
    # A queue no longer declared goes, its memory with it.
    await store.mirror_queues([queue_row("idle")])
    assert await store.decayed_usage() == {}


class Informer:
    def __init__(self, objects: list[dict]):
        self.cache = {o["metadata"]["name"]: o for o in objects}

    def items(self) -> list[dict]:
        return list(self.cache.values())


class Client:
    async def patch(self, *_args, **_kwargs) -> dict:
        return {}


def leader(store: QueueStore, half_life: float = HOUR) -> QueueGate:
    """What one leader term has: a fresh QueueGate over the real store."""
    objects = [
        {"metadata": {"name": n, "resourceVersion": "1"}, "spec": {"namespaces": [n]}}
        for n in ("busy", "idle")
    ]
    ctx = SimpleNamespace(
        settings=ControllerSettings(dsn="x", queue_half_life=half_life),
        store=store,
        queues=Informer(objects),
        client=Client(),
        metrics=None,
    )
    return QueueGate(ctx)


GRAPH = SimpleNamespace(nodes={f"n{i}": SimpleNamespace(cores=16, memory=64 * GI, gpus=0) for i in range(2)})


async def test_a_new_leader_continues_from_the_decayed_usage_the_last_one_wrote(store, migrated_dsn):
    held, _ = await store.submit(
        UnitSubmission(
            namespace="busy",
            name="burst-job",
            kind="Job",
            object_name="burst",
            owner_uid="uid-burst",
            size=1,
            duration_s=60,
            pod_sets=[{"name": "main", "count": 1, "cpu_millis": 16000, "memory_bytes": GI, "gpus": 0}],
        )
    )
    await store.schedule(held.id, jobid=1, epoch=1, nodes=[NodeShare("n0", 16, GI, 0, 1)], reason="placed")
    first = leader(store)
    await first.prepare([], None, GRAPH)
    assert first.decayed["busy"].mean[CPU] == 16000.0  # its first observation: what it holds
    first.decayed["busy"].mean[CPU] = 8000.0  # as if it had watched busy hold 16 CPUs for a half-life
    await first.after_pass()  # the Queue status and the mirror, and the memory with them
    conn = await asyncpg.connect(migrated_dsn)
    try:
        await conn.execute("UPDATE fluxqueue.allocations SET released_at = now()")  # the burst ended
        # The next leader starts one half-life (wall-clock) after that was computed.
        await conn.execute("UPDATE fluxqueue.queues SET decayed_at = decayed_at - interval '1 hour'")
    finally:
        await conn.close()

    second = leader(store)
    await second.prepare([], None, GRAPH)
    assert second.decayed["busy"].mean[CPU] == pytest.approx(4000.0, rel=1e-3)  # halved over the downtime
    assert second.decayed["idle"].mean[CPU] == 0.0
    assert second.last.share("busy") > second.last.share("idle") == 0.0
    # without the stored memory the two would be alike (the restart would have forgotten the burst)
    forgetful = leader(store)
    forgetful._restored = True
    await forgetful.prepare([], None, GRAPH)
    assert forgetful.last.share("busy") == forgetful.last.share("idle") == 0.0
