"""flux-sched's depth-first-and-up traverser, step for step (resource/traversers/dfu_impl.cpp, dfu.cpp).

A match is what flux-sched's ``select()`` does: ``dom_dfv`` from the root collects, per resource type, *edge
groups* (``eval_egroup_t``: a score, a count, the edges below) of every child that could serve; at each vertex
that a request names, the policy keeps the best k of each child type (``choose_best_k``: a ``std::sort`` by
score, then the first k) and marks their edges; what no request names so far is merged up unchosen. The root
keeps the best k of the top-level requests (``dom_finish_graph``), and ``update`` (dfu_impl_update.cpp
``upd_dfv``) walks the marked edges down from the root: what is reached exclusively is allocated, its
ancestors are listed in R. A vertex whose type is exclusive (a ``*nodex`` policy's nodes, any type a jobspec
asks ``exclusive: true``) is taken with everything below it.

Scores are multilevel ids (resource/policies/dfu_match_multilevel_id_impl.hpp): a vertex scores
``MATCH_MET + id + 1`` plus, under ``node_centric``, the factor of the node above it; a slot scores
``MATCH_MET`` plus the scores of what it holds. Equal scores are ordered as libstdc++'s ``std::sort`` (an
unstable introsort) orders them, which we replay exactly: that is where ``high``/``low`` spread over nodes in
an order that is not id order. Policies with ``stop_on_1_matches`` (``first``) visit children by
``by_outedges`` (weight, then uniq_id, both descending; a child's weight is set when a job lands below it, to
what is free there now of the last type its subtree plan tracks, cores under a node and nodes above one, and
a cancel leaves it) and stop once enough is found (``explore_dynamically``); the others visit every child in
graph order.

Leaves live in pools (graph.py); a pool member is visited as the leaf vertex it stands for. Where we are not
flux-sched: "graph order" is children by (id, uniq_id), which is the JGF edge order of the graphs flux-sched
and fluxqueue generate, not necessarily of any JGF; the prune filters are applied as the necessary conditions
they are (they change no outcome); errno, which decides between a refusal and a no-match when an update
reaches nothing, is tracked as a flag set where flux-sched's traversal sets EBUSY.
"""

from __future__ import annotations

import operator
import re

from fluxqueue.fluxion.matcher.constraints import Constraint
from fluxqueue.fluxion.matcher.graph import UP, Pool, Vertex
from fluxqueue.fluxion.matcher.jobspec import Request
from fluxqueue.fluxion.matcher.outedges import ChildOrder

MATCH_UNMET = 0
MATCH_MET = 1
NODE_TYPES = ("node", "storage_node")
# by_outedges weights start at the maximum of their uint64_t until a job lands below the edge.
UNTOUCHED = 1 << 64
# The node_centric score factor (dfu_match_policy_factory.cpp: add_score_factor (node_rt, 1, 10000)).
NODE_ADD_BY, NODE_MULTIPLY_BY = 1, 10000


class Egroup:
    """eval_egroup_t: one candidate (a vertex, or a slot of several) as its parent sees it."""

    __slots__ = ("count", "edges", "excl", "needs", "root", "score")

    def __init__(self, score: int, count: int, excl: bool, edges: list, root: bool = False) -> None:
        self.score = score
        self.count = count
        self.needs = 0
        self.excl = excl
        self.root = root
        # (target, needs, exclusive): target is a Vertex or a (Pool, members bitmask) pair.
        self.edges = edges


class Evals:
    """evals_t (resource/evaluators/edge_eval_api.hpp): the edge groups of one resource type."""

    __slots__ = ("best_i", "best_k", "groups", "qual", "total")

    def __init__(self) -> None:
        self.groups: list[Egroup] = []
        self.qual = 0
        self.total = 0
        self.best_k = 0
        self.best_i = 0

    def add(self, eg: Egroup) -> None:
        self.total += eg.count
        if eg.score > 0:  # the cutline
            self.qual += eg.count
        self.groups.append(eg)

    def merge(self, o: Evals) -> None:
        self.qual += o.qual
        self.total += o.total
        self.groups.extend(o.groups)

    def choose_best_k(self, k: int, order: str, only_k: bool = False) -> bool:
        if k == 0 or k > self.qual:
            return False
        if len(self.groups) > 1:  # (as often as not one group: a vertex's own slot)
            cxx_sort(self.groups, order, k, only_k)
        i = 0
        left = k
        groups = self.groups
        while left > 0:
            g = groups[i]
            g.needs = left if left <= g.count else g.count
            left -= g.count
            i += 1
        self.best_k = k
        self.best_i = i
        return True


class Scoring:
    """scoring_api_t: edge groups by type, plus what a child passes to its parent."""

    __slots__ = ("avail", "hier", "overall", "types")

    def __init__(self) -> None:
        self.types: dict[str, Evals] = {}
        self.overall = -1
        self.avail = 0
        self.hier = False

    def evals(self, t: str) -> Evals:
        ev = self.types.get(t)
        if ev is None:
            ev = self.types[t] = Evals()
        return ev

    def qualified(self, t: str) -> int:
        ev = self.types.get(t)
        return ev.qual if ev is not None else 0

    def merge(self, o: Scoring) -> None:
        # o is a child's and is dropped once merged: its evals can be taken over as they are
        types = self.types
        for t, ev in o.types.items():
            mine = types.get(t)
            if mine is None:
                types[t] = ev
            else:
                mine.merge(ev)

    def choose(self, t: str, k: int, order: str) -> None:
        # (what is chosen is enforced, and nothing reads the groups after the k best: see cxx_sort)
        if self.evals(t).choose_best_k(k, order, True):
            self.hier = True


# -- libstdc++ std::sort, exactly (bits/stl_algo.h: introsort, median-of-three, final insertion sort) ---------


GREATER, LESS, INTERVAL_GREATER = "greater", "less", "interval_greater"


