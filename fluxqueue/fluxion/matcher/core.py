"""The matcher: one graph, its jobs, and the reapi operations (flux-sched reapi_cli semantics, §7.3).

Pure and synchronous; the gRPC server serialises calls to it. Time has no wall clock: "now" is 0, an
allocation occupies [0, duration), a reservation [at, at + duration) at the earliest future ``at`` at which the
request fits given the durations of what is allocated and reserved. Duration 0 means the whole graph window,
so such a job never ends and nothing can be reserved behind it (as in reapi).
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from typing import Any

from fluxqueue.fluxion.matcher.dfu import DFU, Select
from fluxqueue.fluxion.matcher.dfu import Window as DfuWindow
from fluxqueue.fluxion.matcher.graph import DOWN, DRAIN, UP, Pool, ResourceGraph, Span, Vertex
from fluxqueue.fluxion.matcher.jobspec import (
    SYSTEM_MAX_DURATION,
    Jobspec,
    JobspecError,
    check_against_graph,
    parse_jobspec,
)
from fluxqueue.fluxion.matcher.policy import POLICIES, Policy, policy_from_options
from fluxqueue.fluxion.matcher.reader import JGFError, read_jgf
from fluxqueue.fluxion.matcher.writer import write_r

ALLOCATE = "allocate"
ALLOCATE_ORELSE_RESERVE = "allocate_orelse_reserve"
SATISFIABILITY = "satisfiability"
ALLOCATE_WITH_SATISFIABILITY = "allocate_with_satisfiability"
MATCH_OPS = (ALLOCATE, ALLOCATE_ORELSE_RESERVE, SATISFIABILITY, ALLOCATE_WITH_SATISFIABILITY)


class NotInitialized(RuntimeError):
    pass


@dataclass
class Job:
    jobid: int
    start: int
    end: int
    duration: int
    vertices: dict[Vertex, bool]
    pools: dict[Pool, int]
    slots: dict[str, int]
    amounts: dict[str, int]
    overhead: float = 0.0
    r: str = ""

    @property
    def reserved(self) -> bool:
        return self.start > 0

    def node_names(self) -> list[str]:
        return sorted(v.name for v in self.vertices if v.type == "node")


@dataclass
class MatchOutcome:
    """``status``: allocated | reserved | busy | unsatisfiable | satisfiable."""

    status: str
    jobid: int = 0
    at: int = 0
    r: str = ""
    overhead: float = 0.0
    message: str = ""
    nodes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status in ("allocated", "reserved", "satisfiable")


class Matcher:
    def __init__(self) -> None:
        self.graph: ResourceGraph | None = None
        self.policy: Policy = POLICIES["first"]
        self.dfu = DFU(self.policy)
        self._nodes_up: int | None = None  # graph_db metadata.nodes_up, counted when first needed
        self.jobs: dict[int, Job] = {}
        self.next_jobid = 1
        self.epoch = 0
        self.load_seconds = 0.0
        self.match_count = 0
        self.match_total = 0.0
        self.match_min = 0.0
        self.match_max = 0.0

    # -- Init ----------------------------------------------------------------------------------------------

    def init(self, jgf: str | bytes | dict[str, Any], policy: str = "") -> None:
        """Replace the graph (all jobs forgotten, job ids restart at 1). Raises JGFError/PolicyError."""
        pol = policy_from_options(policy)
        t0 = time.perf_counter()
        # A graph is millions of container objects built at once: the cyclic GC would rescan them over and
        # over while they are created (2-3x the parse time), and forever after. Pause it while reading, then
        # freeze the result into the permanent generation. The old graph stays until the new one has been read,
        # so a bad JGF leaves the service as it was.
        gc.unfreeze()
        gc.collect()
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            graph = read_jgf(jgf)
        finally:
            if was_enabled:
                gc.enable()
        gc.freeze()
        self.graph = graph
        self.policy = pol
        self.dfu = DFU(pol)
        self._nodes_up = None
        self.jobs = {}
        self.next_jobid = 1
        self.epoch += 1
        self.load_seconds = time.perf_counter() - t0
        self.match_count = 0
        self.match_total = self.match_min = self.match_max = 0.0

    def _require(self) -> ResourceGraph:
        if self.graph is None:
            raise NotInitialized("the matcher has no graph: call Init first")
        return self.graph

    # -- Match ---------------------------------------------------------------------------------------------

    def match(self, jobspec: str | bytes | dict[str, Any] | Jobspec, op: str = ALLOCATE) -> MatchOutcome:
        """Raises JobspecError for a malformed jobspec (no job id consumed), NotInitialized before Init."""
        graph = self._require()
        if op not in MATCH_OPS:
            raise ValueError(f"unknown match op {op!r}; known: {', '.join(MATCH_OPS)}")
        js = jobspec if isinstance(jobspec, Jobspec) else parse_jobspec(jobspec)
        check_against_graph(js, graph)  # graph-dependent refusals: no job id consumed
        t0 = time.perf_counter()
        if op == SATISFIABILITY:
            ok = self._satisfiable(graph, js)
            dt = time.perf_counter() - t0
            return MatchOutcome("satisfiable" if ok else "unsatisfiable", overhead=dt, message=_why(ok))
        jobid = self.next_jobid
        self.next_jobid += 1  # reapi consumes an id on every allocate attempt, successful or not
        d = js.window
        found = self._schedule(graph, js, op == ALLOCATE_ORELSE_RESERVE)
        if found is None:
            self.dfu.ebusy = True
            sat = self._satisfiable(graph, js)
            dt = time.perf_counter() - t0
            self._account(dt)
            if sat:
                msg = "resources are busy" + (
                    " and no future start was found" if op == ALLOCATE_ORELSE_RESERVE else ""
                )
                return MatchOutcome("busy", jobid=jobid, overhead=dt, message=msg)
            return MatchOutcome("unsatisfiable", jobid=jobid, overhead=dt, message=_why(False))
        start, sel, x_root, x_types = found
        vertices, pools, touched = self.dfu.walk_update(graph.root, sel, x_root, x_types)
        if not vertices:
            # The walk chose, but nothing it chose is reachable from the root (e.g. a slot at node level whose
            # cores sit under sockets): flux-sched's update fails. With errno still 0 that is a refusal that
            # uses no job id; with an EBUSY left by an earlier traversal, a no-match.
            if self.dfu.ebusy:
                dt = time.perf_counter() - t0
                self._account(dt)
                return MatchOutcome("busy", jobid=jobid, overhead=dt, message="resources are busy")
            self.next_jobid -= 1
            raise JobspecError(
                "the jobspec's levels do not follow the graph's: a slot must sit directly above the "
                "resources it holds (e.g. node -> socket -> slot -> core when cores are under sockets)"
            )
        d = min(d, SYSTEM_MAX_DURATION - start)
        job = self._apply_sets(jobid, start, d, vertices, pools, _slots_per_node(sel, vertices, pools))
        self.dfu.update_weights(touched)
        dt = time.perf_counter() - t0
        job.overhead = dt
        self._account(dt)
        return MatchOutcome(
            "reserved" if start else "allocated", jobid, start, job.r, dt, nodes=job.node_names()
        )

    def satisfiable(self, jobspec: str | bytes | dict[str, Any] | Jobspec) -> tuple[bool, str]:
        graph = self._require()
        js = jobspec if isinstance(jobspec, Jobspec) else parse_jobspec(jobspec)
        check_against_graph(js, graph)  # graph-dependent refusals: no job id consumed
        ok = self._satisfiable(graph, js)
        return ok, _why(ok)

    def _satisfiable(self, graph: ResourceGraph, js: Jobspec) -> bool:
        """dfu_traverser_t::is_satisfiable: a select where nothing is held, with what is down counted as there
        (by_status is skipped). flux-sched selects at the end of its window, where a duration-0 job still
        holds what it took; we ask the empty graph instead (a window after every span), so that a request
        blocked only by jobs that never end is busy, not unsatisfiable: the controller gives up on the latter.
        """
        d = js.window
        at = SYSTEM_MAX_DURATION
        if _node_count(js.resources) > len(graph.nodes):
            return False
        root = graph.root
        x_root = any(r.type == root.type and r.exclusive is True for r in js.resources)
        busy = self.dfu.ebusy
        sel = Select(self.dfu, DfuWindow(at, at + d, False, sat=True), js.constraint)
        ok = sel.select(root, js.resources, x_root) is not None
        self.dfu.ebusy = busy or not ok
        return ok

    def _account(self, dt: float) -> None:
        self.match_count += 1
        self.match_total += dt
        self.match_min = dt if self.match_count == 1 else min(self.match_min, dt)
        self.match_max = max(self.match_max, dt)

    def _schedule(self, graph: ResourceGraph, js: Jobspec, reserve: bool):
        """dfu_traverser_t::schedule: select now, else (allocate_orelse_reserve) at the earliest later time at
        which select succeeds. Returns (start, the Select, root exclusive, exclusive types) or None."""
        root = graph.root
        x_root = any(r.type == root.type and r.exclusive is True for r in js.resources)
        # prime_jobspec: every type asked exclusive is taken whole, and so are nodes under a *nodex policy.
        x_types = _exclusive_types(js.resources)
        if self.policy.node_exclusive:
            x_types.add("node")
        if not self._feasible(graph, js, reserve):
            return None
        d = js.window
        sel = Select(self.dfu, DfuWindow(0, d, True), js.constraint)
        if sel.select(root, js.resources, x_root) is not None:
            return 0, sel, x_root, x_types
        if not reserve or not self.jobs:
            return None
        need = _total_need(js)
        caps = root.cap
        if any(caps.get(t, 0) < a for t, a in need.items()):
            return None
        # planner_multi_avail_time_first/next over the root's subtree plan: the candidate starts are the
        # points where what is planned changes (every span's start and end) from now + 1 on; the first one
        # at which select succeeds wins. Points where the leaf amounts in use leave too little are skipped
        # (a necessary condition, as the planner's own aggregate test is).
        self.dfu.ebusy = False  # schedule() clears errno before it looks for a later start
        # The usage of the needed leaf types changes at each job's start and end: one delta per time.
        kinds = list(need)
        deltas: list[dict[int, int]] = [{1: 0} for _ in kinds]  # per needed type: time -> change of free
        jobs = self.jobs.values()
        for k, dk in zip(kinds, deltas, strict=True):
            get = dk.get
            for j in jobs:
                a = j.amounts.get(k, 0)
                if a:
                    dk[j.start] = get(j.start, 0) - a
                    dk[j.end] = get(j.end, 0) + a
        # every point of the planner is a candidate, also where no needed type changes (a node freed)
        times = sorted({1} | {j.start for j in jobs} | {j.end for j in jobs})
        free = [caps.get(k, 0) for k in kinds]
        want = [need[k] for k in kinds]
        for t in times:
            for i, dk in enumerate(deltas):
                free[i] += dk.get(t, 0)
            # A job that would outlast the graph's window is cut at its end (dfu_traverser_t::run).
            if t < 1 or t >= SYSTEM_MAX_DURATION:
                continue
            if any(f < w for f, w in zip(free, want, strict=True)):
                continue
            sel = Select(self.dfu, DfuWindow(t, min(t + d, SYSTEM_MAX_DURATION), False), js.constraint)
            if sel.select(root, js.resources, x_root) is not None:
                return t, sel, x_root, x_types
        return None

    def _feasible(self, graph: ResourceGraph, js: Jobspec, reserve: bool) -> bool:
        """dfu_traverser_t::request_feasible: enough nodes up, and with constraints enough matching nodes
        free now (allocate) or at the end of the graph's window (allocate_orelse_reserve: only what never
        ends, a duration-0 job, holds a node there)."""
        target = _node_count(js.resources)
        nodes = graph.nodes.values()
        up = self._nodes_up
        if up is None:
            up = self._nodes_up = sum(1 for v in nodes if v.status == UP)
        if js.constraint is None and target <= up:
            return True
        if target > up:
            return False
        at, end = (SYSTEM_MAX_DURATION - 1, SYSTEM_MAX_DURATION) if reserve else (0, js.window)
        feasible = 0
        c = js.constraint
        for v in nodes:
            if v.status == UP and c.match(v.name, v.properties, v.rank) and not v.blocked(at, end):
                feasible += 1
                if feasible >= target:
                    return True
        return feasible >= target

    # -- applying and releasing ----------------------------------------------------------------------------

    def _apply_sets(self, jobid, start, duration, vertices, pools, slots) -> Job:
        end = start + duration
        amounts: dict[str, int] = {}
        for v, excl in vertices.items():
            v.spans[jobid] = Span(start, end, excl)
            if excl:
                v.n_excl += 1
            if start == 0:
                v.n_now += 1
                if excl:
                    v.x_now = True
            else:
                v.n_res += 1
        taken: dict[Vertex, dict[str, int]] = {}  # pool parent -> type -> amount taken now
        for p, mask in pools.items():
            p.spans[jobid] = Span(start, end, True, mask)
            amount = mask.bit_count() * p.size
            t = p.type
            amounts[t] = amounts.get(t, 0) + amount
            if start == 0:
                p.now_mask |= mask
                d = taken.get(p.parent)
                if d is None:
                    taken[p.parent] = {t: -amount}
                else:
                    d[t] = d.get(t, 0) - amount
            else:
                p.n_res += 1
        if taken:
            _adjust_free_many(taken)
        job = Job(jobid, start, end, duration, vertices, pools, slots, amounts)
        job.r = write_r(vertices, pools, slots)
        self.jobs[jobid] = job
        return job

    def _release_sets(self, job: Job, vertices, pools) -> None:
        jobid = job.jobid
        for v in vertices:
            s = v.spans.pop(jobid, None)
            if s is None:
                continue
            if s.excl:
                v.n_excl -= 1
            if s.start == 0:
                v.n_now -= 1
                if s.excl:
                    v.x_now = False
            else:
                v.n_res -= 1
        freed: dict[Vertex, dict[str, int]] = {}  # pool parent -> type -> amount freed now
        for p, mask in pools.items():
            s = p.spans.get(jobid)
            if s is None:
                continue
            mask &= s.mask
            s.mask &= ~mask
            if not s.mask:
                del p.spans[jobid]
                if s.start != 0:
                    p.n_res -= 1
            if s.start == 0:
                p.now_mask &= ~mask
                t = p.type
                d = freed.get(p.parent)
                if d is None:
                    freed[p.parent] = {t: mask.bit_count() * p.size}
                else:
                    d[t] = d.get(t, 0) + mask.bit_count() * p.size
        if freed:
            _adjust_free_many(freed)

    def cancel(self, jobid: int) -> bool:
        """Free an allocation or reservation; False when the id is unknown (reapi noent_ok)."""
        job = self.jobs.pop(jobid, None)
        if job is None:
            return False
        self._release_sets(job, job.vertices, job.pools)
        return True

    def partial_cancel(
        self, jobid: int, r: str | dict | None = None, nodes: list[str] | None = None
    ) -> tuple[bool, bool]:
        """Release part of a job: the vertices of R (by uniq_id) and/or everything on the named nodes.
        Returns (full_removal, noent)."""
        graph = self._require()
        job = self.jobs.get(jobid)
        if job is None:
            return False, True
        rel_pools: dict[Pool, int] = {}
        rel_vertices: set[Vertex] = set()
        if r:
            for uid in _r_uids(r):
                v = graph.by_uid.get(uid)
                if v is not None and v in job.vertices:
                    if v.type == "node" or job.vertices[v]:
                        rel_vertices.add(v)
                    continue
                hit = graph.find_leaf(uid)
                if hit is not None and hit[0] in job.pools:
                    rel_pools[hit[0]] = rel_pools.get(hit[0], 0) | (1 << hit[1])
        for name in nodes or ():
            v = graph.nodes.get(name)
            if v is not None and v in job.vertices:
                rel_vertices.add(v)
        # Releasing a vertex releases everything the job holds below it.
        below: set[Vertex] = set()
        for v in job.vertices:
            a = v
            while a is not None:
                if a in rel_vertices:
                    below.add(v)
                    break
                a = a.parent
        for p, mask in job.pools.items():
            a = p.parent
            while a is not None:
                if a in rel_vertices:
                    rel_pools[p] = mask
                    break
                a = a.parent
        rel_pools = {p: m & job.pools[p] for p, m in rel_pools.items() if p in job.pools}
        self._release_sets(job, below, rel_pools)
        for v in below:
            job.vertices.pop(v, None)
            if v.type == "node":
                job.slots.pop(v.name, None)
        for p, m in rel_pools.items():
            left = job.pools[p] & ~m
            job.amounts[p.type] = job.amounts.get(p.type, 0) - m.bit_count() * p.size
            if left:
                job.pools[p] = left
            else:
                del job.pools[p]
        if not job.pools and not any(v.type == "node" for v in job.vertices):
            self.cancel(jobid)
            return True, False
        job.r = write_r(job.vertices, job.pools, job.slots)
        return False, False

    def update_allocate(self, jobid: int, r: str | dict, duration: int = 0, at: int = 0) -> Job:
        """Replay an existing allocation under ``jobid`` (flux-sched update_allocate, restart recovery).

        Every vertex of R must exist and be free over the job's window. Raises ValueError otherwise."""
        from fluxqueue.fluxion.jgf import loads

        graph = self._require()
        if jobid in self.jobs:
            raise ValueError(f"job id {jobid} is already in use")
        if jobid <= 0:
            raise ValueError("job id must be positive")
        doc = loads(r) if isinstance(r, str | bytes) else r
        d = duration if duration > 0 else SYSTEM_MAX_DURATION
        start, end = max(at, 0), max(at, 0) + d
        vertices: dict[Vertex, bool] = {}
        pools: dict[Pool, int] = {}
        for item in (doc.get("graph") or {}).get("nodes") or []:
            md = item.get("metadata") or {}
            uid = int(md.get("uniq_id", item.get("id")))
            excl = bool(md.get("exclusive", False))
            v = graph.by_uid.get(uid)
            if v is not None:
                vertices[v] = excl
                continue
            hit = graph.find_leaf(uid)
            if hit is None:
                raise ValueError(f"vertex {uid} of the allocation is not in the graph")
            pools[hit[0]] = pools.get(hit[0], 0) | (1 << hit[1])
        for v, excl in vertices.items():
            if (excl and v.used(start, end)) or v.blocked(start, end):
                raise ValueError(f"vertex {v.path} is not free for job {jobid}")
        for p, mask in pools.items():
            if p.busy_mask(start, end) & mask:
                raise ValueError(f"a {p.type} under {p.parent.path} is already allocated")
            vertices.setdefault(p.parent, False)
        for v in list(vertices):
            a = v.parent
            while a is not None and a not in vertices:
                vertices[a] = False
                a = a.parent
        slots = {
            str(k): int(n)
            for k, n in ((doc.get("graph") or {}).get("metadata") or {}).get("fluxqueue.io/slots", {}).items()
        }
        job = self._apply_sets(jobid, start, d, vertices, pools, slots)
        # flux-sched's update path reorders by_outedges as a match does
        self.dfu.update_weights([v for v in vertices if v.parent is not None])
        self.next_jobid = max(self.next_jobid, jobid + 1)
        return job

    # -- graph changes -------------------------------------------------------------------------------------

    def set_node_status(self, names: list[str], status: str) -> list[str]:
        graph = self._require()
        if status not in (UP, DOWN, DRAIN):
            raise ValueError(f"status must be up, down or drain, got {status!r}")
        unknown = []
        for n in names:
            v = graph.nodes.get(n)
            if v is None:
                unknown.append(n)
            else:
                v.status = status
        self._nodes_up = None
        return unknown

    def add_subgraph(self, jgf: str | dict, parent_path: str = "") -> int:
        """Attach the vertices of ``jgf`` below the vertex at ``parent_path`` (default the root)."""
        graph = self._require()
        parent = graph.root
        if parent_path and parent_path != graph.root.path:
            parent = next((v for v in graph.vertices() if v.path == parent_path), None)
            if parent is None:
                raise JGFError(f"no vertex with containment path {parent_path!r}")
        sub = read_jgf(_wrap_forest(jgf), root_id=_SUBGRAPH_ROOT)
        # read_jgf needs one root: _wrap_forest adds a synthetic one that we drop here.
        known = set(graph.by_uid)
        added = 0
        for top in sub.root.children:
            for v in _walk(top):
                if v.uid in known:
                    raise JGFError(f"vertex uniq_id {v.uid} already exists in the graph")
                if v.type == "node" and v.name in graph.nodes:
                    raise JGFError(f"node {v.name!r} already exists in the graph")
                for p in v.pools:
                    if any(graph.find_leaf(p.uid(i)) or p.uid(i) in known for i in range(p.count)):
                        raise JGFError(f"a {p.type} uniq_id under {v.path} already exists in the graph")
        for top in list(sub.root.children):
            top.parent = parent
            parent.children.append(top)
            for v in _walk(top):
                graph.register(v)
                added += 1
                for p in v.pools:
                    graph.register_pool(p)
                    added += p.count
            a = parent
            while a is not None:
                a.cap[top.type] = a.cap.get(top.type, 0) + 1
                for t, amt in top.cap.items():
                    a.cap[t] = a.cap.get(t, 0) + amt
                for t, amt in top.free.items():
                    a.free[t] = a.free.get(t, 0) + amt
                a = a.parent
        parent.children.sort(key=lambda c: (c.vid, c.uid))
        parent.ctypes = frozenset(parent.child_types())
        _reindex_up(parent)
        self.dfu.graph_changed()
        self._nodes_up = None
        graph.n_vertices += added
        graph.n_edges += added
        return added

    def remove_nodes(self, names: list[str], force: bool = False) -> dict[str, list]:
        graph = self._require()
        removed, busy, unknown, affected = [], [], [], set()
        for n in names:
            v = graph.nodes.get(n)
            if v is None:
                unknown.append(n)
                continue
            holders = set()
            for x in _walk(v):
                holders.update(x.spans)
                for p in x.pools:
                    holders.update(p.spans)
            if holders and not force:
                busy.append(n)
                continue
            for jobid in sorted(holders):
                affected.add(jobid)
                self.partial_cancel(jobid, nodes=[n])
            parent = v.parent
            parent.children.remove(v)
            parent.ctypes = frozenset(parent.child_types())
            count = 0
            for x in _walk(v):
                graph.by_uid.pop(x.uid, None)
                if x.type == "node":
                    graph.nodes.pop(x.name, None)
                count += 1 + sum(p.count for p in x.pools)
                for p in x.pools:
                    for i in range(p.count) if p.uids is not None else ():
                        graph.pool_of_uid.pop(p.uid(i), None)
            a = parent
            while a is not None:
                a.cap[v.type] = a.cap.get(v.type, 0) - 1
                for t, amt in v.cap.items():
                    a.cap[t] = a.cap.get(t, 0) - amt
                for t, amt in v.free.items():
                    a.free[t] = a.free.get(t, 0) - amt
                a = a.parent
            _reindex_up(parent)
            self.dfu.graph_changed()
            self._nodes_up = None
            graph.n_vertices -= count
            graph.n_edges -= count
            removed.append(n)
        return {"removed": removed, "busy": busy, "unknown": unknown, "jobs_affected": sorted(affected)}

    # -- queries -------------------------------------------------------------------------------------------

    def info(self, jobid: int) -> Job | None:
        return self.jobs.get(jobid)

    def stats(self) -> dict[str, Any]:
        g = self.graph
        out: dict[str, Any] = {
            "initialized": g is not None,
            "policy": self.policy.name,
            "epoch": self.epoch,
            "next_jobid": self.next_jobid,
            "load_seconds": self.load_seconds,
            "matches": self.match_count,
            "match_min_seconds": self.match_min,
            "match_max_seconds": self.match_max,
            "match_avg_seconds": self.match_total / self.match_count if self.match_count else 0.0,
            "jobs_allocated": sum(1 for j in self.jobs.values() if not j.reserved),
            "jobs_reserved": sum(1 for j in self.jobs.values() if j.reserved),
        }
        if g is None:
            out.update(vertices=0, edges=0, nodes=0, nodes_down=0, nodes_drained=0, resources={})
            return out
        leaf_types = _leaf_types(g.root)
        out.update(
            vertices=g.n_vertices,
            edges=g.n_edges,
            nodes=len(g.nodes),
            nodes_down=sum(1 for v in g.nodes.values() if v.status == DOWN),
            nodes_drained=sum(1 for v in g.nodes.values() if v.status == DRAIN),
            resources={
                t: {
                    "capacity": g.root.cap.get(t, 0),
                    "free": g.root.free.get(t, 0) if t in leaf_types else None,
                }
                for t in sorted(g.root.cap)
            },
        )
        return out


