"""Deciding held units from the states of what they name (sbatch(1) rules, no network)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fluxqueue.dependencies.resolve import HOLD, NEVER, RELEASE, HeldUnit, Peer, Target, decide
from fluxqueue.dependencies.spec import parse_dependency

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def held(uid: int, name: str, text: str, ns: str = "default") -> HeldUnit:
    return HeldUnit(uid, ns, name, parse_dependency(text, own_name=name))


def target(uid: int, state: str, started: datetime | None = None, finished: datetime | None = None) -> Target:
    return Target(uid, state, started, finished)


def one(text: str, **targets: Target) -> tuple[str, str]:
    [v] = decide([held(100, "dependent", text)], {("default", k): t for k, t in targets.items()}, now=NOW)
    return v.outcome, v.reason


@pytest.mark.parametrize(
    ("condition", "state", "outcome"),
    [
        ("afterok", "Succeeded", RELEASE),
        ("afterok", "Failed", NEVER),
        ("afterok", "Cancelled", NEVER),
        ("afterok", "Running", HOLD),
        ("afterok", "Unsatisfiable", HOLD),  # not ended: the cluster may change and it be queued again
        ("afternotok", "Failed", RELEASE),
        ("afternotok", "Cancelled", RELEASE),
        ("afternotok", "Succeeded", NEVER),
        ("afternotok", "Queued", HOLD),
        ("afterany", "Succeeded", RELEASE),
        ("afterany", "Failed", RELEASE),
        ("afterany", "Cancelled", RELEASE),
        ("afterany", "Running", HOLD),
        ("afterany", "Held", HOLD),
        ("after", "Queued", HOLD),
        ("after", "Running", RELEASE),
        ("after", "Cancelled", RELEASE),
    ],
)
def test_each_condition_against_each_target_state(condition, state, outcome):
    started = NOW - timedelta(seconds=1) if state in ("Running", "Succeeded", "Failed") else None
    finished = NOW if state in ("Succeeded", "Failed", "Cancelled") else None
    got, _ = one(f"{condition}:a", a=target(1, state, started, finished))
    assert got == outcome


def test_the_reason_says_what_the_unit_waits_for_in_plain_words():
    assert one("afterok:prep", prep=target(1, "Running", NOW)) == (
        HOLD,
        "waiting for default/prep to succeed",
    )
    assert one("afterok:prep") == (HOLD, "waiting for default/prep (not submitted yet) to succeed")
    assert one("afterok:a,afterany:b", a=target(1, "Queued"), b=target(2, "Running", NOW))[1] == (
        "waiting for default/a to succeed and default/b to end"
    )
    assert one("afterok:a?afternotok:b")[1] == (
        "waiting for default/a (not submitted yet) to succeed or default/b (not submitted yet) to fail"
    )


def test_a_failed_target_dooms_an_afterok_dependent_with_slurms_reason():
    outcome, reason = one("afterok:prep", prep=target(1, "Failed", NOW, NOW))
    assert outcome == NEVER
    assert reason == "DependencyNeverSatisfied: default/prep failed (afterok)"


def test_all_needs_every_term_and_one_never_dooms_it():
    assert one("afterok:a:b", a=target(1, "Succeeded"), b=target(2, "Running", NOW))[0] == HOLD
    assert one("afterok:a:b", a=target(1, "Succeeded"), b=target(2, "Succeeded"))[0] == RELEASE
    assert one("afterok:a:b", a=target(1, "Failed"), b=target(2, "Running", NOW))[0] == NEVER


def test_any_is_released_by_one_term_and_doomed_only_when_all_are():
    assert one("afterok:a?afterok:b", a=target(1, "Failed"), b=target(2, "Running", NOW))[0] == HOLD
    assert one("afterok:a?afterok:b", a=target(1, "Failed"), b=target(2, "Succeeded"))[0] == RELEASE
    outcome, reason = one("afterok:a?afterok:b", a=target(1, "Failed"), b=target(2, "Cancelled"))
    assert outcome == NEVER
    assert "default/a failed" in reason and "default/b was cancelled" in reason


def test_after_plus_minutes_waits_that_long_after_the_target_started():
    started = NOW - timedelta(minutes=1)
    [v] = decide([held(100, "b", "after:a+2")], {("default", "a"): target(1, "Running", started)}, now=NOW)
    assert v.outcome == HOLD
    assert v.due == started + timedelta(minutes=2)
    [v] = decide(
        [held(100, "b", "after:a+2")],
        {("default", "a"): target(1, "Running", started)},
        now=NOW + timedelta(minutes=1),
    )
    assert v.outcome == RELEASE


def test_after_plus_minutes_runs_on_the_workloads_clock():
    started = NOW - timedelta(seconds=3)  # 60 s of a 20x simulated clock
    [v] = decide(
        [held(100, "b", "after:a+1")],
        {("default", "a"): target(1, "Running", started)},
        now=NOW,
        time_scale=20,
    )
    assert v.outcome == RELEASE


def test_targets_are_looked_up_in_the_units_own_namespace():
    [v] = decide(
        [held(100, "b", "afterok:a", ns="team")], {("default", "a"): target(1, "Succeeded")}, now=NOW
    )
    assert v.outcome == HOLD
    assert "team/a (not submitted yet)" in v.reason


def test_a_cycle_can_never_run_and_neither_can_what_needs_it():
    units = [
        held(1, "a", "afterok:b"),
        held(2, "b", "afterany:a"),
        held(3, "c", "afterok:a"),  # needs a unit of the cycle
        held(4, "d", "afterok:x?afterok:a"),  # has a way out: x
    ]
    targets = {
        ("default", "a"): target(1, "Held"),
        ("default", "b"): target(2, "Held"),
        ("default", "x"): target(9, "Running", NOW),
    }
    verdicts = {v.unit_id: v for v in decide(units, targets, now=NOW)}
    assert verdicts[1].outcome == verdicts[2].outcome == verdicts[3].outcome == NEVER
    assert "dependency cycle" in verdicts[1].reason
    assert "default/a waits for default/b" in verdicts[1].reason
    assert verdicts[4].outcome == HOLD


def test_a_chain_of_held_units_is_not_a_cycle():
    units = [held(2, "b", "afterok:a"), held(3, "c", "afterok:b")]
    targets = {("default", "a"): target(1, "Running", NOW), ("default", "b"): target(2, "Held")}
    assert [v.outcome for v in decide(units, targets, now=NOW)] == [HOLD, HOLD]


def test_singleton_waits_while_another_of_its_name_runs():
    unit = HeldUnit(5, "default", "nightly-b", parse_dependency("singleton", singleton_name="nightly-"))
    busy = {("default", "nightly-"): [Peer(4, "Running", True), Peer(5, "Held", True)]}
    [v] = decide([unit], {}, busy, now=NOW)
    assert v.outcome == HOLD and "singleton" in v.reason
    idle = {("default", "nightly-"): [Peer(4, "Succeeded", True), Peer(5, "Held", True)]}
    assert decide([unit], {}, idle, now=NOW)[0].outcome == RELEASE


def test_a_queued_singleton_blocks_the_next_but_a_queued_plain_workload_of_the_name_does_not():
    unit = HeldUnit(5, "default", "n", parse_dependency("singleton", own_name="n"))
    assert decide([unit], {}, {("default", "n"): [Peer(4, "Queued", True)]}, now=NOW)[0].outcome == HOLD
    assert decide([unit], {}, {("default", "n"): [Peer(4, "Queued", False)]}, now=NOW)[0].outcome == RELEASE


def test_of_several_held_singletons_of_one_name_one_is_let_go_at_a_time():
    units = [
        HeldUnit(i, "default", f"n-{i}", parse_dependency("singleton", singleton_name="n-"))
        for i in (1, 2, 3)
    ]
    outcomes = [v.outcome for v in decide(units, {}, {}, now=NOW)]
    assert outcomes == [RELEASE, HOLD, HOLD]
