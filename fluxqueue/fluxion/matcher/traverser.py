"""Depth-first matching of a jobspec against the graph (flux-sched dfu_impl.cpp semantics).

At each vertex ``u`` with the requests of the current jobspec level (``test()`` in dfu_impl):
* SLOT: a slot is pending (at this level, or the one child slot of the request ``u`` matches) and ``u`` has
  direct children of every type the slot holds: ``u`` hosts slots (dfu_impl ``slot_match``);
* RESOURCE: ``u``'s type is one of the requests: ``u`` is one unit of it and its ``with`` must be satisfied
  by ``u``'s direct children;
* otherwise, before the first match (pristine), the walk passes through ``u`` (a jobspec may omit upper
  levels); after it, ``u`` does not match.
Everything in a slot is exclusive; above a slot a vertex is shared unless the request says ``exclusive`` or
the policy is node-exclusive. Vertices held exclusively, down or drained (not for satisfiability) or failing
RFC 31 constraints are pruned, as are subtrees whose free amounts cannot cover one unit (prune filters).
"""

from __future__ import annotations

from dataclasses import dataclass

from fluxqueue.fluxion.matcher.constraints import Constraint
from fluxqueue.fluxion.matcher.graph import UP, Pool, Vertex
from fluxqueue.fluxion.matcher.jobspec import Request
from fluxqueue.fluxion.matcher.policy import Policy

NODE_TYPES = ("node", "storage_node")


class VUnit:
    """A vertex matched as one unit of a request; parts are what its ``with`` took below it."""

    __slots__ = ("excl", "parts", "v")

    def __init__(self, v: Vertex, excl: bool, parts: list) -> None:
        self.v, self.excl, self.parts = v, excl, parts


class PUnit:
    """Members of a pool taken (exclusively)."""

    __slots__ = ("mask", "pool")

    def __init__(self, pool: Pool, mask: int) -> None:
        self.pool, self.mask = pool, mask


class SUnit:
    """One slot hosted at ``host``."""

    __slots__ = ("host", "parts")

    def __init__(self, host: Vertex, parts: list) -> None:
        self.host, self.parts = host, parts


@dataclass
class Window:
    start: int
    end: int
    empty: bool = False  # satisfiability: every resource free and up

    @property
    def now(self) -> bool:
        return self.start == 0 and not self.empty


def pick_bits(free: int, n: int, high: bool) -> int:
    """n set bits of ``free``: the highest ones for high policies, else the lowest."""
    if free.bit_count() == n:
        return free
    out = 0
    if high:
        for _ in range(n):
            b = 1 << (free.bit_length() - 1)
            out |= b
            free ^= b
    else:
        for _ in range(n):
            b = free & -free
            out |= b
            free ^= b
    return out


