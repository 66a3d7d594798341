"""Scheduling strategies as pure planning over the real Fluxion matcher (in-process gRPC server)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from fluxqueue.controller import strategy as S
from fluxqueue.controller.replay import GraphIndex, replay_r
from fluxqueue.controller.units import scheduling_unit
from fluxqueue.fluxion.client import FluxionClient
from fluxqueue.fluxion.server import FluxionServer
from fluxqueue.placement.graph import build_cluster_graph
from fluxqueue.placement.jobspec import jobspec_for
from fluxqueue.queue.store import NodeShare, Unit


def node(name: str, cpus: int = 4, memory: str = "16Gi") -> dict:
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {},
        "status": {
            "allocatable": {"cpu": str(cpus), "memory": memory, "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


_ids = iter(range(1, 10_000))


def unit(name: str, *, size: int = 1, cpus: int = 4, duration: int = 60, exclusive: bool = False) -> Unit:
    return Unit(
        id=next(_ids),
        namespace="default",
        name=f"{name}-job",
        kind="Job",
        object_name=name,
        owner_uid=name,
        size=size,
        exclusive=exclusive,
        duration_s=duration,
        priority=0,
        group_name=None,
        queue="default",
        state="Queued",
        submitted_at=datetime.now(UTC),
        queued_at=None,
        scheduled_at=None,
        finished_at=None,
        reason="",
        attempts=0,
        started=False,
        pod_sets=[
            {"name": "main", "count": size, "cpu_millis": cpus * 1000, "memory_bytes": 2**30, "gpus": 0}
        ],
        placement={},
    )


class RealMatcher:
    def __init__(self, client: FluxionClient, graph):
        self.client = client
        self.graph = graph

    def fits_ever(self, u: Unit):
        return self.graph.fits_ever(scheduling_unit(u))

    async def match(self, u: Unit, reserve: bool):
        return await self.client.match(jobspec_for(scheduling_unit(u), self.graph), reserve=reserve)


@pytest.fixture
async def fluxion():
    server = FluxionServer(host="127.0.0.1", port=0)
    await server.start()
    client = FluxionClient(server.address)
    try:
        yield client
    finally:
        await client.close()
        await server.stop()


@pytest.fixture
async def matcher(fluxion):
    graph = build_cluster_graph([node(f"n{i}") for i in range(4)])
    await fluxion.init(graph.jgf)
    return RealMatcher(fluxion, graph)


async def decide(strategy: str, units: list[Unit], matcher) -> list[tuple[str, str]]:
    return [(type(d).__name__, d.unit.object_name) async for d in S.plan(strategy, units, matcher)]


async def test_fcfs_stops_at_the_first_unit_that_does_not_fit(matcher):
    decisions = await decide("fcfs", [unit("a", size=3), unit("b", size=2), unit("c", size=1)], matcher)
    assert decisions == [("Allocate", "a"), ("Wait", "b"), ("Wait", "c")]


async def test_easy_reserves_for_the_head_and_backfills_only_what_ends_before_it(matcher):
    first = [d async for d in S.plan("easy", [unit("first", size=2, duration=60)], matcher)]
    assert isinstance(first[0], S.Allocate)
    units = [unit("head", size=4, duration=10), unit("short", duration=10), unit("long", duration=600)]
    decisions = [d async for d in S.plan("easy", units, matcher)]
    assert [(type(d).__name__, d.unit.object_name) for d in decisions] == [
        ("Reserve", "head"),
        ("Allocate", "short"),
        ("Wait", "long"),
    ]
    assert decisions[0].result.at == 60
    assert "without delaying default/head-job" in decisions[2].reason


async def test_conservative_reserves_for_every_blocked_unit(matcher):
    await decide("conservative", [unit("first", size=4, duration=60)], matcher)
    decisions = await decide(
        "conservative", [unit("b", size=4, duration=10), unit("c", size=4, duration=10)], matcher
    )
    assert decisions == [("Reserve", "b"), ("Reserve", "c")]


async def test_an_unsatisfiable_unit_is_rejected_with_a_reason_and_blocks_nobody(matcher):
    decisions = [d async for d in S.plan("fcfs", [unit("huge", cpus=64), unit("ok")], matcher)]
    assert isinstance(decisions[0], S.Reject) and "largest" in decisions[0].reason
    assert isinstance(decisions[1], S.Allocate)


async def test_an_allocation_is_replayed_by_its_per_node_shares_after_the_graph_changed(fluxion):
    graph = build_cluster_graph([node("n1"), node("n2")])
    await fluxion.init(graph.jgf)
    m = RealMatcher(fluxion, graph)
    placed = await m.match(unit("held", size=2, cpus=4), reserve=False)
    shares = [NodeShare(n, a.cores, a.memory, a.gpus, a.slots) for n, a in placed.nodes.items()]
    # A new node sorts first: every uniq_id of n1 and n2 moves, so the stored R is useless as is.
    bigger = build_cluster_graph([node("n0"), node("n1"), node("n2")])
    await fluxion.init(bigger.jgf)
    r = replay_r(GraphIndex.of(bigger.jgf), shares, exclusive=False, memory_chunk_bytes=2**30)
    await fluxion.replay(placed.jobid, json.dumps(r), duration=60)
    m2 = RealMatcher(fluxion, bigger)
    # n1 and n2 are full again; only n0 is free.
    again = await m2.match(unit("next", size=2, cpus=4), reserve=False)
    assert again.status.name == "BUSY"
    one = await m2.match(unit("one", size=1, cpus=4), reserve=False)
    assert list(one.nodes) == ["n0"]
    assert one.jobid > placed.jobid


async def test_a_pass_matches_at_most_queue_depth_units(matcher):
    await decide("easy", [unit("first", size=4, duration=60)], matcher)
    units = [unit(f"u{i}", size=4, duration=10) for i in range(5)]
    decisions = [d async for d in S.plan("easy", units, matcher, depth=2)]
    assert [type(d).__name__ for d in decisions] == ["Reserve", "Wait", "Wait", "Wait", "Wait"]
    assert "beyond the 2 units considered per pass" in decisions[2].reason


class BatchingMatcher(RealMatcher):
    """Matches runs of units in one MatchBatch round trip, as the controller does."""

    batch_size = 5

    async def match_many(self, units: list[Unit], reserve: bool, *, stop_after_first_unallocated: bool):
        specs = [(json.dumps(jobspec_for(scheduling_unit(u), self.graph)), reserve) for u in units]
        return await self.client.match_batch(specs, stop_after_first_unallocated=stop_after_first_unallocated)


@pytest.mark.parametrize("strategy", ["fcfs", "easy", "conservative"])
async def test_batched_matching_decides_exactly_as_one_call_per_unit(fluxion, strategy):
    graph = build_cluster_graph([node(f"n{i}") for i in range(4)])

    def workload() -> list[Unit]:
        shapes = [(2, 600), (1, 10), (4, 30), (1, 20), (1, 900), (2, 15), (3, 5), (1, 10), (4, 60), (1, 5)]
        shapes += [(1, 30), (2, 40), (1, 1000), (64, 5), (1, 5), (2, 10)]  # 64 cpus: rejected up front
        return [unit(f"u{n}", size=size, duration=d) for n, (size, d) in enumerate(shapes[:-3])] + [
            unit("huge", cpus=64),
            unit("tail1", duration=5),
            unit("tail2", size=2, duration=10),
        ]

    async def run(matcher) -> list[tuple]:
        await fluxion.init(graph.jgf)
        await matcher.match(unit("running", size=2, duration=100), reserve=False)  # a cluster in use
        out = []
        async for d in S.plan(strategy, workload(), matcher, depth=12):
            result = getattr(d, "result", None)
            nodes = sorted(result.nodes) if result is not None and result.nodes else []
            at = getattr(result, "at", None) if result is not None else None
            out.append((type(d).__name__, d.unit.object_name, nodes, at, getattr(d, "reason", "")))
        return out

    one_by_one = await run(RealMatcher(fluxion, graph))
    batched = await run(BatchingMatcher(fluxion, graph))
    assert batched == one_by_one
    kinds = {kind for kind, *_ in one_by_one}
    assert kinds >= ({"Allocate", "Wait", "Reject"} | ({"Reserve"} if strategy != "fcfs" else set()))


def test_the_controller_takes_flux_sched_policy_names_and_custom_policy_strings():
    from fluxqueue.controller.settings import valid_policy

    assert valid_policy("first") and valid_policy("variation")
    assert valid_policy("policy=high node_centric=true stop_on_1_matches=true")
    assert not valid_policy("fastest") and not valid_policy("") and not valid_policy("=x")