def cxx_sort(a: list[Egroup], order: str, k: int | None = None, only_k: bool = False) -> None:
    """Sort edge groups by score as ``std::sort(begin, end, comp)`` does, ties included. ``comp`` is one of
    fold.hpp's: greater, less, or interval_greater (scores in one run of consecutive integers are equal: the
    closed intervals [s, s] joined into a boost::icl::interval_set).

    With ``k``, only the first k places are made right (choose_best_k reads no further): a partition that
    lies wholly at or after k is left as it is, since the rest of std::sort never moves an element of it in
    front of k (what lies before a partition's cut is never worse than what lies after). ``only_k`` says the
    caller reads nothing after the first k either (dom_slot's cnt_slot does): then distinct scores and a k of
    1 need no sort, only the best in front.

    The sort runs on two parallel arrays, the keys as dense ranks (std::sort only compares them, so any
    order-preserving renaming moves elements alike) and the positions the elements came from: a rank is one
    of a few shared ints, the positions a copy of one list, so the sort allocates nothing per element (a
    root's sort sees an edge group per free core of the cluster). With at most 256 ranks the keys are bytes,
    and each partition finds its stoppers with bytes searches (_bytes_partition). ``_introsort_loop`` and
    the others below, on (key, item) pairs, are the same algorithm written plainly (the test keeps them as the
    reference)."""
    n = len(a)
    if n < 2:
        return
    scores = list(map(_SCORE, a))
    distinct = set(scores)
    if order == INTERVAL_GREATER:
        run = {}
        r = -1
        prev = None
        for sc in sorted(distinct):
            if prev is None or sc != prev + 1:
                r += 1
            run[sc] = r
            prev = sc
        rank_of = {sc: r - x for sc, x in run.items()}  # the key is -run: the last run ranks 0
        nranks = r + 1
    elif len(distinct) == n:  # no ties: every correct sort gives this order
        if only_k and k == 1:
            i = scores.index(max(scores) if order == GREATER else min(scores))
            a[0], a[i] = a[i], a[0]
        else:
            a.sort(key=_SCORE, reverse=order == GREATER)
        return
    else:
        rank_of = dict(zip(sorted(distinct, reverse=order == GREATER), range(len(distinct)), strict=True))
        nranks = len(distinct)
    ranks = list(map(rank_of.__getitem__, scores))
    keys = bytearray(ranks) if nranks <= 256 else ranks
    pos = _positions(n)
    bound = [n]
    _introsort2(keys, pos, 0, n, 2 * (n.bit_length() - 1), n if k is None else k, bound)
    _final_insertion_sort2(keys, pos, 0, bound[0])
    a[:] = list(map(a.__getitem__, pos))


_SCORE = operator.attrgetter("score")
_POSITIONS: list[int] = []


def _positions(n: int) -> list[int]:
    """[0, 1, ..., n - 1], copied from a list kept (a copy shares the ints: nothing is allocated for them)."""
    if len(_POSITIONS) < n:
        _POSITIONS.extend(range(len(_POSITIONS), n))
    return _POSITIONS[:n]


# bytes.translate tables: rank r -> 1 where r >= q (the left scan's stoppers), where r <= q (the right's)
_AT_LEAST = [bytes(r >= q for r in range(256)) for q in range(256)]
_AT_MOST = [bytes(r <= q for r in range(256)) for q in range(256)]


def _introsort2(keys, pos: list[int], first: int, last: int, depth: int, k: int, bound: list[int]) -> None:
    """_introsort_loop on (keys, pos)."""
    while last - first > _THRESHOLD:
        if depth == 0:
            # std::__partial_sort (first, last, last): rare (a depth limit), so on pairs, as written below
            items = list(zip(keys[first:last], pos[first:last], strict=True))
            _heap_sort(items, 0, len(items))
            keys[first:last] = type(keys)(kk for kk, _ in items)
            pos[first:last] = [i for _, i in items]
            return
        depth -= 1
        # __move_median_to_first (first, first + 1, mid, last - 1)
        mid = first + (last - first) // 2
        a, b, c = first + 1, mid, last - 1
        m = _median(a, b, c, keys[a], keys[b], keys[c])
        keys[first], keys[m] = keys[m], keys[first]
        pos[first], pos[m] = pos[m], pos[first]
        if type(keys) is bytearray:
            cut = _bytes_partition(keys, pos, first, last)
        else:
            cut = _list_partition(keys, pos, first, last)
        if cut < k:
            _introsort2(keys, pos, cut, last, depth, k, bound)
        elif cut < bound[0]:
            bound[0] = cut
        last = cut


def _list_partition(keys: list[int], pos: list[int], first: int, last: int) -> int:
    """__unguarded_partition (first + 1, last, first)."""
    p = keys[first]
    i = first + 1
    j = last
    while True:
        while keys[i] < p:
            i += 1
        j -= 1
        while p < keys[j]:
            j -= 1
        if not i < j:
            return i
        keys[i], keys[j] = keys[j], keys[i]
        pos[i], pos[j] = pos[j], pos[i]
        i += 1


def _bytes_partition(keys: bytearray, pos: list[int], first: int, last: int) -> int:
    """__unguarded_partition (first + 1, last, first) with the scans done by bytes searches. Each scan
    passes only places no swap has touched yet (the left one those before the last right stopper swapped,
    the right one those after the last left stopper swapped), and ends, failing a stopper there, on the
    place swapped last on its other side, which holds a stopper for it (or on the pivot, which is one): so
    the stoppers can be looked up in masks made once, of the keys as they were."""
    p = keys[first]
    s0 = first + 1
    seg = keys[s0:last]
    find = seg.translate(_AT_LEAST[p]).find
    rfind = seg.translate(_AT_MOST[p]).rfind
    i = s0
    j = last
    prev = first  # the left place swapped last (first: the pivot)
    while True:
        x = find(1, i - s0, j - s0)
        i = j if x < 0 else x + s0
        y = rfind(1, prev + 1 - s0, j - s0)
        j = prev if y < 0 else y + s0
        if not i < j:
            return i
        keys[i], keys[j] = keys[j], keys[i]
        pos[i], pos[j] = pos[j], pos[i]
        prev = i
        i += 1


def _final_insertion_sort2(keys, pos: list[int], first: int, last: int) -> None:
    """_final_insertion_sort on (keys, pos)."""
    top = first + _THRESHOLD if last - first > _THRESHOLD else last
    for i in range(first + 1, top):
        kv = keys[i]
        if kv < keys[first]:
            pv = pos[i]
            keys[first + 1 : i + 1] = keys[first:i]
            pos[first + 1 : i + 1] = pos[first:i]
            keys[first] = kv
            pos[first] = pv
        else:
            _unguarded_linear_insert2(keys, pos, i)
    for i in range(top, last):
        _unguarded_linear_insert2(keys, pos, i)


def _unguarded_linear_insert2(keys, pos: list[int], last: int) -> None:
    kv = keys[last]
    nxt = last - 1
    if not kv < keys[nxt]:
        return
    pv = pos[last]
    while kv < keys[nxt]:
        keys[last] = keys[nxt]
        pos[last] = pos[nxt]
        last = nxt
        nxt -= 1
    keys[last] = kv
    pos[last] = pv


_THRESHOLD = 16


def _introsort_loop(v: list, first: int, last: int, depth: int, k: int, bound: list[int]) -> None:
    while last - first > _THRESHOLD:
        if depth == 0:
            _heap_sort(v, first, last)
            return
        depth -= 1
        cut = _partition_pivot(v, first, last)
        if cut < k:
            _introsort_loop(v, cut, last, depth, k, bound)
        elif cut < bound[0]:
            bound[0] = cut
        last = cut