class Traverser:
    def __init__(self, policy: Policy, window: Window, constraint: Constraint | None) -> None:
        self.policy = policy
        self.high = policy.high
        self.w = window
        self.constraint = constraint

    # -- helpers -------------------------------------------------------------------------------------------

    def _children(self, u: Vertex):
        return reversed(u.children) if self.high else u.children

    def _candidates(self, u: Vertex, reqs: list[Request]):
        """Children worth visiting: at t=0, only those with some free amount of every type a request needs."""
        children = u.children
        if not self.w.now or len(children) < 2:
            yield from self._children(u)
            return
        cand = 0
        full = (1 << len(children)) - 1
        for r in reqs:
            m = full
            for t in r.need:
                m &= u.nonzero.get(t, 0)
            cand |= m
        if self.high:
            while cand:
                b = cand.bit_length() - 1
                cand ^= 1 << b
                yield children[b]
        else:
            while cand:
                low = cand & -cand
                cand ^= low
                yield children[low.bit_length() - 1]

    def _ok(self, u: Vertex) -> bool:
        w = self.w
        if not w.empty and u.status != UP:
            return False
        if self.constraint is not None and u.type in NODE_TYPES:
            if not self.constraint.match(u.name, u.properties, u.rank):
                return False
        return w.empty or not u.blocked(w.start, w.end)

    def _enough(self, u: Vertex, need: dict[str, int]) -> bool:
        have = u.free if self.w.now else u.cap
        for t, a in need.items():
            if have.get(t, 0) < a:
                return False
        return True

    def _pool_free(self, p: Pool, taken: dict[Pool, int]) -> int:
        w = self.w
        if w.empty:
            free = p.all_mask
        else:
            free = p.all_mask & ~p.busy_mask(w.start, w.end) & ~p.down_mask
        t = taken.get(p)
        return free & ~t if t else free

    def _take_leaves(self, u: Vertex, r: Request, taken: dict[Pool, int]) -> list | None:
        """Members of u's pools of r.type covering r's count (an amount in the pools' unit); consumed whole."""
        pools = [p for p in u.pools if p.type == r.type]
        if not pools:
            return None
        if self.high:
            pools.reverse()
        frees = [(p, self._pool_free(p, taken)) for p in pools]
        avail = sum(f.bit_count() * p.size for p, f in frees)
        target = r.best_count(avail)
        if target == 0:
            return None
        out = []
        got = 0
        for p, f in frees:
            if got >= target or not f:
                continue
            if p.size <= 0:
                continue
            n = min(f.bit_count(), -(-(target - got) // p.size))
            m = pick_bits(f, n, self.high)
            out.append(PUnit(p, m))
            taken[p] = taken.get(p, 0) | m
            got += n * p.size
        if got < target:
            return None
        return out

    # -- the walk ------------------------------------------------------------------------------------------

    def visit(self, u: Vertex, reqs: list[Request], pristine: bool, x_in: bool, want: dict) -> dict | None:
        slot_req = match_req = None
        for r in reqs:
            if r.type == u.type:
                match_req = r
            elif r.is_slot:
                slot_req = r
        inner = False
        if match_req is not None and slot_req is None:
            for c in match_req.with_:
                if c.is_slot:
                    slot_req, inner = c, True
        hosting = slot_req is not None and all(e.type in u.ctypes for e in slot_req.with_)
        if not hosting and match_req is None:
            if not pristine:
                return None
            return self._pass(u, reqs, x_in, want)
        if not self._ok(u):
            return None
        if match_req is None:  # u hosts slots of a slot request at this level
            if not self._enough(u, slot_req.need):
                return None
            slots = self._slots(u, slot_req, want.get(slot_req, slot_req.max))
            return {slot_req: slots} if slots else None
        r = match_req
        x = x_in or r.exclusive is True or (self.policy.node_exclusive and u.type in NODE_TYPES)
        w = self.w
        if x and not w.empty and u.used(w.start, w.end):
            return None
        if not self._enough(u, r.need):
            return None
        if hosting and inner:
            slots = self._slots(u, slot_req, slot_req.max)
            n = slot_req.best_count(len(slots))
            if n == 0:
                return None
            return {r: [VUnit(u, x, slots[:n])]}
        if not r.with_:
            return {r: [VUnit(u, x, [])]}
        parts = self._fill(u, r.with_, x)
        if parts is None:
            return None
        return {r: [VUnit(u, x, parts)]}

    def _pass(self, u: Vertex, reqs: list[Request], x_in: bool, want: dict) -> dict | None:
        if not self._ok(u):
            return None
        remaining = {r: want.get(r, r.max) for r in reqs}
        got: dict[Request, list] = {r: [] for r in reqs}
        if self.policy.locality and len(u.children) > 1:
            return self._pass_locality(u, reqs, x_in, remaining, got)
        for c in self._candidates(u, reqs):
            sub = self.visit(c, reqs, True, x_in, remaining)
            if not sub:
                continue
            done = True
            for r, units in sub.items():
                got[r].extend(units)
                remaining[r] -= len(units)
            for r in reqs:
                if remaining[r] > 0:
                    done = False
            if done:
                break
        return got if any(got.values()) else None

    def _pass_locality(self, u, reqs, x_in, remaining, got) -> dict | None:
        primary = reqs[0]
        cands = []
        # Uncapped: best fit needs to know how much each child could hold, not just whether it holds enough.
        unbounded = dict.fromkeys(reqs, 1 << 40)
        for c in self._children(u):
            sub = self.visit(c, reqs, True, x_in, unbounded)
            if sub:
                cands.append((c, sub))
        while cands and any(remaining[r] > 0 for r in reqs):
            need = remaining[primary]
            sizes = [len(sub.get(primary, ())) for _, sub in cands]
            fits = [i for i, s in enumerate(sizes) if s >= need]
            if fits:
                i = min(fits, key=lambda i: sizes[i])
            else:
                i = max(range(len(cands)), key=lambda i: sizes[i])
            _, sub = cands.pop(i)
            for r, units in sub.items():
                take = units[: max(remaining[r], 0)]
                got[r].extend(take)
                remaining[r] -= len(take)
        return got if any(got.values()) else None

    def _fill(self, u: Vertex, reqs: list[Request], x: bool) -> list | None:
        """Satisfy every request of ``reqs`` from u's direct children (non-pristine)."""
        parts: list = []
        taken: dict[Pool, int] = {}
        vreqs = []
        for r in reqs:
            if not r.with_ and not r.is_slot and any(p.type == r.type for p in u.pools):
                leaves = self._take_leaves(u, r, taken)
                if leaves is None:
                    return None
                parts.extend(leaves)
            else:
                vreqs.append(r)
        if vreqs:
            remaining = {r: r.max for r in vreqs}
            got: dict[Request, list] = {r: [] for r in vreqs}
            for c in self._children(u):
                sub = self.visit(c, vreqs, False, x, remaining)
                if not sub:
                    continue
                for r, units in sub.items():
                    got[r].extend(units)
                    remaining[r] -= len(units)
                if all(remaining[r] <= 0 for r in vreqs):
                    break
            for r in vreqs:
                n = r.best_count(len(got[r]))
                if n == 0:
                    return None
                parts.extend(got[r][:n])
        return parts

    def _slots(self, u: Vertex, s: Request, k: int) -> list[SUnit]:
        """Up to k slots of shape s.with_ from u's direct children (dfu_impl dom_slot)."""
        slots: list[SUnit] = []
        taken: dict[Pool, int] = {}
        used_children: set[int] = set()
        for _ in range(k):
            parts: list = []
            before = dict(taken)
            ok = True
            for e in s.with_:
                if not e.with_ and any(p.type == e.type for p in u.pools):
                    leaves = self._take_leaves(u, e, taken)
                    if leaves is None:
                        ok = False
                        break
                    parts.extend(leaves)
                    continue
                need = e.max
                units = []
                for c in self._children(u):
                    if c.type != e.type or c.uid in used_children:
                        continue
                    sub = self.visit(c, [e], False, True, {e: 1})
                    if sub and sub.get(e):
                        units.extend(sub[e])
                        used_children.add(c.uid)
                        if len(units) >= need:
                            break
                n = e.best_count(len(units))
                if n == 0:
                    ok = False
                    break
                parts.extend(units[:n])
            if not ok:
                taken.clear()
                taken.update(before)
                break
            slots.append(SUnit(u, parts))
        return slots

    def match(self, root: Vertex, reqs: list[Request]) -> list | None:
        """Units satisfying the top-level requests, or None."""
        want = {r: r.max for r in reqs}
        res = self.visit(root, reqs, True, False, want)
        if not res:
            return None
        units: list = []
        for r in reqs:
            n = r.best_count(len(res.get(r, ())))
            if n == 0:
                return None
            units.extend(res[r][:n])
        return units
