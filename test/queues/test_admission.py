"""Tenant queues as pure logic: membership, quota and limit, borrowing, fair share, decay (no network)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from fluxqueue.queues.admission import LIMIT, QUOTA, UNKNOWN, PassQuotas
from fluxqueue.queues.share import CPU, GPU, MEMORY, DecayedUsage, fair_share, parse_amounts, unit_demand
from fluxqueue.queues.spec import QueueBook, queue_spec

GI = 2**30


@dataclass
class U:
    id: int
    namespace: str
    cpus: float = 1
    count: int = 1
    gpus: int = 0
    queue: str = "default"
    pod_sets: list = field(default_factory=list)

    def __post_init__(self):
        self.pod_sets = [
            {
                "name": "main",
                "count": self.count,
                "cpu_millis": int(self.cpus * 1000),
                "memory_bytes": GI,
                "gpus": self.gpus,
            }
        ]


def queue(name, namespaces=(), quota=None, limit=None, weight=1):
    spec = {"namespaces": list(namespaces), "quota": quota or {}, "weight": weight}
    if limit:
        spec["limit"] = limit
    return queue_spec({"metadata": {"name": name}, "spec": spec})


def book(*specs):
    return QueueBook(specs)


CAPACITY = {CPU: 16000, MEMORY: 64 * GI, GPU: 0}


def test_a_units_demand_is_each_pod_sets_request_times_its_count():
    sets = [
        {"name": "launcher", "count": 1, "cpu_millis": 8000, "memory_bytes": GI, "gpus": 0},
        {"name": "worker", "count": 3, "cpu_millis": 1000, "memory_bytes": 2 * GI, "gpus": 1},
    ]
    assert unit_demand(sets) == {CPU: 11000, MEMORY: 7 * GI, GPU: 3}


def test_quota_quantities_are_read_like_kubernetes_and_unknown_names_are_reported():
    amounts, problems = parse_amounts({"cpu": "64", "memory": "256Gi", "nvidia.com/gpu": 8, "ephemeral": "1"})
    assert amounts == {CPU: 64000, MEMORY: 256 * GI, GPU: 8}
    assert problems == ["ephemeral is not accounted (only cpu, memory and nvidia.com/gpu)"]
    assert queue_spec({"metadata": {"name": "q"}, "spec": {"weight": "0"}}).problems


def test_a_unit_belongs_to_its_labels_queue_else_its_namespaces_else_the_default():
    b = book(queue("team-a", ["a"]), queue("team-b", ["b"]))
    assert b.queue_of("a", "default") == "team-a"
    assert b.queue_of("a", "team-b") == "team-b"
    assert b.queue_of("elsewhere", "default") == "default"
    assert b.spec("default").builtin and not b.spec("default").quota
    assert b.spec("nope") is None


def test_no_queue_objects_means_queues_are_off():
    assert not QueueBook([])


def test_a_unit_naming_an_unknown_queue_waits_and_says_so():
    q = PassQuotas(book(queue("team-a", ["a"])), {}, CAPACITY)
    refusal = q.check(U(1, "a", queue="team-z"))
    assert refusal.kind == UNKNOWN and "queue team-z does not exist" in refusal.message


def test_within_quota_is_admitted_and_borrowing_takes_only_what_nobody_holds():
    b = book(queue("team-a", ["a"], {"cpu": 4}), queue("team-b", ["b"], {"cpu": 12}))
    q = PassQuotas(b, {"team-b": {CPU: 10000}}, CAPACITY)
    assert q.check(U(1, "a", cpus=4)) is None  # its own quota
    assert q.check(U(2, "a", cpus=6)) is None  # 4 of its own, 2 borrowed: 6 are free, 4 of them its own
    refusal = q.check(U(3, "a", cpus=8))
    assert refusal.kind == QUOTA
    assert refusal.message == "waiting for quota in team-a: needs 8 CPUs, 4 of 4 free; could borrow 2"


def test_a_hard_limit_holds_even_on_an_idle_cluster():
    b = book(queue("team-a", ["a"], {"cpu": 2}, limit={"cpu": 6}))
    q = PassQuotas(b, {"team-a": {CPU: 4000}}, CAPACITY)
    refusal = q.check(U(1, "a", cpus=4))
    assert refusal.kind == LIMIT
    assert refusal.message == "waiting within the limit of team-a: needs 4 CPUs, 2 of 6 left under its limit"
    assert q.check(U(2, "a", cpus=2)) is None


def test_charging_a_placed_unit_counts_it_against_its_queue():
    b = book(queue("team-a", ["a"], {"cpu": 4}, limit={"cpu": 4}))
    q = PassQuotas(b, {}, CAPACITY)
    first, second = U(1, "a", cpus=3), U(2, "a", cpus=3)
    assert q.check(first) is None
    q.charge(first)
    assert q.check(second).kind == LIMIT
    q.charge(first, -1)
    assert q.check(second) is None


def test_units_within_quota_come_first_then_borrowers_by_fair_share():
    b = book(queue("team-a", ["a"], {"cpu": 2}), queue("team-b", ["b"], {"cpu": 2}))
    a_units = [U(i, "a", cpus=2) for i in range(1, 5)]
    b_units = [U(i, "b", cpus=2) for i in range(11, 15)]
    q = PassQuotas(b, {}, CAPACITY)
    order = [u.id for u in q.order(a_units + b_units)]
    # one of each within quota, then the borrowers alternate (equal weights)
    assert order[:2] == [1, 11]
    assert order[2:] == [2, 12, 3, 13, 4, 14]


def test_weights_divide_what_is_borrowed():
    b = book(queue("heavy", ["h"], weight=2), queue("light", ["l"], weight=1))
    units = [U(i, "h") for i in range(100, 130)] + [U(i, "l") for i in range(200, 230)]
    q = PassQuotas(b, {}, {CPU: 12000, MEMORY: 64 * GI, GPU: 0})
    # No quota: nothing is refused by arithmetic; Fluxion places the first 12 of the order on 12 CPUs.
    order = q.order(units)
    assert all(q.check(u) is None for u in order)
    heavy = sum(1 for u in order[:12] if u.namespace == "h")
    assert (heavy, 12 - heavy) == (8, 4)


def test_a_resource_the_quota_does_not_name_is_neither_guaranteed_nor_refused():
    b = book(queue("gpus", ["g"], {"nvidia.com/gpu": 8}), queue("none", ["n"], {}))
    q = PassQuotas(b, {}, CAPACITY)
    # asks cpu and memory (not named) and GPUs (named): within its quota by its GPUs
    assert q.order([U(1, "n"), U(2, "g", gpus=2)])[0].id == 2
    assert q.check(U(3, "n", cpus=64)) is None  # no quota names cpu: Fluxion alone says whether it fits


def test_a_queue_that_just_used_a_lot_borrows_after_one_that_did_not():
    b = book(queue("busy", ["x"]), queue("idle", ["y"]))
    decayed = {"busy": DecayedUsage(600), "idle": DecayedUsage(600)}
    decayed["busy"].observe(0, {CPU: 16000})
    decayed["idle"].observe(0, {})
    decayed["busy"].observe(300, {})  # finished its burst 300 s ago
    decayed["idle"].observe(300, {})
    q = PassQuotas(b, {}, CAPACITY, decayed)
    assert q.share("busy") > q.share("idle") == 0
    order = [u.namespace for u in q.order([U(1, "x"), U(2, "x"), U(3, "y")])]
    assert order[0] == "y"


def test_decayed_usage_halves_over_one_half_life():
    d = DecayedUsage(100)
    d.observe(0, {CPU: 8000})
    d.observe(100, {})
    assert d.mean[CPU] == pytest.approx(4000)
    assert d.charged({CPU: 6000})[CPU] == 6000  # what it holds now counts when larger
    none = DecayedUsage(0)
    none.observe(0, {CPU: 8000})
    none.observe(1, {})
    assert none.mean[CPU] == 0


def test_fair_share_is_the_dominant_share_above_quota_over_weight():
    cap = {CPU: 10000, MEMORY: 100, GPU: 4}
    assert fair_share({CPU: 4000, MEMORY: 0, GPU: 0}, {CPU: 5000}, cap, 1) == 0
    assert fair_share({CPU: 6000, MEMORY: 0, GPU: 2}, {CPU: 5000}, cap, 2) == pytest.approx(0.25)
