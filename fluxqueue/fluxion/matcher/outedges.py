"""A vertex's children in flux-sched's ``by_outedges`` order, kept as weights change.

``first`` (any ``stop_on_1_matches`` policy) visits children by (weight, uniq_id) descending, and every
placement moves the child it landed under (its weight becomes what is free there now). One flat sorted list
costs O(n) per move (a cluster of 16,384 nodes moves 16,384 entries twice per match); blocks of at most
``2 * LOAD`` entries, found by bisecting their last keys (the layout of sortedcontainers' SortedList), make a
move O(sqrt n) and keep iteration as cheap as a list's.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from itertools import chain
from typing import Any

LOAD = 256

Key = tuple[int, int]  # (-weight, -uniq_id): ascending is by_outedges order


class ChildOrder:
    __slots__ = ("_blocks", "_keys", "_maxes", "_n")

    def __init__(self, keyed: list[tuple[Key, Any]]) -> None:
        """``keyed``: (key, child) pairs already sorted by key."""
        self._blocks: list[list[Any]] = []
        self._keys: list[list[Key]] = []
        for i in range(0, len(keyed), LOAD):
            part = keyed[i : i + LOAD]
            self._keys.append([k for k, _ in part])
            self._blocks.append([c for _, c in part])
        self._maxes: list[Key] = [ks[-1] for ks in self._keys]
        self._n = len(keyed)

    def __len__(self) -> int:
        return self._n

    def __iter__(self):
        blocks = self._blocks
        if len(blocks) == 1:
            return iter(blocks[0])
        return chain.from_iterable(blocks)

    def move(self, child: Any, old: Key, new: Key) -> None:
        """``child``, now at ``old``, goes to ``new`` (after any equal key, as bisect_right places it)."""
        self._remove(child, old)
        self._insert(child, new)

    def _remove(self, child: Any, key: Key) -> None:
        maxes = self._maxes
        b = bisect_left(maxes, key)
        i = -1
        if b < len(maxes):
            ks = self._keys[b]
            i = bisect_left(ks, key)
            if not (i < len(ks) and self._blocks[b][i] is child):
                i = -1
        if i < 0:  # not where its key says (a graph with repeated uniq_ids): look for it
            b, i = self._find(child)
        ks, blk = self._keys[b], self._blocks[b]
        del ks[i]
        del blk[i]
        self._n -= 1
        if ks:
            maxes[b] = ks[-1]
        else:
            del self._keys[b], self._blocks[b], maxes[b]

    def _find(self, child: Any) -> tuple[int, int]:
        for b, blk in enumerate(self._blocks):
            for i, c in enumerate(blk):
                if c is child:
                    return b, i
        raise ValueError("child not in order")

    def _insert(self, child: Any, key: Key) -> None:
        maxes = self._maxes
        if not maxes:
            self._keys.append([key])
            self._blocks.append([child])
            maxes.append(key)
            self._n += 1
            return
        b = bisect_right(maxes, key)
        if b == len(maxes):
            b -= 1
        ks, blk = self._keys[b], self._blocks[b]
        i = bisect_right(ks, key)
        ks.insert(i, key)
        blk.insert(i, child)
        maxes[b] = ks[-1]
        self._n += 1
        if len(ks) > 2 * LOAD:
            self._keys[b : b + 1] = [ks[:LOAD], ks[LOAD:]]
            self._blocks[b : b + 1] = [blk[:LOAD], blk[LOAD:]]
            maxes[b : b + 1] = [ks[LOAD - 1], ks[-1]]
