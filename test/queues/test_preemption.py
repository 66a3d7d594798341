"""Choosing victims so the waiting unit becomes placeable on real nodes (pure, no network)."""

from __future__ import annotations

from fluxqueue.placement.podsets import PodSet
from fluxqueue.placement.resources import Resources
from fluxqueue.queues.preemption import Holder, Node, choose_victims, placeable

GI = 2**30


def pods(count: int, cpus: int = 1, gpus: int = 0, memory: int = GI) -> list[PodSet]:
    return [PodSet("main", count, Resources(cpus * 1000, memory, gpus))]


def gpu_nodes(n: int, gpus: int = 8) -> list[Node]:
    return [Node(f"n{i}", (32, 128, gpus)) for i in range(1, n + 1)]


def holder(unit_id: int, started: float, **shares: tuple[int, int, int]) -> Holder:
    return Holder(unit_id, f"team-b/u{unit_id}", started, shares)


def test_the_kueue_5243_shape_frees_one_whole_node_not_eight_scattered_gpus():
    """Four full 8-GPU nodes, each with a 1-GPU unit started most recently. Evicting the four newest units
    frees 4 scattered GPUs and places nothing (what Kueue does); freeing one node does: n1 and n2 take two
    victims each, n3 and n4 three."""
    nodes = gpu_nodes(4)
    holders = [
        holder(1, 100, n1=(1, 1, 1)),
        holder(2, 101, n2=(1, 1, 1)),
        holder(3, 102, n3=(1, 1, 1)),
        holder(4, 103, n4=(1, 1, 1)),
        holder(10, 10, n1=(7, 7, 7)),
        holder(20, 20, n2=(7, 7, 7)),
        holder(30, 5, n3=(4, 4, 4)),
        holder(31, 6, n3=(3, 3, 3)),
        holder(40, 4, n4=(4, 4, 4)),
        holder(41, 3, n4=(3, 3, 3)),
    ]
    victims = choose_victims(pods(1, gpus=8), False, nodes, holders, holders)
    assert victims is not None
    assert {v.unit_id for v in victims} in ({1, 10}, {2, 20})  # one node, two victims
    # of the two-victim sets, the more recently started pair
    assert {v.unit_id for v in victims} == {2, 20}


def test_the_fewest_victims_are_chosen_and_the_most_recent_among_equals():
    nodes = [Node("n1", (4, 16, 0)), Node("n2", (4, 16, 0))]
    holders = [holder(1, 10, n1=(2, 2, 0)), holder(2, 20, n1=(2, 2, 0)), holder(3, 30, n2=(4, 4, 0))]
    victims = choose_victims(pods(1, cpus=4), False, nodes, holders, holders)
    assert [v.unit_id for v in victims] == [3]
    victims = choose_victims(pods(1, cpus=2), False, nodes, holders, holders)
    assert [v.unit_id for v in victims] == [3]  # any one frees 2 cores; 3 started last


def test_a_gang_is_placed_across_nodes_and_victims_are_whole_units():
    nodes = [Node("n1", (4, 16, 0)), Node("n2", (4, 16, 0))]
    spanning = holder(1, 50, n1=(4, 4, 0), n2=(4, 4, 0))  # one unit on both nodes: evicted whole
    victims = choose_victims(pods(8), False, nodes, [spanning], [spanning])
    assert victims == [spanning]


def test_never_evict_for_nothing():
    nodes = [Node("n1", (4, 16, 0))]
    mine = holder(1, 10, n1=(4, 4, 0))
    assert choose_victims(pods(1, cpus=4), False, nodes, [mine], []) is None  # no candidate may go
    assert choose_victims(pods(1, cpus=8), False, nodes, [mine], [mine]) is None  # would never fit
    assert choose_victims(pods(1), False, [Node("n1", (4, 16, 0))], [], []) == []  # fits already


def test_an_exclusive_unit_needs_a_node_with_nothing_left_on_it():
    nodes = [Node("n1", (4, 16, 0))]
    small = holder(1, 10, n1=(1, 1, 0))
    assert not placeable(pods(1), True, nodes, {"n1": [3, 15, 0]})
    assert choose_victims(pods(1), True, nodes, [small], [small]) == [small]


def test_node_selectors_are_honoured_when_packing():
    nodes = [Node("n1", (4, 16, 0), {"pool": "a"}), Node("n2", (4, 16, 0), {"pool": "b"})]
    on_a = holder(1, 10, n1=(4, 4, 0))
    on_b = holder(2, 20, n2=(4, 4, 0))
    sets = [PodSet("main", 1, Resources(4000, GI, 0), node_selector={"pool": "a"})]
    assert choose_victims(sets, False, nodes, [on_a, on_b], [on_a, on_b]) == [on_a]


def test_victims_are_enough_only_when_the_queue_also_lets_the_unit_start():
    """Room on the nodes is not all: a unit above its quota needs enough of its own queue's units gone."""
    nodes = [Node("n1", (8, 32, 0))]
    a = holder(1, 10, n1=(2, 2, 0))
    b = holder(2, 20, n1=(2, 2, 0))
    held = {1: 2, 2: 2}

    def enough(victims):  # the queue allows 4 cores, 4 are held: 2 more need 2 freed
        return 4 - sum(held[v.unit_id] for v in victims) + 2 <= 4

    victims = choose_victims(pods(1, cpus=2), False, nodes, [a, b], [a, b], enough=enough)
    assert [v.unit_id for v in victims] == [2]  # the nodes had room; the quota needed one gone
