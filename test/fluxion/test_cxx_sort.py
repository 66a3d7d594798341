"""dfu.cxx_sort (introsort on dense ranks and positions) against the plain replay of libstdc++'s std::sort
on (key, item) pairs it replaced: the same permutation for every input, ties above all, since the order of
equal scores decides placement."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from fluxqueue.fluxion.matcher import dfu
from fluxqueue.fluxion.matcher.dfu import GREATER, INTERVAL_GREATER, LESS, Egroup, cxx_sort


def reference_sort(a: list, order: str, k: int | None = None, only_k: bool = False) -> None:
    """The straightforward replay (bits/stl_algo.h), as dfu.cxx_sort was written first (it always makes
    the first k places right, so only_k changes nothing)."""
    n = len(a)
    if n < 2:
        return
    scores = [g.score for g in a]
    if order == INTERVAL_GREATER:
        run = {}
        r = -1
        prev = None
        for sc in sorted(set(scores)):
            if prev is None or sc != prev + 1:
                r += 1
            run[sc] = r
            prev = sc
        keys = [-run[sc] for sc in scores]
    elif len(set(scores)) == n:
        a.sort(key=lambda g: g.score, reverse=order == GREATER)
        return
    elif order == GREATER:
        keys = [-s for s in scores]
    else:
        keys = scores
    items = list(zip(keys, a, strict=True))
    bound = [n]
    dfu._introsort_loop(items, 0, n, 2 * (n.bit_length() - 1), n if k is None else k, bound)
    dfu._final_insertion_sort(items, 0, bound[0])
    a[:] = [g for _, g in items]


def groups(scores: list[int]) -> list[Egroup]:
    return [Egroup(s, 1, False, [i]) for i, s in enumerate(scores)]


def same(scores: list[int], order: str, k: int | None) -> None:
    a, b = groups(scores), groups(scores)
    cxx_sort(a, order, k)
    reference_sort(b, order, k)
    assert [g.edges[0] for g in a] == [g.edges[0] for g in b], (scores, order, k)
    if k is not None:  # a caller that reads only the k best (only_k): those, in order, and all the rest after
        c = groups(scores)
        cxx_sort(c, order, k, True)
        assert [g.edges[0] for g in c[:k]] == [g.edges[0] for g in b[:k]], (scores, order, k)
        assert sorted(g.edges[0] for g in c) == list(range(len(scores)))


ORDERS = st.sampled_from([GREATER, LESS, INTERVAL_GREATER])


@settings(max_examples=300, deadline=None)
@given(st.data(), st.integers(0, 300), st.sampled_from([1, 3, 8, 40, 10_000]), ORDERS)
def test_cxx_sort_is_the_reference_permutation(data, n, width, order):
    scores = data.draw(st.lists(st.integers(-3, width), min_size=n, max_size=n))
    k = data.draw(st.none() | st.integers(1, max(n, 1)))
    same(scores, order, k)


def test_cxx_sort_near_the_insertion_threshold_and_on_long_tie_runs():
    rng = random.Random(5)
    for n in [*range(40), 63, 64, 65, 200, 1000]:
        for width in (1, 2, 3, 7, 64, n + 1):
            for _ in range(2 if n < 100 else 1):
                scores = [rng.randrange(width) for _ in range(n)]
                for order in (GREATER, LESS, INTERVAL_GREATER):
                    for k in {None, 1, 2, 16, 17, max(1, n // 2), max(1, n)}:
                        same(scores, order, k)
    # the shape of an exhaustive root: each node's cores in turn, highest first, and a few nodes with less
    for nodes, cores in ((8, 64), (128, 16), (33, 7)):
        scores = []
        for i in range(nodes):
            scores.extend(range(cores - (i % 5 == 3) * 3, 0, -1))
        for order in (GREATER, LESS, INTERVAL_GREATER):
            for k in (None, 1, 4, 64, 256):
                same(scores, order, k)


def test_the_depth_limit_falls_back_to_the_same_heap_sort():
    """A depth limit reached (std::__partial_sort) gives the same order as on pairs: forced by small depths,
    as adversarial inputs for median-of-three are hard to come by."""
    rng = random.Random(11)
    for _ in range(300):
        n = rng.randint(17, 200)
        keys = [rng.randrange(rng.choice([2, 5, 50, 256, 1000])) for _ in range(n)]
        depth = rng.randint(0, 3)
        k = rng.choice([n, 1, rng.randint(1, n)])
        items = list(zip(keys, range(n), strict=True))
        bound = [n]
        dfu._introsort_loop(items, 0, n, depth, k, bound)
        dfu._final_insertion_sort(items, 0, bound[0])
        for kind in (list, bytearray):
            if kind is bytearray and max(keys) > 255:
                continue
            ks, pos = kind(keys), list(range(n))
            bound2 = [n]
            dfu._introsort2(ks, pos, 0, n, depth, k, bound2)
            dfu._final_insertion_sort2(ks, pos, 0, bound2[0])
            assert bound == bound2
            assert pos == [i for _, i in items]