def _partition_pivot(v: list, first: int, last: int) -> int:
    mid = first + (last - first) // 2
    _median_to_first(v, first, first + 1, mid, last - 1)
    return _unguarded_partition(v, first + 1, last, first)


def _median_to_first(v: list, result: int, a: int, b: int, c: int) -> None:
    m = _median(a, b, c, v[a][0], v[b][0], v[c][0])
    v[result], v[m] = v[m], v[result]


def _median(a: int, b: int, c: int, ka, kb, kc) -> int:
    """Which of positions a, b, c holds the median of their keys, as std::__move_median_to_first picks it."""
    if ka < kb:
        if kb < kc:
            return b
        return c if ka < kc else a
    if ka < kc:
        return a
    return c if kb < kc else b


def _unguarded_partition(v: list, first: int, last: int, pivot: int) -> int:
    p = v[pivot][0]
    while True:
        while v[first][0] < p:
            first += 1
        last -= 1
        while p < v[last][0]:
            last -= 1
        if not first < last:
            return first
        v[first], v[last] = v[last], v[first]
        first += 1


def _final_insertion_sort(v: list, first: int, last: int) -> None:
    if last - first > _THRESHOLD:
        _insertion_sort(v, first, first + _THRESHOLD)
        for i in range(first + _THRESHOLD, last):
            _unguarded_linear_insert(v, i)
    else:
        _insertion_sort(v, first, last)


def _insertion_sort(v: list, first: int, last: int) -> None:
    for i in range(first + 1, last):
        if v[i][0] < v[first][0]:
            val = v[i]
            v[first + 1 : i + 1] = v[first:i]
            v[first] = val
        else:
            _unguarded_linear_insert(v, i)


def _unguarded_linear_insert(v: list, last: int) -> None:
    val = v[last]
    k = val[0]
    nxt = last - 1
    while k < v[nxt][0]:
        v[last] = v[nxt]
        last = nxt
        nxt -= 1
    v[last] = val


def _heap_sort(v: list, first: int, last: int) -> None:
    # std::__partial_sort(first, last, last): make_heap, then sort_heap.
    n = last - first
    if n >= 2:
        parent = (n - 2) // 2
        while True:
            _adjust_heap(v, first, parent, n, v[first + parent])
            if parent == 0:
                break
            parent -= 1
    while last - first > 1:
        last -= 1
        val = v[last]
        v[last] = v[first]
        _adjust_heap(v, first, 0, last - first, val)


def _adjust_heap(v: list, first: int, hole: int, n: int, val) -> None:
    top = hole
    child = hole
    while child < (n - 1) // 2:
        child = 2 * (child + 1)
        if v[first + child][0] < v[first + child - 1][0]:
            child -= 1
        v[first + hole] = v[first + child]
        hole = child
    if n & 1 == 0 and child == (n - 2) // 2:
        child = 2 * (child + 1)
        v[first + hole] = v[first + child - 1]
        hole = child - 1
    parent = (hole - 1) // 2
    while hole > top and v[first + parent][0] < val[0]:
        v[first + hole] = v[first + parent]
        hole = parent
        parent = (hole - 1) // 2
    v[first + hole] = val


# -- the traversal -----------------------------------------------------------------------------------------


def perf_class(properties: dict | None) -> int:
    """var_aware_t: a vertex's ``perf_class`` property, 9999 (the worst class) when absent or out of range."""
    m = _STOI.match(str((properties or {}).get("perf_class", "")))  # std::stoi: a leading integer
    if m is None:
        return 9999
    c = int(m.group(0))
    return c if 0 <= c <= 9999 else 9999


_STOI = re.compile(r"\s*[+-]?\d+")


def effective_max(r: Request) -> int:
    """calc_effective_max: the largest count the request's expression reaches within max."""
    return r.best_count(r.max)


class Window:
    __slots__ = ("alloc", "end", "sat", "start")

    def __init__(self, start: int, end: int, alloc: bool, sat: bool = False) -> None:
        self.start = start
        self.end = end
        self.alloc = alloc  # AT_ALLOC (not a reservation attempt): by_excl also refuses allocated vertices
        self.sat = sat  # AT_SATISFIABILITY: what is down counts too (by_status is skipped)