def _adjust_free(v: Vertex | None, t: str, delta: int) -> None:
    """Add ``delta`` to the free amount of ``t`` on v and its ancestors."""
    while v is not None:
        free = v.free
        free[t] = free.get(t, 0) + delta
        v = v.parent


def _adjust_free_many(deltas: dict[Vertex, dict[str, int]]) -> None:
    """_adjust_free for many vertices at once: each ancestor is updated once per level, not once per pool."""
    if len(deltas) == 1:
        ((v, d),) = deltas.items()
        for t, a in d.items():
            _adjust_free(v, t, a)
        return
    while deltas:
        up: dict[Vertex, dict[str, int]] = {}
        for v, d in deltas.items():
            free = v.free
            for t, a in d.items():
                free[t] = free.get(t, 0) + a
            parent = v.parent
            if parent is not None:
                pd = up.get(parent)
                if pd is None:
                    up[parent] = dict(d)
                else:
                    for t, a in d.items():
                        pd[t] = pd.get(t, 0) + a
        deltas = up


def _reindex_up(v: Vertex | None) -> None:
    while v is not None:
        v.reindex()
        v = v.parent


def _why(ok: bool) -> str:
    return "" if ok else "the request can never be satisfied by this graph (even with every resource free)"


def _exclusive_types(reqs) -> set[str]:
    out: set[str] = set()
    for r in reqs:
        if r.exclusive is True:
            out.add(r.type)
        out |= _exclusive_types(r.with_)
    return out


