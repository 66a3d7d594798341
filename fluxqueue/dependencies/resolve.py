"""Deciding held units (pure): from the state of what their dependencies name, each is released into the
queue, kept held (with the words its FluxJob shows), or can never run (Slurm's DependencyNeverSatisfied).

The rules are sbatch(1)'s, over fluxqueue's unit states:

* ``afterok``: the target Succeeded. Never once it Failed or was Cancelled (deleted, or itself never
  satisfied).
* ``afternotok``: the target Failed or was Cancelled. Never once it Succeeded.
* ``afterany``: the target ended (Succeeded, Failed, Cancelled).
* ``after[+m]``: the target started (was placed), or ended without starting, ``m`` minutes ago.
* ``singleton``: no other workload of this name is running (Slurm: "only one job by that name and owned by
  that user can be running or suspended at any point in time"), and no other singleton of the name has been
  let into the queue before it; of several held ones, one is let go at a time.

A name several units have had (a Job deleted and made again, a Pod and a Job of one name) means the newest.
An Unsatisfiable target has not ended (the cluster may change and it be queued again): it is waited for. A
target not submitted yet is waited for. Units waiting on each other in a cycle (and units that need one of
them) can never run: that is found here too, as the largest set of held units each needing another of the set.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fluxqueue.dependencies.spec import (
    AFTER,
    AFTERANY,
    AFTERNOTOK,
    AFTEROK,
    SINGLETON,
    Dependency,
    Term,
)

HOLD = "hold"
RELEASE = "release"
NEVER = "never"

# Unit states (fluxqueue.queue.store; strings here so this module stays free of the store).
HELD_STATE = "Held"
STARTED_STATES = ("Scheduled", "Running")
ENDED_STATES = ("Succeeded", "Failed", "Cancelled")
SINGLETON_BUSY = ("Queued", "Reserved", "Scheduled", "Running")

_ENDED_WORDS = {"Succeeded": "succeeded", "Failed": "failed", "Cancelled": "was cancelled"}


@dataclass(frozen=True)
class Target:
    """The newest unit of a workload name, as the queue has it."""

    unit_id: int
    state: str
    started_at: datetime | None = None  # placed (units.scheduled_at)
    finished_at: datetime | None = None


@dataclass(frozen=True)
class Peer:
    """A unit sharing a singleton name: ``singleton`` when it has a singleton term itself."""

    unit_id: int
    state: str
    singleton: bool


@dataclass(frozen=True)
class HeldUnit:
    unit_id: int
    namespace: str
    name: str  # the workload's own name (units.object_name)
    dependency: Dependency


@dataclass(frozen=True)
class Verdict:
    unit_id: int
    outcome: str  # HOLD, RELEASE or NEVER
    reason: str
    due: datetime | None = None  # when a held unit's after+minutes term comes due


@dataclass(frozen=True)
class _Eval:
    status: str  # RELEASE (holds), HOLD (not yet), NEVER
    words: str
    due: datetime | None = None
    waits_on: int | None = None  # the held unit this term needs to move first


def _term(
    unit: HeldUnit,
    term: Term,
    targets: Mapping[tuple[str, str], Target],
    peers: Mapping[tuple[str, str], list[Peer]],
    now: datetime,
    time_scale: float,
) -> _Eval:
    ns = unit.namespace
    who = f"{ns}/{term.target}"
    if term.condition == SINGLETON:
        busy = any(
            p.unit_id != unit.unit_id
            and (p.state in STARTED_STATES or (p.singleton and p.state in SINGLETON_BUSY))
            for p in peers.get((ns, term.target), ())
        )
        if busy:
            return _Eval(HOLD, f"no other {who} to be running (singleton)")
        return _Eval(RELEASE, f"no other {who} running (singleton)")
    target = targets.get((ns, term.target))
    if target is None:
        return _Eval(HOLD, f"{who} (not submitted yet) to {_goal(term)}")
    if target.unit_id == unit.unit_id:
        return _Eval(NEVER, f"{who} is this workload itself")
    held = target.unit_id if target.state == HELD_STATE else None
    state = target.state
    if term.condition == AFTEROK:
        if state == "Succeeded":
            return _Eval(RELEASE, f"{who} succeeded")
        if state in ENDED_STATES:
            return _Eval(NEVER, f"{who} {_ENDED_WORDS[state]} (afterok)")
    elif term.condition == AFTERNOTOK:
        if state == "Succeeded":
            return _Eval(NEVER, f"{who} succeeded (afternotok)")
        if state in ENDED_STATES:
            return _Eval(RELEASE, f"{who} {_ENDED_WORDS[state]}")
    elif term.condition == AFTERANY:
        if state in ENDED_STATES:
            return _Eval(RELEASE, f"{who} {_ENDED_WORDS[state]}")
    elif term.condition == AFTER:
        since = target.started_at or (target.finished_at if state in ENDED_STATES else None)
        if since is not None:
            due = since + timedelta(seconds=term.delay_s / time_scale)
            if due <= now:
                return _Eval(RELEASE, f"{who} started")
            minutes = term.delay_s // 60
            return _Eval(HOLD, f"{minutes} min after {who} started (until {due:%H:%M:%S} UTC)", due=due)
    qualifier = " (unsatisfiable for now)" if state == "Unsatisfiable" else ""
    return _Eval(HOLD, f"{who}{qualifier} to {_goal(term)}", waits_on=held)


def _goal(term: Term) -> str:
    return {AFTEROK: "succeed", AFTERNOTOK: "fail", AFTERANY: "end", AFTER: "start"}[term.condition]


def decide(
    held: Iterable[HeldUnit],
    targets: Mapping[tuple[str, str], Target],
    peers: Mapping[tuple[str, str], list[Peer]] | None = None,
    now: datetime | None = None,
    time_scale: float = 1.0,
) -> list[Verdict]:
    """A verdict for each held unit, in the order given (the queue's order: of several held singletons of
    one name, the first released wins). ``time_scale``: workload seconds per wall second (a simulation's
    clock), for after+minutes."""
    now = now or datetime.now(UTC)
    peers = peers or {}
    units = list(held)
    evals = {
        u.unit_id: [_term(u, t, targets, peers, now, time_scale) for t in u.dependency.terms] for u in units
    }
    stuck = _deadlocked(units, evals)
    by_id = {u.unit_id: u for u in units}
    released_singletons: set[tuple[str, str]] = set()
    out = []
    for u in units:
        es = evals[u.unit_id]
        if u.unit_id in stuck:
            out.append(Verdict(u.unit_id, NEVER, _never(u, by_id[stuck[u.unit_id]])))
            continue
        verdict = _combine(u, es)
        singleton_keys = {(u.namespace, t.target) for t in u.dependency.terms if t.condition == SINGLETON}
        if verdict.outcome == RELEASE and singleton_keys:
            if singleton_keys & released_singletons:
                verdict = Verdict(u.unit_id, HOLD, "waiting for another singleton of its name to run first")
            released_singletons |= singleton_keys
        out.append(verdict)
    return out


def _combine(u: HeldUnit, es: list[_Eval]) -> Verdict:
    holds = [e for e in es if e.status == RELEASE]
    never = [e for e in es if e.status == NEVER]
    pending = [e for e in es if e.status == HOLD]
    dues = [e.due for e in pending if e.due is not None]
    due = min(dues) if dues else None
    if u.dependency.any_of:
        if holds:
            return Verdict(u.unit_id, RELEASE, f"dependency satisfied: {holds[0].words}")
        if not pending:
            return Verdict(u.unit_id, NEVER, "DependencyNeverSatisfied: " + "; ".join(e.words for e in never))
        return Verdict(u.unit_id, HOLD, "waiting for " + " or ".join(e.words for e in pending), due)
    if never:
        return Verdict(u.unit_id, NEVER, "DependencyNeverSatisfied: " + "; ".join(e.words for e in never))
    if pending:
        return Verdict(u.unit_id, HOLD, "waiting for " + " and ".join(e.words for e in pending), due)
    return Verdict(u.unit_id, RELEASE, "dependency satisfied: " + ", ".join(e.words for e in holds))


def _deadlocked(units: list[HeldUnit], evals: dict[int, list[_Eval]]) -> dict[int, int]:
    """Held units that can never leave the held state: each needs another of the set to move first (a
    cycle, or a unit needing a unit of one). The greatest such set, found by removing units that do not
    qualify until none is left to remove. Returns unit id -> the held unit it waits on."""
    candidates = {u.unit_id: u for u in units if any(e.waits_on is not None for e in evals[u.unit_id])}
    while True:
        removed = False
        for uid, u in list(candidates.items()):
            es = evals[uid]
            blocked = [e.waits_on in candidates for e in es]
            if u.dependency.any_of:
                # Every way out is closed: each term is never, or needs a unit of the set.
                stays = all(b or e.status == NEVER for b, e in zip(blocked, es, strict=True))
            else:
                stays = any(blocked)
            if not stays:
                del candidates[uid]
                removed = True
        if not removed:
            break
    return {
        uid: next(e.waits_on for e in evals[uid] if e.waits_on in candidates)  # type: ignore[misc]
        for uid in candidates
    }


def _never(u: HeldUnit, other: HeldUnit) -> str:
    return (
        f"DependencyNeverSatisfied: {u.namespace}/{u.name} waits for {other.namespace}/{other.name}, which "
        "can never start (a dependency cycle)"
    )