class Select:
    """One ``select()``: a walk of the graph for one jobspec at one time. ``marks`` is the outcome."""

    __slots__ = (
        "_s_groups",
        "_s_leaf",
        "_s_need",
        "_s_nslots",
        "_s_qual",
        "_s_quals",
        "_s_shape",
        "_s_total",
        "_shape_keys",
        "by_id",
        "cmp_graph",
        "cmp_slot",
        "cmp_vtx",
        "constraint",
        "dfu",
        "dynamic",
        "marks",
        "ml",
        "node_centric",
        "pmarks",
        "policy",
        "slots",
        "w",
    )

    def __init__(self, dfu: DFU, window: Window, constraint: Constraint | None) -> None:
        self.dfu = dfu
        self.policy = dfu.policy
        self.cmp_vtx, self.cmp_slot, self.cmp_graph = dfu.cmps
        self.by_id = dfu.by_id
        self.node_centric = dfu.policy.node_centric
        self.dynamic = dfu.policy.stop_on_1
        self.w = window
        self.constraint = constraint
        self.ml = 0  # m_multilevel_scores
        # set_for_trav_update with this select's token: vertex -> (needs, exclusive); pool -> the members
        # marked exclusive (a leaf marked shared is never allocated, so it need not be remembered).
        self.marks: dict = {}
        self.pmarks: dict[Pool, int] = {}
        self.slots: list[Egroup] = []  # the slots chosen (for the slots-per-node count in R's metadata)
        self._shape_keys: dict[int, tuple] = {}  # id of a slot's shape -> request_key of it

    # -- availability (planner queries on our spans) ----------------------------------------------------

    def _free_members(self, p: Pool) -> int:
        w = self.w
        free = p.all_mask & ~p.busy_mask(w.start, w.end)
        return free if w.sat else free & ~p.down_mask

    def _prune(self, u: Vertex, x_in: bool, resources: list[Request]) -> bool:
        """dfu_impl_t::prune: False when u cannot serve (status, constraint, exclusivity, plans)."""
        if u.status != UP and not self.w.sat:
            return False
        c = self.constraint
        if c is not None and u.type in NODE_TYPES and not c.match(u.name, u.properties, u.rank):
            return False
        w = self.w
        if u.blocked(w.start, w.end):  # by_avail: its own plan is fully used
            return False
        for r in resources:
            if r.type != u.type and r.type != "slot":
                continue
            if r.type != "slot" and (x_in or r.exclusive is True):
                if r.exclusive is False and x_in:
                    return False
                if w.alloc and u.x_now:
                    return False
                if u.used(w.start, w.end):  # x_checker: any job tagged here
                    return False
            # by_subplan: enough cores free below for one unit (a necessary condition, so it only saves time)
            if w.start == 0:
                need = r.need.get("core", 0)
                if need and u.free.get("core", 0) < need:
                    return False
        return True

    def _factor(self, u: Vertex) -> int:
        # score_factor_t::calc_factor (id + 1, uniq_id)
        return (u.vid + 1 + NODE_ADD_BY) * NODE_MULTIPLY_BY + abs(u.uid % NODE_MULTIPLY_BY - 1)

    # -- dom_dfv ----------------------------------------------------------------------------------------

    def dom_dfv(self, u: Vertex, resources: list[Request], pristine: bool, excl: bool, to_parent: Scoring):
        """Returns (ok, exclusive) and leaves in to_parent what u contributes."""
        x_in = excl
        utype = u.type
        match_res = slot_res = None
        for r in resources:
            if r.type == utype:
                if r.exclusive is True:
                    x_in = True
                if match_res is not None or slot_res is not None:
                    return False, x_in  # siblings request the same type
                match_res = r
                for c in r.with_:
                    if c.type == "slot":
                        slot_res = c
            elif r.type == "slot":
                if match_res is not None or slot_res is not None:
                    return False, x_in
                slot_res = r
        slot = False
        if slot_res is not None:
            ct = u.ctypes
            slot = True
            for e in slot_res.with_:
                if e.type not in ct:
                    slot = False
                    break
        if slot:
            nxt = slot_res.with_
            pristine = False
        elif match_res is not None:
            nxt = match_res.with_
            pristine = False
        elif pristine:
            nxt = resources
        else:
            self.dfu.ebusy = True  # NONE_MATCH
            return False, x_in
        if not self._prune(u, x_in, resources):
            self.dfu.ebusy = True
            return False, x_in
        factor = 0
        if self.node_centric and utype == "node":
            factor = self._factor(u)
            self.ml += factor
        dfu = Scoring()
        if slot:
            self.dom_slot(u, nxt, effective_max(slot_res), pristine, dfu)
        else:
            self.explore(u, nxt, pristine, x_in, dfu, 1)
        # dom_finish_vtx
        score = MATCH_MET
        for r in resources:
            if r.type != utype:
                continue
            for c in r.with_:
                count = c.best_count(dfu.qualified(c.type))
                if count == 0:
                    score = MATCH_UNMET
                    break
                dfu.choose(c.type, count, self.cmp_vtx)
        self.ml -= factor
        if score != MATCH_MET:
            return False, x_in
        overall = score + self.ml + u.vid + 1 if self.by_id else score + perf_class(u.properties)
        dfu.overall = overall
        # resolve
        if dfu.hier:
            self.enforce(dfu, False)
        else:
            to_parent.merge(dfu)
        to_parent.avail = u.size if u.size > 0 else 1
        to_parent.overall = overall
        return True, x_in

    def explore(
        self, u: Vertex, resources: list[Request], pristine: bool, excl: bool, dfu: Scoring, multiplier: int
    ) -> None:
        """explore_statically / explore_dynamically over u's children (vertices and pool members)."""
        by_type = {}
        for r in resources:
            by_type[r.type] = r
        if self.dynamic:
            self._explore_dynamically(u, resources, by_type, pristine, excl, dfu, multiplier)
            return
        # Static: every child in graph order (uniq_id ascending); pool members of requested types only (a
        # leaf of another type contributes nothing any request reads).
        for p in u.pools:
            r = by_type.get(p.type)
            if r is None or r.with_:
                if not pristine or (r is not None and r.with_):
                    self.dfu.ebusy = True  # leaves of a type no request names here: NONE_MATCH
                continue
            if self._free_members(p) != p.all_mask:
                self.dfu.ebusy = True  # a busy leaf fails by_avail
            self._add_leaves(p, self._members_up(p), excl, dfu.evals(p.type), None)
        types = dfu.types
        for c in u.children:
            ok, x = self.dom_dfv(c, resources, pristine, excl, dfu)
            if ok:
                n = dfu.avail
                # dfu.evals(c.type).add(...), inline: once per vertex of a wide level
                ev = types.get(c.type)
                if ev is None:
                    ev = types[c.type] = Evals()
                ev.total += n
                if dfu.overall > 0:
                    ev.qual += n
                ev.groups.append(Egroup(dfu.overall, n, x, [(c, n, x)]))

    def _members_up(self, p: Pool):
        free = self._free_members(p)
        if p.uids is None:
            while free:
                low = free & -free
                free ^= low
                yield low.bit_length() - 1
        else:
            yield from sorted((i for i in range(p.count) if free >> i & 1), key=p.uid)

    def _members_down(self, p: Pool):
        free = self._free_members(p)
        if p.uids is None:
            while free:
                b = free.bit_length() - 1
                free ^= 1 << b
                yield b
        else:
            yield from sorted((i for i in range(p.count) if free >> i & 1), key=p.uid, reverse=True)

    def _add_leaves(self, p: Pool, members, excl: bool, ev: Evals, tally) -> None:
        size = p.size
        if self.by_id:
            base = MATCH_MET + self.ml + 1
            ids = p.ids
            id_base = p.id_base
        else:
            base, ids, id_base = MATCH_MET + perf_class(p.properties), None, 0
        for i in members:
            vid = (ids[i] if ids is not None else id_base + i) if self.by_id else 0
            ev.add(Egroup(base + vid, size, excl, [((p, 1 << i), size, excl)]))
            if tally is not None and tally.add(size):
                return

    def _explore_dynamically(self, u, resources, by_type, pristine, excl, dfu, multiplier) -> None:
        tallies = {r.type: Tally(effective_max(r), multiplier) for r in resources}
        # Children by by_outedges order: (weight, uniq_id) descending. Leaves keep the initial weight (they
        # have no subtree plan), so a pool's members come by uniq_id, highest first.
        if u.pools:
            order: list = [(self.dfu.weights.get(c, UNTOUCHED), c.uid, c) for c in u.children]
            for p in u.pools:
                r = by_type.get(p.type)
                if r is None or r.with_:
                    if not pristine or (r is not None and r.with_):
                        self.dfu.ebusy = True  # NONE_MATCH (visited, in flux-sched, before or after enough)
                    continue
                if self._free_members(p) != p.all_mask:
                    self.dfu.ebusy = True
                order.append((UNTOUCHED, p.uid(p.count - 1) if p.uids is None else max(p.uids), p))
            if len(order) > 1:
                order.sort(key=lambda t: (t[0], t[1]), reverse=True)
            children = [t[2] for t in order]
        else:
            children = self.dfu.child_order(u)
        w = self.w
        single = len(tallies) == 1
        # by_subplan at t=0: a child with fewer free cores than one unit needs cannot serve (our free counts
        # leave out reservations, so this only prunes what flux-sched prunes too)
        need_core = resources[0].need.get("core", 0) if single and w.start == 0 else 0
        tally1 = next(iter(tallies.values())) if single else None
        type1 = resources[0].type if single else None
        for c in children:
            if isinstance(c, Pool):
                tally = tallies[c.type]
                if tally.done:
                    continue
                self._add_leaves(c, self._members_down(c), excl, dfu.evals(c.type), tally)
                if all(t.done for t in tallies.values()):
                    break
                continue
            # The cheap prunes first (what dom_dfv's prune would refuse: down, held whole, no free core)
            if (
                (c.status != UP and not w.sat)
                or c.blocked(w.start, w.end)
                or (need_core and c.free.get("core", 0) < need_core)
            ):
                self.dfu.ebusy = True
                continue
            if single:
                if c.type == type1 and tally1.done:
                    continue
                ev = dfu.types.get(type1)
                before = ev.total if ev is not None else 0
                ok, x = self.dom_dfv(c, resources, pristine, excl, dfu)
                if not ok:
                    continue
                n = dfu.avail
                dfu.evals(c.type).add(Egroup(dfu.overall, n, x, [(c, n, x)]))
                total = dfu.types[type1].total if type1 in dfu.types else 0
                if total > before and tally1.add(total - before):
                    break
                continue
            t = tallies.get(c.type)
            if t is not None and t.done:
                continue
            before = {k: dfu.types[k].total if k in dfu.types else 0 for k in tallies}
            ok, x = self.dom_dfv(c, resources, pristine, excl, dfu)
            if not ok:
                continue
            n = dfu.avail
            dfu.evals(c.type).add(Egroup(dfu.overall, n, x, [(c, n, x)]))
            for k, tally in tallies.items():
                ev = dfu.types.get(k)
                total = ev.total if ev is not None else 0
                if total > before[k]:
                    tally.add(total - before[k])
            if all(t.done for t in tallies.values()):
                break

    def dom_slot(self, u: Vertex, shape: list[Request], nslots: int, pristine: bool, dfu: Scoring) -> None:
        if not u.children and not (len(shape) == 1 and self.by_id):
            # Slots of a vertex that holds only leaves (a node's cores, memory, GPUs), outside the by-id fast
            # path (variation's perf_class scores, where every leaf ties; shapes with several leaf types):
            # what the slots are is a function of the leaves free and the request alone, and nothing changes
            # an edge group once made (see _one_pool_slots), so the last ones made here are handed out again
            # while neither changes. An exhaustive walk would otherwise sort every node's leaves every match.
            shape_key = self._shape_keys.get(id(shape))  # (the shape lives as long as this select)
            if shape_key is None:
                shape_key = self._shape_keys[id(shape)] = request_key(shape)
            key = (
                [(p, self._free_members(p)) for p in u.pools],
                shape_key,
                nslots,
                pristine,
                self.cmp_slot,
                self.dynamic,
                self.ml if self.by_id else 0,
            )
            cached = u.slot_cache
            if cached is None or cached[0] != key:
                ebusy = self.dfu.ebusy
                self.dfu.ebusy = False
                made = Scoring()
                self._dom_slot_walk(u, shape, nslots, pristine, made)
                ev = made.types.get("slot")
                cached = u.slot_cache = (key, self.dfu.ebusy, ev.groups if ev is not None else [])
                self.dfu.ebusy = ebusy
            _, ebusy, out = cached
            if ebusy:
                self.dfu.ebusy = True
            if out:
                ev = dfu.evals("slot")
                for g in out:
                    ev.add(g)
            return
        self._dom_slot_walk(u, shape, nslots, pristine, dfu)

    def _dom_slot_walk(
        self, u: Vertex, shape: list[Request], nslots: int, pristine: bool, dfu: Scoring
    ) -> None:
        if len(shape) == 1 and not u.children and self.by_id:
            # _dom_slot_leaves's first case, without the calls between (one per slot-hosting vertex visited)
            out = self._one_pool_slots(u, shape[0], nslots)
            if out is not None:
                if out:
                    ev = dfu.evals("slot")  # slot scores are > 0: all qualify
                    ev.groups.extend(out)
                    ev.total += len(out)
                    ev.qual += len(out)
                return
        elif self._dom_slot_leaves(u, shape, nslots, dfu):
            return
        dfu_slot = Scoring()
        self.explore(u, shape, pristine, True, dfu_slot, nslots)
        # dom_finish_slot: sort every type (choose_accum_all)
        for ev in dfu_slot.types.values():
            ev.choose_best_k(ev.qual, self.cmp_slot)
        # cnt_slot: how many whole slots the edge groups pack into
        qual = None
        counts = []
        for e in shape:
            ev = dfu_slot.types.get(e.type)
            count = e.best_count(ev.qual if ev is not None else 0)
            counts.append((e, count, ev))
            if count == 0:
                fit = 0
            else:
                t = Tally(count, 0)
                for g in ev.groups:
                    t.add(g.edges[0][1])
                fit = t.shares
            qual = fit if qual is None else min(qual, fit)
        if not qual:
            return
        iters = {e.type: 0 for e in shape}
        out = []
        for _ in range(qual):
            score = MATCH_MET
            edges = []
            for e, count, ev in counts:
                j = 0
                k = iters[e.type]
                groups = ev.groups
                while j < count:
                    if k >= len(groups):
                        return  # "not enough slots": nothing is added
                    g = groups[k]
                    k += 1
                    score += g.score
                    tgt, n, _ = g.edges[0]
                    edges.append((tgt, n, True))
                    j += n
                iters[e.type] = k
            out.append(Egroup(score, 1, True, edges))
        ev = dfu.evals("slot")
        for g in out:
            ev.add(g)

    def _dom_slot_leaves(self, u: Vertex, shape: list[Request], nslots: int, dfu: Scoring) -> bool:
        """dom_slot for the common shape, a slot of leaves that u's pools hold: the same explore, sort,
        cnt_slot and packing, on (score, pool, member) rows instead of one edge group per leaf. Returns
        False (nothing done) for what it does not cover: ties between leaf scores, other shapes."""
        if len(shape) == 1 and not u.children and self.by_id:
            return self._dom_slot_one_pool(u, shape[0], nslots, dfu)
        types = {}
        for e in shape:
            if e.with_ or e.type in types:
                return False
            types[e.type] = e
        pools_of: dict[str, list[Pool]] = {}
        for p in u.pools:
            if p.type in types:
                pools_of.setdefault(p.type, []).append(p)
            else:
                self.dfu.ebusy = True  # NONE_MATCH on a leaf of another type
        for c in u.children:
            if c.type in types:
                return False
            self.dfu.ebusy = True  # a vertex child of another type: NONE_MATCH
        if len(pools_of) != len(types) or not self.by_id:
            return False
        greater = self.cmp_slot == GREATER
        base = MATCH_MET + self.ml + 1
        rows_of = {}
        for t, e in types.items():
            pools = pools_of[t]
            if len(pools) > 1 or pools[0].uids is not None:
                return False  # several pools of a type (ids may repeat): the general path
            p = pools[0]
            free = self._free_members(p)
            if free != p.all_mask:
                self.dfu.ebusy = True
            size = p.size
            if self.dynamic:
                # uniq_id descending until nslots slots' worth: whole leaves of one size make a share every
                # ceil(per_share / size) of them (the tally of explore_dynamically)
                per = effective_max(e)
                want = nslots * (-(-per // size) if size > 0 and per > 0 else 1)
                if free == p.all_mask and want >= p.count:
                    members = list(range(p.count - 1, -1, -1))
                else:
                    members = []
                    while free and len(members) < want:
                        b = free.bit_length() - 1
                        free ^= 1 << b
                        members.append(b)
            elif free == p.all_mask:
                members = list(range(p.count))
            else:
                members = []
                while free:
                    low = free & -free
                    free ^= low
                    members.append(low.bit_length() - 1)
            # distinct ids: the sort is by id, whichever way
            if greater != self.dynamic:
                members.reverse()
            rows_of[t] = (p, members)
        # cnt_slot
        qual = None
        plan = []
        for t, e in types.items():
            p, members = rows_of[t]
            count = e.best_count(len(members) * p.size)
            if count == 0:
                return True
            shares = len(members) // (-(-count // p.size) if p.size > 0 else 1)  # cnt_slot's tally
            qual = shares if qual is None else min(qual, shares)
            plan.append((p, members, count))
        if not qual:
            return True
        ev = dfu.evals("slot")
        at = {id(p): 0 for p, _, _ in plan}
        for _ in range(qual):
            score = MATCH_MET
            edges = []
            for p, members, count in plan:
                k = at[id(p)]
                size = p.size
                take = -(-count // size) if size > 0 else count
                if k + take > len(members):
                    return True  # cannot happen after cnt_slot; as flux-sched, then nothing is added
                mask = 0
                chunk = members[k : k + take]
                for i in chunk:
                    mask |= 1 << i
                score += take * (base + p.id_base) + sum(chunk)
                at[id(p)] = k + take
                edges.append(((p, mask), take * size, True))
            ev.add(Egroup(score, 1, True, edges))
        return True

    def _dom_slot_one_pool(self, u: Vertex, e: Request, nslots: int, dfu: Scoring) -> bool:
        """_dom_slot_leaves for a slot of one leaf type (the most common shape: cores)."""
        out = self._one_pool_slots(u, e, nslots)
        if out is None:
            return False
        if out:
            ev = dfu.evals("slot")  # slot scores are > 0: all qualify
            ev.groups.extend(out)
            ev.total += len(out)
            ev.qual += len(out)
        return True

    def _one_pool_slots(self, u: Vertex, e: Request, nslots: int) -> list[Egroup] | None:
        """The slot edge groups _dom_slot_one_pool adds, or None where it does not apply."""
        if e.with_:
            return None
        p = None
        for q in u.pools:
            if q.type == e.type:
                if p is not None:
                    return None
                p = q
            else:
                self.dfu.ebusy = True  # NONE_MATCH on a leaf of another type
        if p is None or p.uids is not None:
            return None
        free = self._free_members(p)
        full = free == p.all_mask
        if not full:
            self.dfu.ebusy = True
        size = p.size
        nfree = free.bit_count()
        if self.dynamic:
            per_leaf = -(-e.best_count(e.max) // size) if size > 0 else 1  # leaves per share
            want = nslots * per_leaf if per_leaf > 0 else nslots
            n = min(nfree, want)
        else:
            want = -1
            n = nfree
        count = e.best_count(n * size)
        if count == 0:
            return []
        take = -(-count // size) if size > 0 else count
        if not n // take:
            return []
        # The groups are a function of these alone, and nothing changes an edge group once made (choose_best_k
        # sets ``needs``, which nothing reads back; enforce and the writer read ``edges``), so the last ones
        # made are handed out again while the pool's free members stay the same: an exhaustive walk would
        # otherwise build one per free core of every node on every match.
        key = (free, want, take, self.ml, self.cmp_slot, p.id_base, p.size)
        cached = p.slot_cache
        if cached is not None and cached[0] == key:
            return cached[1]
        out = self._make_pool_slots(p, free, full, want, take)
        p.slot_cache = (key, out)
        return out

    def _make_pool_slots(self, p: Pool, free: int, full: bool, want: int, take: int) -> list[Egroup]:
        if self.dynamic:
            if full and want >= p.count:
                members = list(range(p.count - 1, -1, -1))
            else:
                members = []
                while free and len(members) < want:
                    b = free.bit_length() - 1
                    free ^= 1 << b
                    members.append(b)
            if self.cmp_slot != GREATER:
                members.reverse()
        else:
            if full:
                members = list(range(p.count))
            else:
                members = []
                while free:
                    low = free & -free
                    free ^= low
                    members.append(low.bit_length() - 1)
            if self.cmp_slot == GREATER:
                members.reverse()
        qual = len(members) // take
        base = MATCH_MET + take * (MATCH_MET + self.ml + 1 + p.id_base)
        amount = take * p.size
        if take == 1:
            return [Egroup(base + i, 1, True, [((p, 1 << i), amount, True)]) for i in members]
        out = []
        k = 0
        for _ in range(qual):
            chunk = members[k : k + take]
            k += take
            if take == p.count:
                mask = p.all_mask
            else:
                mask = 0
                for i in chunk:
                    mask |= 1 << i
            out.append(Egroup(base + sum(chunk), 1, True, [((p, mask), amount, True)]))
        return out

    # -- enforce: mark the chosen edges -----------------------------------------------------------------

    def enforce(self, dfu: Scoring, up_to_root: bool) -> None:
        marks = self.marks
        pmarks = self.pmarks
        for t, ev in dfu.types.items():
            if not ev.best_k:
                continue
            for i in range(ev.best_i):
                g = ev.groups[i]
                if g.root:
                    continue
                if t == "slot":
                    self.slots.append(g)
                for tgt, needs, x in g.edges:
                    if isinstance(tgt, tuple):
                        p, m = tgt
                        if x:
                            pmarks[p] = pmarks.get(p, 0) | m
                        v = p.parent
                    else:
                        marks[tgt] = (needs, x)
                        v = tgt.parent
                    if up_to_root:
                        # enforce_constrained: the edges up to the root are taken shared
                        while v is not None and v.parent is not None and v not in marks:
                            marks[v] = (v.size, False)
                            v = v.parent

    # -- select -----------------------------------------------------------------------------------------

    def select(self, root: Vertex, resources: list[Request], x: bool) -> tuple[int, bool] | None:
        """Returns (root needs, root exclusive) and fills ``marks``, or None for no match."""
        if self.dynamic and self.by_id and len(resources) == 1 and one_slot_shape(resources[0], root):
            return self._select_one_slot(root, resources[0], x)
        return self._select(root, resources, x)

    def _select(self, root: Vertex, resources: list[Request], x: bool) -> tuple[int, bool] | None:
        dfu = Scoring()
        ok, x_in = self.dom_dfv(root, resources, True, x, dfu)
        if not ok:
            return None
        dfu.evals(root.type).add(Egroup(dfu.overall, dfu.avail, x_in, [(root, dfu.avail, x_in)], root=True))
        # dom_finish_graph
        for r in resources:
            count = r.best_count(dfu.qualified(r.type))
            if count == 0:
                return None
            dfu.choose(r.type, count, self.cmp_graph)
        self.ml = 0
        needs = 1
        for r in resources:
            if r.type == root.type:
                needs = r.best_count(dfu.avail)
                if needs == 0:
                    return None
        for ev in dfu.types.values():
            if ev.qual == 0:
                return None
        self.enforce(dfu, True)
        return needs, x_in

    # -- the one-slot walk ------------------------------------------------------------------------------
    #
    # For the most common request, one slot type at the top (``slot[n] -> leaf[k]``, no other top-level
    # resource) under a stop_on_1 policy, the general walk does less than it seems: above the vertices that
    # host the slot nothing is chosen (no request names their types, so dom_finish_vtx scores them MATCH_MET
    # and resolves by merging), every vertex passes ``pristine`` and ``excl`` down unchanged, and what reaches
    # the root is the slot edge groups in visiting order plus, per vertex type, the edge groups of the vertices
    # visited (only read by select's "every type qualifies" test). This walk visits the same vertices in the
    # same order with the same prunes and errno effects, collects the slot groups in the same order, and keeps
    # the per-type qualified counts instead of edge groups; slot-hosting vertices go through dom_slot as in
    # the general walk. test_fast_path.py compares the two on random graphs, jobspecs and policies.

    def _select_one_slot(self, root: Vertex, s: Request, x: bool) -> tuple[int, bool] | None:
        w = self.w
        self._s_shape = s.with_
        self._s_leaf = s.with_[0].type
        self._s_nslots = effective_max(s)
        self._s_need = s.need.get("core", 0) if w.start == 0 else 0
        self._s_groups: list[Egroup] = []
        self._s_qual = 0  # of the slot groups
        self._s_total = 0
        quals = self._s_quals = {}  # vertex type -> count of its qualified edge groups
        # dom_dfv(root): a prune failure is a NONE_MATCH like any other
        u = root
        c = self.constraint
        if (
            (u.status != UP and not w.sat)
            or (c is not None and u.type in NODE_TYPES and not c.match(u.name, u.properties, u.rank))
            or u.blocked(w.start, w.end)
            or (self._s_need and u.free.get("core", 0) < self._s_need)
        ):
            self.dfu.ebusy = True
            return None
        overall = self._one_slot_visit(root)
        avail = root.size if root.size > 0 else 1
        quals[root.type] = quals.get(root.type, 0) + (avail if overall > 0 else 0)
        # dom_finish_graph
        count = s.best_count(self._s_qual)
        if count == 0:
            return None
        # choose_best_k (count <= qual here), then enforce(up_to_root) of the slot groups chosen
        groups = self._s_groups
        if len(groups) > 1:
            cxx_sort(groups, self.cmp_graph, count, True)
        chosen = 0
        left = count
        while left > 0:
            g = groups[chosen]
            g.needs = left if left <= g.count else g.count
            left -= g.count
            chosen += 1
        self.ml = 0
        for q in quals.values():
            if q == 0:
                return None
        marks = self.marks
        pmarks = self.pmarks
        slots = self.slots
        for i in range(chosen):
            g = groups[i]
            slots.append(g)
            for tgt, needs, xe in g.edges:
                if type(tgt) is tuple:
                    p, m = tgt
                    if xe:
                        pmarks[p] = pmarks.get(p, 0) | m
                    v = p.parent
                else:
                    marks[tgt] = (needs, xe)
                    v = tgt.parent
                # enforce_constrained: the edges up to the root are taken shared
                while v is not None and v.parent is not None and v not in marks:
                    marks[v] = (v.size, False)
                    v = v.parent
        return 1, x

    def _one_slot_visit(self, u: Vertex) -> int:
        """dom_dfv(u, [slot], pristine, no exclusivity) for a u already past its prune; returns u's score."""
        factor = 0
        if self.node_centric and u.type == "node":
            factor = self._factor(u)
            self.ml += factor
        if self._s_leaf in u.ctypes:
            # dom_slot: _dom_slot_leaves takes a slot of one pool's leaves directly, else the general way
            out = None if u.children else self._one_pool_slots(u, self._s_shape[0], self._s_nslots)
            if out is None:
                d = Scoring()
                self.dom_slot(u, self._s_shape, self._s_nslots, False, d)
                ev = d.types.get("slot")
                if ev is not None:
                    self._s_groups.extend(ev.groups)
                    self._s_qual += ev.qual
                    self._s_total += ev.total
            elif out:
                self._s_groups.extend(out)
                self._s_qual += len(out)
                self._s_total += len(out)
        else:
            self._one_slot_explore(u)
        self.ml -= factor
        return MATCH_MET + self.ml + u.vid + 1

    def _one_slot_explore(self, u: Vertex) -> None:
        """_explore_dynamically(u, [slot], pristine, multiplier 1): the tally counts new slot groups."""
        dfu = self.dfu
        if u.pools:
            # (the pools: no request here names a leaf type, and pristine leaves errno alone)
            order = [(dfu.weights.get(c, UNTOUCHED), c.uid, c) for c in u.children]
            if len(order) > 1:
                order.sort(key=lambda t: (t[0], t[1]), reverse=True)
            children = [t[2] for t in order]
        else:
            children = dfu.child_order(u)
        w = self.w
        start, end, sat = w.start, w.end, w.sat
        need = self._s_need
        con = self.constraint
        quals = self._s_quals
        per_share = self._s_nslots
        acc = 0
        for c in children:
            if (
                (c.status != UP and not sat)
                or c.blocked(start, end)
                or (need and c.free.get("core", 0) < need)
                or (con is not None and c.type in NODE_TYPES and not con.match(c.name, c.properties, c.rank))
            ):
                dfu.ebusy = True
                continue
            before = self._s_total
            overall = self._one_slot_visit(c)
            avail = c.size if c.size > 0 else 1
            t = c.type
            quals[t] = quals.get(t, 0) + (avail if overall > 0 else 0)
            added = self._s_total - before
            if added > 0:
                acc += added
                if acc >= per_share:  # Tally(per_share, 1): one share is enough
                    break


def request_key(requests: list[Request]) -> tuple:
    """What a list of requests asks, as a value (requests compare by identity, and each match parses its own)."""
    return tuple(
        (r.type, r.min, r.max, r.operator, r.operand, r.exclusive, r.label, r.unit, request_key(r.with_))
        for r in requests
    )


def one_slot_shape(s: Request, root: Vertex) -> bool:
    """The request ``select`` walks with ``_select_one_slot``: one slot of one leaf-or-vertex type that has
    nothing below it in the request, in a graph with no vertex of type slot."""
    if s.type != "slot" or len(s.with_) != 1:
        return False
    e = s.with_[0]
    return not e.with_ and e.type != "slot" and root.type != "slot" and "slot" not in root.cap


class Tally:
    """share_tally_t: whole edge groups packed greedily into shares of ``per_share`` (what is left over when
    a share is complete is not carried: an edge group is never split). ``done`` once ``multiplier`` shares
    are complete (explore_dynamically's is_enough); a multiplier of 0 only counts (cnt_slot)."""

    __slots__ = ("acc", "done", "multiplier", "per_share", "shares")

    def __init__(self, per_share: int, multiplier: int) -> None:
        self.per_share = per_share
        self.multiplier = multiplier
        self.acc = 0
        self.shares = 0
        self.done = False

    def add(self, n: int) -> bool:
        self.acc += n
        if self.acc >= self.per_share:
            self.shares += 1
            self.acc = 0
            if self.multiplier and self.shares >= self.multiplier:
                self.done = True
        return self.done


class DFU:
    """The traverser's state that outlives one match: the policy and the by_outedges weights."""

    def __init__(self, policy) -> None:
        self.policy = policy
        # The comparators of each finish step (fold.hpp: vertex, slot, graph) and how a vertex scores, per
        # match callback: multilevel_id_t (high/low and the named variants), greater_interval_first_t
        # (locality) and var_aware_t (variation).
        if policy.locality:
            self.cmps = (GREATER, GREATER, INTERVAL_GREATER)
        elif policy.variation:
            self.cmps = (LESS, GREATER, LESS)
        else:
            c = GREATER if policy.high else LESS
            self.cmps = (c, c, c)
        self.by_id = not policy.variation
        self.weights: dict[Vertex, int] = {}
        self._orders: dict[Vertex, ChildOrder] = {}  # by_outedges order of a vertex's children, kept
        # flux-sched reports the outcome of a failed update through errno, which its traversals leave set
        # to EBUSY whenever some vertex was pruned or mismatched (and nothing clears): we track the same.
        self.ebusy = False

    def walk_update(self, root: Vertex, sel: Select, excl: bool, x_types: set[str]):
        """upd_dfv: what the marked edges reach. Returns (vertices -> exclusive, pools -> members, touched)."""
        vertices: dict[Vertex, bool] = {}
        pools: dict[Pool, int] = {}
        touched: list[Vertex] = []
        marks = sel.marks
        pmarks = sel.pmarks
        # The marked edges by source, so the walk need not look at every child of a wide vertex.
        kids: dict[Vertex, list[Vertex]] = {}
        for v in marks:
            if v.parent is not None:
                kids.setdefault(v.parent, []).append(v)

        _upd(root, excl, False, x_types, marks, pmarks, kids, vertices, pools, touched)
        return vertices, pools, touched

    def update_weights(self, touched: list[Vertex]) -> None:
        """upd_by_outedges: an edge below which a job landed is weighted by the free cores there now."""
        if not self.policy.stop_on_1:
            return
        w = self.weights
        orders = self._orders
        for v in touched:
            if not v.children and not v.pools:
                continue
            new = subplan_weight(v)
            old = w.get(v, UNTOUCHED)
            if old == new:
                continue
            w[v] = new
            order = orders.get(v.parent)
            if order is not None:
                order.move(v, (-old, -v.uid), (-new, -v.uid))

    def graph_changed(self) -> None:
        self._orders.clear()

    def child_order(self, u: Vertex) -> ChildOrder:
        """u's children by by_outedges order: (weight, uniq_id) descending."""
        order = self._orders.get(u)
        if order is None or len(order) != len(u.children):
            w = self.weights
            # (a stable sort, descending: equal keys keep graph order)
            keyed = sorted((-w.get(c, UNTOUCHED), -c.uid, i, c) for i, c in enumerate(u.children))
            order = self._orders[u] = ChildOrder([((t[0], t[1]), t[3]) for t in keyed])
        return order


def _upd(u: Vertex, excl: bool, mod: bool, x_types, marks, pmarks, kids, vertices, pools, touched) -> int:
    """upd_dfv below u; returns how much was reached. (A module function, not a closure: a recursive
    closure is a reference cycle, garbage for the collector, per match.)"""
    mod = mod or u.type in x_types
    excl = excl or mod
    n = 0
    for p in u.pools:
        got = p.all_mask if mod else pmarks.get(p, 0)
        if got:
            pools[p] = pools.get(p, 0) | got
            n += got.bit_count()
    if mod:
        for c in u.children:
            sub = _upd(c, True, True, x_types, marks, pmarks, kids, vertices, pools, touched)
            if sub > 0:
                touched.append(c)
                n += sub
    else:
        for c in kids.get(u, ()):
            sub = _upd(c, marks[c][1], False, x_types, marks, pmarks, kids, vertices, pools, touched)
            if sub > 0:
                touched.append(c)
                n += sub
    if excl:
        n += 1
    if n > 0:
        vertices[u] = excl
    return n


def subplan_weight(v: Vertex) -> int:
    """The current availability of the last pruning type of v's subtree plan (ALL:core,ALL:node; a node does
    not track itself): free cores under a node, free nodes under anything above nodes."""
    if v.type == "node" or LAST_PRUNE_TYPE == "core":
        return v.free.get("core", 0)
    n = 0
    stack = list(v.children)
    while stack:
        c = stack.pop()
        if c.type == "node":
            if not c.x_now:
                n += 1
        else:
            stack.extend(c.children)
    return n


LAST_PRUNE_TYPE = "node"
