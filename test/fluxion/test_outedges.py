"""The blocked by_outedges order against the flat sorted list it replaces (bisect, del, insert)."""

import bisect
import random

import pytest

from fluxqueue.fluxion.matcher import outedges
from fluxqueue.fluxion.matcher.outedges import ChildOrder


class Flat:
    """The previous layout: one sorted list of keys beside one list of children."""

    def __init__(self, keyed):
        self.keys = [k for k, _ in keyed]
        self.order = [c for _, c in keyed]

    def move(self, c, old, new):
        i = bisect.bisect_left(self.keys, old)
        if not (i < len(self.order) and self.order[i] is c):
            i = self.order.index(c)
        del self.order[i], self.keys[i]
        i = bisect.bisect_right(self.keys, new)
        self.keys.insert(i, new)
        self.order.insert(i, c)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("load", [1, 2, 3, 8])
def test_moves_keep_the_order_of_one_sorted_list(seed, load, monkeypatch):
    monkeypatch.setattr(outedges, "LOAD", load)
    rng = random.Random(seed)
    n = rng.randint(1, 60)
    # weights start equal (untouched) and move to a few small values, as placements and cancels make them;
    # some uniq_ids repeat (a graph may hold them) so the search by identity is exercised too
    uids = [rng.randint(0, n) if rng.random() < 0.1 else 1000 + i for i in range(n)]
    children = [object() for _ in range(n)]
    weight = dict.fromkeys(range(n), 1 << 64)
    keyed = sorted(((-weight[i], -uids[i]), i) for i in range(n))
    blocked = ChildOrder([(k, children[i]) for k, i in keyed])
    flat = Flat([(k, children[i]) for k, i in keyed])
    for _ in range(300):
        i = rng.randrange(n)
        new = rng.choice([1 << 64, 0, 1, 2, 3, rng.randint(0, 64)])
        old_key, new_key = (-weight[i], -uids[i]), (-new, -uids[i])
        weight[i] = new
        blocked.move(children[i], old_key, new_key)
        flat.move(children[i], old_key, new_key)
        assert list(blocked) == flat.order
        assert len(blocked) == n
        assert all(len(b) <= 2 * load for b in blocked._blocks)


def test_an_empty_order_iterates_nothing():
    assert list(ChildOrder([])) == []
    assert len(ChildOrder([])) == 0


def test_a_child_not_in_the_order_is_an_error():
    order = ChildOrder([((0, -1), "a")])
    with pytest.raises(ValueError):
        order.move("b", (0, -2), (0, -3))