def _node_count(reqs, mult: int = 1) -> int:
    """prime_jobspec's node aggregate: nodes asked for in all, counting each level's minimum."""
    n = 0
    for r in reqs:
        if r.type == "node":
            n += r.min * mult
        n += _node_count(r.with_, r.min * mult)
    return n


def _slots_per_node(sel, vertices: dict, pools: dict) -> dict[str, int]:
    out: dict[str, int] = {}
    for g in sel.slots:
        if not g.edges:
            continue
        tgt = g.edges[0][0]
        if isinstance(tgt, tuple):
            p, mask = tgt
            if not pools.get(p, 0) & mask:
                continue
            v = p.parent
        else:
            if tgt not in vertices:
                continue
            v = tgt
        node = v
        while node is not None and node.type != "node":
            node = node.parent
        key = (node or v).name
        out[key] = out.get(key, 0) + 1
    return out


def _total_need(js: Jobspec) -> dict[str, int]:
    need: dict[str, int] = {}
    for r in js.resources:
        for t, a in r.need.items():
            need[t] = need.get(t, 0) + a * r.min
    return need


def _walk(v: Vertex):
    stack = [v]
    while stack:
        x = stack.pop()
        yield x
        stack.extend(x.children)


def _leaf_types(root: Vertex) -> set[str]:
    return {p.type for v in _walk(root) for p in v.pools}


