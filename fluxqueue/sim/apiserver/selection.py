"""Label and field selectors, parsed once and matched against plain dict objects.

Label selector grammar as in k8s.io/apimachinery/pkg/labels/selector.go: ``a=b``, ``a==b``, ``a!=b``,
``a in (x,y)``, ``a notin (x)``, ``a`` (exists), ``!a`` (does not exist), comma separated (AND).
Field selectors (k8s.io/apimachinery/pkg/fields): ``path=value``, ``path==value``, ``path!=value``; which
paths a type supports is per type (pods: metadata.name/namespace, spec.nodeName, spec.schedulerName,
spec.serviceAccountName, status.phase, status.podIP, spec.restartPolicy; everything: metadata.name and
metadata.namespace), pkg/registry/core/pod/strategy.go PodToSelectableFields.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .errors import bad_request

Requirement = tuple[str, str, tuple[str, ...]]  # (key, op, values); op in = != in notin exists !exists

_TOKEN = re.compile(r"\s*(\(|\)|,|!=|==|=|!|[^\s,()!=]+)\s*")


def parse_label_selector(text: str | None) -> list[Requirement]:
    if not text or not text.strip():
        return []
    tokens = [t for t in _TOKEN.findall(text)]
    reqs: list[Requirement] = []
    i = 0

    def need(pos: int) -> str:
        if pos >= len(tokens):
            raise bad_request(
                f"unable to parse requirement: found end of string, expected identifier: {text!r}"
            )
        return tokens[pos]

    while i < len(tokens):
        tok = tokens[i]
        if tok == "!":
            key = need(i + 1)
            reqs.append((key, "!exists", ()))
            i += 2
        else:
            key = tok
            nxt = tokens[i + 1] if i + 1 < len(tokens) else ","
            if nxt in ("=", "=="):
                val = tokens[i + 2] if i + 2 < len(tokens) and tokens[i + 2] != "," else ""
                reqs.append((key, "=", (val,)))
                i += 3 if val else 2
            elif nxt == "!=":
                val = tokens[i + 2] if i + 2 < len(tokens) and tokens[i + 2] != "," else ""
                reqs.append((key, "!=", (val,)))
                i += 3 if val else 2
            elif nxt in ("in", "notin"):
                if need(i + 2) != "(":
                    raise bad_request(f"unable to parse requirement: expected '(' in {text!r}")
                j = i + 3
                vals: list[str] = []
                while need(j) != ")":
                    if tokens[j] != ",":
                        vals.append(tokens[j])
                    j += 1
                reqs.append((key, nxt, tuple(vals)))
                i = j + 1
            elif nxt == ",":
                reqs.append((key, "exists", ()))
                i += 1
            else:
                raise bad_request(f"unable to parse requirement: unexpected {nxt!r} in {text!r}")
        if i < len(tokens):
            if tokens[i] != ",":
                raise bad_request(f"unable to parse requirement: expected ',' in {text!r}")
            i += 1
    return reqs


def labels_match(reqs: list[Requirement], labels: dict[str, str] | None) -> bool:
    labels = labels or {}
    for key, op, vals in reqs:
        present = key in labels
        if op == "=":
            if not present or labels[key] != vals[0]:
                return False
        elif op == "!=":
            if present and labels[key] == vals[0]:
                return False
        elif op == "in":
            if not present or labels[key] not in vals:
                return False
        elif op == "notin":
            if present and labels[key] in vals:
                return False
        elif op == "exists":
            if not present:
                return False
        elif op == "!exists" and present:
            return False
    return True


def selector_from_label_selector_object(sel: dict[str, Any] | None) -> list[Requirement]:
    """A metav1.LabelSelector (matchLabels + matchExpressions) as requirements; None matches everything."""
    if not sel:
        return []
    reqs: list[Requirement] = [(k, "=", (v,)) for k, v in (sel.get("matchLabels") or {}).items()]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}
    for expr in sel.get("matchExpressions") or []:
        reqs.append((expr["key"], ops[expr["operator"]], tuple(expr.get("values") or ())))
    return reqs


FieldRequirement = tuple[str, bool, str]  # (path, equal?, value)


def parse_field_selector(text: str | None) -> list[FieldRequirement]:
    if not text or not text.strip():
        return []
    out: list[FieldRequirement] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "!=" in part:
            k, v = part.split("!=", 1)
            out.append((k.strip(), False, v.strip()))
        elif "==" in part:
            k, v = part.split("==", 1)
            out.append((k.strip(), True, v.strip()))
        elif "=" in part:
            k, v = part.split("=", 1)
            out.append((k.strip(), True, v.strip()))
        else:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
    return out


def _path_getter(path: str) -> Callable[[dict[str, Any]], str]:
    parts = path.split(".")

    def get(obj: dict[str, Any]) -> str:
        cur: Any = obj
        for p in parts:
            if not isinstance(cur, dict):
                return ""
            cur = cur.get(p)
        if cur is None:
            return ""
        if isinstance(cur, bool):
            return "true" if cur else "false"
        return str(cur)

    return get


# Field selectors each type accepts beyond metadata.name / metadata.namespace (the real API refuses others
# with 400 "field label not supported").
SELECTABLE_FIELDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "pods"): (
        "spec.nodeName",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.restartPolicy",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ),
    ("", "nodes"): ("spec.unschedulable",),
    ("", "events"): (
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ),
    ("", "secrets"): ("type",),
    ("", "namespaces"): ("status.phase",),
    ("batch", "jobs"): ("status.successful",),
    ("apps", "replicasets"): ("status.replicas",),
    ("events.k8s.io", "events"): (
        "regarding.kind",
        "regarding.name",
        "regarding.namespace",
        "reason",
        "type",
    ),
}


def field_matcher(
    group: str, plural: str, kind: str, reqs: list[FieldRequirement]
) -> Callable[[dict[str, Any]], bool] | None:
    if not reqs:
        return None
    allowed = SELECTABLE_FIELDS.get((group, plural), ())
    checks = []
    for path, equal, value in reqs:
        if path not in ("metadata.name", "metadata.namespace") and path not in allowed:
            raise bad_request(f'field label "{path}" not supported for {kind}')
        checks.append((_path_getter(path), equal, value))

    def match(obj: dict[str, Any]) -> bool:
        for getter, equal, value in checks:
            if (getter(obj) == value) != equal:
                return False
        return True

    return match
