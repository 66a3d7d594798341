"""Held units in the store against a real PostgreSQL: held at submission, never pending, released with their
submit time, their terms durable, pod groups held once complete, the views for people."""

from __future__ import annotations

from dataclasses import replace

import pytest

from fluxqueue.dependencies.spec import parse_dependency
from fluxqueue.queue.store import CANCELLED, HELD, QUEUED, WAITING, QueueStore, UnitSubmission


def submission(name: str, dependency: str | None = None, *, kind: str = "Job", group: str | None = None):
    dep = parse_dependency(dependency, own_name=name) if dependency else None
    return UnitSubmission(
        namespace="default",
        name=f"{name}-{'group' if kind == 'PodGroup' else kind.lower()}",
        kind=kind,
        object_name=name,
        owner_uid=f"group:default/{name}" if kind == "PodGroup" else f"uid-{name}",
        size=2 if kind == "PodGroup" else 1,
        duration_s=60,
        pod_sets=[{"name": "main", "count": 1, "cpu_millis": 1000, "memory_bytes": 2**30, "gpus": 0}],
        group_name=group,
        dependency=dep.text if dep else None,
        dependency_terms=tuple(dep.rows()) if dep else (),
    )


@pytest.fixture
async def store(migrated_dsn):
    s = await QueueStore.open(migrated_dsn)
    yield s
    await s.close()


async def test_a_unit_with_a_dependency_starts_held_with_its_terms_and_is_never_pending(store):
    unit, created = await store.submit(submission("train", "afterok:prep:fetch,after:warm+2"))
    assert created and unit.state == HELD and unit.dependency == "afterok:prep:fetch,after:warm+2"
    assert await store.pending() == []
    [(held, terms)] = await store.held()
    assert held.id == unit.id
    assert terms == [
        {"condition": "afterok", "target": "prep", "delay_s": 0, "joined": "all"},
        {"condition": "afterok", "target": "fetch", "delay_s": 0, "joined": "all"},
        {"condition": "after", "target": "warm", "delay_s": 120, "joined": "all"},
    ]
    again, created = await store.submit(submission("train", "afterok:prep:fetch,after:warm+2"))
    assert not created and again.id == unit.id
    assert len((await store.held())[0][1]) == 3  # terms written once


async def test_a_released_unit_takes_its_place_by_submit_time(store):
    held, _ = await store.submit(submission("early", "afterany:x"))
    await store.submit(submission("later"))
    [released] = await store.release_held([(held.id, "dependency satisfied: default/x succeeded")])
    assert released.state == QUEUED and released.submitted_at == held.submitted_at
    assert released.reason == "dependency satisfied: default/x succeeded"
    assert [u.object_name for u in await store.pending()] == ["early", "later"]
    assert await store.release_held([(held.id, "again")]) == []  # only from Held
    history = [(h.from_state, h.to_state) for h in await store.history(held.id)]
    assert history == [(None, HELD), (HELD, QUEUED)]


async def test_held_reasons_are_written_only_when_they_change(store):
    held, _ = await store.submit(submission("b", "afterok:a"))
    [changed] = await store.set_held_reasons([(held.id, "waiting for default/a to succeed")])
    assert changed.reason == "waiting for default/a to succeed"
    assert await store.set_held_reasons([(held.id, "waiting for default/a to succeed")]) == []


async def test_a_held_unit_can_be_ended(store):
    held, _ = await store.submit(submission("b", "afterok:a"))
    done, released = await store.finish(held.id, CANCELLED, "DependencyNeverSatisfied: default/a failed")
    assert done.state == CANCELLED and released is None
    assert await store.held() == []


async def test_a_pod_group_with_a_dependency_is_held_once_complete_and_stays_its_names_live_group(store):
    sub = submission("gang", "afterok:prep", kind="PodGroup", group="gang")
    unit, members = await store.join_group(sub, "gang-0", "uid-0")
    assert unit.state == WAITING and members == 1 and unit.dependency == "afterok:prep"
    unit, members = await store.join_group(sub, "gang-1", "uid-1")
    assert unit.state == HELD and members == 2
    [(held, terms)] = await store.held()
    assert held.id == unit.id and [t["target"] for t in terms] == ["prep"]
    assert (await store.live_group("default", "gang")).id == unit.id
    again, members = await store.join_group(sub, "gang-1", "uid-1")  # a repeated join changes nothing
    assert again.id == unit.id and again.state == HELD and members == 2


async def test_a_pod_group_without_a_dependency_is_queued_as_before(store):
    sub = submission("plain", kind="PodGroup", group="plain")
    await store.join_group(sub, "p-0", "u0")
    unit, _ = await store.join_group(sub, "p-1", "u1")
    assert unit.state == QUEUED and unit.dependency is None
    assert await store.held() == []


async def test_units_are_found_by_workload_name_and_singletons_by_theirs(store):
    prep, _ = await store.submit(submission("prep"))
    one, _ = await store.submit(
        replace(
            submission("nightly-a", "singleton"),
            dependency_terms=(
                {"condition": "singleton", "target": "nightly-", "delay_s": 0, "joined": "all"},
            ),
        )
    )
    rows = await store.units_named(
        [("default", "prep-job"), ("default", "prep-pod"), ("default", "nightly-a-job")]
    )
    assert {(r["object_name"], r["singleton"]) for r in rows} == {("prep", False), ("nightly-a", True)}
    peers = await store.singleton_peers([("default", "nightly-")])
    assert [(p["id"], p["state"]) for p in peers] == [(one.id, HELD)]
    assert prep.state == QUEUED


async def test_psql_views_show_held_units_and_who_waits_for_whom(store):
    await store.submit(submission("prep"))
    await store.submit(submission("train", "afterok:prep?afterany:other"))
    [held] = await store.view("held")
    assert held["name"] == "train-job" and held["dependency"] == "afterok:prep?afterany:other"
    waits = await store.view("waits")
    assert [
        (w["condition"], w["target"], w["joined"], w["target_fluxjob"], w["target_state"]) for w in waits
    ] == [
        ("afterok", "prep", "any", "prep-job", QUEUED),
        ("afterany", "other", "any", None, None),
    ]


async def test_fluxqueue_queue_lists_held_units_below_the_queue_and_held_alone(store, migrated_dsn):
    import subprocess
    import sys

    await store.submit(submission("prep"))
    held, _ = await store.submit(submission("train", "afterok:prep"))
    await store.set_held_reasons([(held.id, "waiting for default/prep to succeed")])

    def cli(*args: str) -> str:
        return subprocess.run(
            [sys.executable, "-m", "fluxqueue", "queue", "--dsn", migrated_dsn, *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout

    out = cli()
    assert "prep-job" in out
    tail = out.split("held until their dependency holds (1):")[1]
    assert "train-job" in tail and "afterok:prep" in tail and "waiting for default/prep to succeed" in tail
    waits = cli("waits")
    assert "train-job" in waits and "prep-job" in waits and "Queued" in waits