def _r_uids(r: str | dict) -> list[int]:
    from fluxqueue.fluxion.jgf import loads

    doc = loads(r) if isinstance(r, str | bytes) else r
    out = []
    for item in (doc.get("graph") or {}).get("nodes") or []:
        md = item.get("metadata") or {}
        out.append(int(md.get("uniq_id", item.get("id"))))
    return out


_SUBGRAPH_ROOT = "__subgraph_root__"


def _wrap_forest(jgf: str | dict) -> dict:
    """Give a subgraph (possibly several top vertices) one synthetic root so the reader accepts it."""
    from fluxqueue.fluxion.jgf import loads

    doc = loads(jgf) if isinstance(jgf, str | bytes) else jgf
    graph = doc.get("graph") if isinstance(doc, dict) else None
    if not isinstance(graph, dict) or not isinstance(graph.get("nodes"), list):
        raise JGFError("subgraph JGF needs graph.nodes as a list")
    nodes = graph["nodes"]
    edges = list(graph.get("edges") or [])
    targets = {str(e.get("target")) for e in edges if isinstance(e, dict)}
    root_id = _SUBGRAPH_ROOT
    tops = [str(v.get("id")) for v in nodes if isinstance(v, dict) and str(v.get("id")) not in targets]
    synthetic = {"id": root_id, "metadata": {"type": "__root__", "uniq_id": -1, "paths": {"containment": ""}}}
    edges += [{"source": root_id, "target": t} for t in tops]
    return {"graph": {"nodes": [synthetic, *nodes], "edges": edges}}
