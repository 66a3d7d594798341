"""Where a unit's pods may run: Kubernetes node-selection rules, evaluated and translated to RFC 31.

Two views of the same rules, kept side by side so they cannot drift:

* :func:`node_allows` evaluates them against one node as kube-scheduler does (NodeAffinity and
  TaintToleration plugins; k8s.io/component-helpers/scheduling/corev1/nodeaffinity and
  ``TolerationsTolerateTaint`` in k8s.io/api/core/v1/toleration.go);
* :func:`constraint_for` writes them as a Flux RFC 31 constraint for the jobspec, over the node properties
  :mod:`fluxqueue.placement.graph` puts on every node vertex: ``<label key>`` and ``<label key>=<value>``.

Label rules become properties (``In`` -> ``or`` of ``key=value``, ``NotIn`` -> ``^key=value``, ``Exists`` ->
``key``, ``DoesNotExist`` -> ``^key``). What properties cannot say is resolved against the graph into host lists:
``Gt``/``Lt`` (numeric comparisons), ``matchFields`` on ``metadata.name``, and taints the pod does not tolerate
(``not hostlist``). Only ``NoSchedule`` and ``NoExecute`` taints bind; ``PreferNoSchedule`` is a preference.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

HARD_TAINT_EFFECTS = ("NoSchedule", "NoExecute")


def label_property(key: str, value: str) -> str:
    """The node property standing for label ``key=value``."""
    return f"{key}={value}"


def node_properties(labels: Mapping[str, str]) -> dict[str, str]:
    """Properties of a node vertex: one per label key (value = the label value) and one per ``key=value``."""
    props: dict[str, str] = {}
    for key, value in labels.items():
        props[str(key)] = str(value)
        props[label_property(str(key), str(value))] = "true"
    return props


# --- evaluation against one node ---------------------------------------------------------------------------------


def _expression_matches(expr: dict[str, Any], labels: Mapping[str, str]) -> bool:
    key = expr.get("key", "")
    op = expr.get("operator", "")
    values = [str(v) for v in expr.get("values") or []]
    present = key in labels
    if op == "In":
        return present and labels[key] in values
    if op == "NotIn":
        return not present or labels[key] not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt"):
        if not present or len(values) != 1:
            return False
        try:
            have, want = int(labels[key]), int(values[0])
        except ValueError:
            return False
        return have > want if op == "Gt" else have < want
    return False  # unknown operators match nothing, as in nodeaffinity.NewNodeSelector errors


def _field_matches(expr: dict[str, Any], node_name: str) -> bool:
    # Only metadata.name is a supported field (core/v1 validation of NodeSelectorRequirement in matchFields).
    if expr.get("key") != "metadata.name":
        return False
    values = [str(v) for v in expr.get("values") or []]
    if expr.get("operator") == "In":
        return node_name in values
    if expr.get("operator") == "NotIn":
        return node_name not in values
    return False


def term_matches(term: dict[str, Any], node_name: str, labels: Mapping[str, str]) -> bool:
    """One nodeSelectorTerm: all expressions and fields hold; an empty term matches nothing."""
    exprs = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not exprs and not fields:
        return False
    return all(_expression_matches(e, labels) for e in exprs) and all(
        _field_matches(f, node_name) for f in fields
    )


def tolerates(tolerations: Iterable[dict[str, Any]], taint: dict[str, Any]) -> bool:
    """Whether some toleration tolerates the taint (core/v1 Toleration.ToleratesTaint)."""
    for t in tolerations:
        effect = t.get("effect") or ""
        if effect and effect != taint.get("effect"):
            continue
        key = t.get("key") or ""
        op = t.get("operator") or "Equal"
        if key and key != taint.get("key"):
            continue
        if op == "Exists":
            return True
        if op == "Equal" and (t.get("value") or "") == (taint.get("value") or "") and key:
            return True
    return False


def untolerated_taints(tolerations: Iterable[dict[str, Any]], taints: Iterable[dict[str, Any]]) -> list[dict]:
    tolerations = list(tolerations)
    return [t for t in taints if t.get("effect") in HARD_TAINT_EFFECTS and not tolerates(tolerations, t)]


def node_allows(
    unit: Any, node_name: str, labels: Mapping[str, str], taints: Iterable[dict[str, Any]] = ()
) -> bool:
    """Whether kube-scheduler would let the unit's pods on this node (selector, required affinity, taints)."""
    for key, value in unit.node_selector.items():
        if labels.get(key) != value:
            return False
    terms = unit.node_affinity_terms
    if terms and not any(term_matches(t, node_name, labels) for t in terms):
        return False
    return not untolerated_taints(unit.tolerations, taints)


def why_not(
    unit: Any, node_name: str, labels: Mapping[str, str], taints: Iterable[dict[str, Any]] = ()
) -> str:
    """A short reason the node is not allowed ("" when it is)."""
    for key, value in unit.node_selector.items():
        if labels.get(key) != value:
            return f"nodeSelector {key}={value}"
    terms = unit.node_affinity_terms
    if terms and not any(term_matches(t, node_name, labels) for t in terms):
        return "required node affinity"
    bad = untolerated_taints(unit.tolerations, taints)
    if bad:
        t = bad[0]
        value = f"={t['value']}" if t.get("value") else ""
        return f"untolerated taint {t.get('key')}{value}:{t.get('effect')}"
    return ""


