"""Workflows in a run: the units linked by ``fluxqueue.io/dependency``, each DAG's makespan (first submission
to last end) beside its critical path (the shortest it could have been on an empty cluster: the longest chain
of runtimes its dependencies impose). Their ratio says what queueing cost the workflow. Pure functions.

The critical path follows sbatch(1)'s meaning of each condition: a dependent of ``afterok``/``afterany``/
``afternotok`` can start once its target ended, one of ``after:t+m`` ``m`` minutes after the target started.
Units that never ran (their dependency never held) are not on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fluxqueue.dependencies.spec import AFTER, SINGLETON, DependencyError, parse_dependency
from fluxqueue.kube import names
from fluxqueue.sim.workload.model import WorkloadItem, parse_sim_seconds


def _metas(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The object's metadata and its pod templates' (where a Job or JobSet keeps its annotations)."""
    out = [obj.get("metadata") or {}]
    stack = [obj.get("spec") or {}]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "template" in node and isinstance(node["template"], dict):
                out.append(node["template"].get("metadata") or {})
            stack.extend(v for v in node.values() if isinstance(v, dict | list))
        elif isinstance(node, list):
            stack.extend(v for v in node if isinstance(v, dict | list))
    return out


def _annotation(item: WorkloadItem, key: str) -> list[str]:
    return [
        str(v)
        for obj in item.manifests
        for meta in _metas(obj)
        if (v := (meta.get("annotations") or {}).get(key)) is not None
    ]


def runtime(item: WorkloadItem) -> float:
    """The unit's runtime in simulated seconds: its longest pod's ``sim.fluxqueue.io/runtime``."""
    values = [parse_sim_seconds(v, item.key) for v in _annotation(item, names.SIM_RUNTIME)]
    return max(values, default=0.0)


def edges(items: Iterable[WorkloadItem]) -> list[tuple[str, str, str, float]]:
    """(dependent key, target key, condition, delay s) for every dependency term naming a unit of the run."""
    items = list(items)
    by_name: dict[tuple[str, str], list[str]] = {}
    for item in items:
        by_name.setdefault((item.namespace, item.name), []).append(item.key)
    out = []
    for item in items:
        texts = _annotation(item, names.ANNOTATION_DEPENDENCY)
        if not texts:
            continue
        try:
            dep = parse_dependency(texts[0])
        except DependencyError:
            continue  # refused at admission: it never ran
        for term in dep.terms:
            if term.condition == SINGLETON:
                continue
            for target in by_name.get((item.namespace, term.target), []):
                out.append((item.key, target, term.condition, float(term.delay_s)))
    return out


def dag_report(items: Iterable[WorkloadItem], units: Mapping[str, Any], time_scale: float) -> list[dict]:
    """One entry per DAG of two or more units: its units, makespan and critical path (simulated seconds).

    ``units``: the recorder's units by key (``submitted``, ``first_bound``, ``finished`` in wall seconds).
    """
    items = [i for i in items if i.key in units]
    by_key = {i.key: i for i in items}
    links = edges(items)
    parent = {k: k for k in by_key}

    def find(k: str) -> str:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for dependent, target, _c, _d in links:
        parent[find(dependent)] = find(target)
    groups: dict[str, list[str]] = {}
    for k in by_key:
        groups.setdefault(find(k), []).append(k)
    ran = {k for k, u in units.items() if getattr(u, "first_bound", None) is not None}
    needs: dict[str, list[tuple[str, str, float]]] = {}
    for dependent, target, condition, delay in links:
        needs.setdefault(dependent, []).append((target, condition, delay))
    start: dict[str, tuple[float, list[str]]] = {}  # earliest start on an empty cluster, and its chain

    def earliest(k: str, seen: frozenset[str] = frozenset()) -> tuple[float, list[str]]:
        if k in start:
            return start[k]
        best: tuple[float, list[str]] = (0.0, [])
        for target, condition, delay in needs.get(k, []):
            if target not in ran or target in seen:
                continue
            t_start, chain = earliest(target, seen | {k})
            at = t_start + (delay if condition == AFTER else runtime(by_key[target]))
            if at > best[0]:
                best = (at, chain)
        start[k] = (best[0], [*best[1], by_key[k].name])
        return start[k]

    out = []
    for members in groups.values():
        if len(members) < 2:
            continue
        critical, path = 0.0, []
        for k in members:
            if k not in ran:
                continue
            s, chain = earliest(k)
            if s + runtime(by_key[k]) > critical:
                critical, path = s + runtime(by_key[k]), chain
        submitted = min(units[k].submitted for k in members)
        finished = [units[k].finished for k in members if units[k].finished is not None]
        makespan = (max(finished) - submitted) * time_scale if finished else None
        out.append(
            {
                "units": len(members),
                "ran": len([k for k in members if k in ran]),
                "makespan_s": makespan,
                "critical_path_s": critical,
                "critical_path": path,
                "stretch": (makespan / critical) if makespan is not None and critical > 0 else None,
            }
        )
    out.sort(key=lambda d: d["critical_path"][:1])
    return out