# --- translation to RFC 31 ---------------------------------------------------------------------------------------

NodeView = tuple[str, Mapping[str, str], list[dict[str, Any]]]  # (name, labels, taints)


def _all(parts: list[dict[str, Any]]) -> dict[str, Any] | None:
    parts = [p for p in parts if p is not None]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else {"and": parts}


def _any(parts: list[dict[str, Any]]) -> dict[str, Any]:
    return parts[0] if len(parts) == 1 else {"or": parts}


def _hosts(nodes: Iterable[NodeView], keep: Callable[[NodeView], bool]) -> list[str]:
    return sorted(n[0] for n in nodes if keep(n))


def _expression_constraint(expr: dict[str, Any], nodes: list[NodeView]) -> dict[str, Any]:
    key = str(expr.get("key", ""))
    op = expr.get("operator", "")
    values = [str(v) for v in expr.get("values") or []]
    if op == "In" and values:
        return _any([{"properties": [label_property(key, v)]} for v in values])
    if op == "NotIn":
        if not values:  # matches every node; RFC 31 has no "true", and and/or/not need a non-empty list
            return {"not": [{"hostlist": []}]}
        return {"properties": ["^" + label_property(key, v) for v in values]}
    if op == "Exists":
        return {"properties": [key]}
    if op == "DoesNotExist":
        return {"properties": ["^" + key]}
    # Gt, Lt, In with no values, unknown operators: resolved against the nodes we know.
    return {"hostlist": _hosts(nodes, lambda n: _expression_matches(expr, n[1]))}


def _field_constraint(expr: dict[str, Any], nodes: list[NodeView]) -> dict[str, Any]:
    values = sorted(str(v) for v in expr.get("values") or [])
    if expr.get("key") == "metadata.name" and expr.get("operator") == "In":
        return {"hostlist": values}
    if expr.get("key") == "metadata.name" and expr.get("operator") == "NotIn" and values:
        return {"not": [{"hostlist": values}]}
    return {"hostlist": _hosts(nodes, lambda n: _field_matches(expr, n[0]))}


def _term_constraint(term: dict[str, Any], nodes: list[NodeView]) -> dict[str, Any]:
    parts = [_expression_constraint(e, nodes) for e in term.get("matchExpressions") or []]
    parts += [_field_constraint(f, nodes) for f in term.get("matchFields") or []]
    if not parts:
        return {"hostlist": []}  # an empty term matches no node
    return _all(parts)  # type: ignore[return-value]


def constraint_for(
    unit: Any, nodes: Iterable[NodeView], tainted: list[NodeView] | None = None
) -> dict[str, Any] | None:
    """The RFC 31 constraint that keeps the unit's pods where Kubernetes would allow them (None: anywhere).

    ``nodes`` are the graph's nodes (name, labels, taints); they resolve what properties cannot express.
    ``tainted``: those of them with a taint, when the caller keeps that list (this runs for every jobspec,
    and finding them is a walk of every node).
    """
    if not isinstance(nodes, list):
        nodes = list(nodes)
    parts: list[dict[str, Any]] = []
    if unit.node_selector:
        parts.append({"properties": [label_property(k, v) for k, v in sorted(unit.node_selector.items())]})
    if unit.node_affinity_terms:
        parts.append(_any([_term_constraint(t, nodes) for t in unit.node_affinity_terms]))
    # Only tainted nodes can refuse.
    if tainted is None:
        tainted = [n for n in nodes if n[2]]
    refused = _hosts(tainted, lambda n: bool(untolerated_taints(unit.tolerations, n[2])))
    if refused:
        parts.append({"not": [{"hostlist": refused}]})
    return _all(parts)


def constraint_for_sets(
    pod_sets: Any, nodes: Iterable[NodeView], tainted: list[NodeView] | None = None
) -> dict[str, Any] | None:
    """The constraint for a unit of pod sets: their common constraint, or, when their rules differ, the nodes
    any of them may use (RFC 31 constraints apply to a whole jobspec; the binding keeps each pod on a node its
    own set allows, :func:`fluxqueue.placement.binding.split_allocation`)."""
    sets = list(pod_sets)
    if not isinstance(nodes, list):
        nodes = list(nodes)
    if all(s.same_rules(sets[0]) for s in sets[1:]):
        return constraint_for(sets[0], nodes, tainted)
    parts = [constraint_for(s, nodes, tainted) for s in sets]
    if any(p is None for p in parts):
        return None
    return _any(parts)  # type: ignore[arg-type]


def evaluate(constraint: dict[str, Any] | None, node_name: str, properties: Mapping[str, str]) -> bool:
    """Evaluate an RFC 31 constraint for one node (what a matcher does; used to test the translation)."""
    if constraint is None:
        return True
    ((op, arg),) = constraint.items()
    if op == "properties":
        for prop in arg:
            if prop.startswith("^"):
                if prop[1:] in properties:
                    return False
            elif prop not in properties:
                return False
        return True
    if op == "hostlist":
        return node_name in set(arg)
    if op == "and":
        return all(evaluate(c, node_name, properties) for c in arg)
    if op == "or":
        return any(evaluate(c, node_name, properties) for c in arg)
    if op == "not":
        return not all(evaluate(c, node_name, properties) for c in arg)
    raise ValueError(f"unknown constraint operator {op!r}")
