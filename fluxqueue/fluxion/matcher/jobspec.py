"""Canonical jobspec v1 (RFC 14 as flux-sched's libjobspec reads it, prior-art §7.5), YAML or JSON.

Exactly four top-level keys (version, resources, tasks, attributes); resources with ``type``, ``count``
(integer, or ``{min, max, operator, operand}`` with operators ``+ * ^``), optional ``unit``, ``exclusive``,
``with``, ``label`` (required on slots), ``id``; tasks with ``command``, ``slot``, ``count`` (one of
``per_slot``/``total``); ``attributes.system.duration`` (seconds, 0 = unbounded) and
``attributes.system.constraints`` (RFC 31). Every problem is a `JobspecError` with a message a user can act on.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import yaml

from fluxqueue.fluxion.matcher.constraints import Constraint, ConstraintError, parse_constraint

# flux-sched's graph window: 100 years (SYSTEM_MAX_DURATION); duration 0 means "the whole window".
SYSTEM_MAX_DURATION = 3_153_600_000

_RESOURCE_KEYS = {"type", "count", "unit", "exclusive", "with", "label", "id", "requires", "exclude"}
_TASK_KEYS = {"command", "slot", "count", "distribution", "attributes"}


class JobspecError(ValueError):
    """The jobspec is malformed; the message says where."""


@dataclass(eq=False)
class Request:
    """One resource request (a jobspec resource vertex)."""

    type: str
    min: int
    max: int
    operator: str = "+"
    operand: int = 1
    exclusive: bool | None = None
    with_: list[Request] = field(default_factory=list)
    label: str = ""
    unit: str = ""
    # Leaf amounts one unit of this request needs below it (e.g. node->slot[2]->core[4]: {"core": 8}).
    need: dict[str, int] = field(default_factory=dict)

    @property
    def is_slot(self) -> bool:
        return self.type == "slot"

    def best_count(self, available: int) -> int:
        """The largest count <= available that the count expression allows, or 0 if below min (calc_count)."""
        if available < self.min:
            return 0
        if self.min == self.max:
            return self.min
        target = min(available, self.max)
        best = self.min
        c = self.min
        while True:
            if self.operator == "+":
                nxt = c + self.operand
            elif self.operator == "*":
                nxt = c * self.operand
            else:
                nxt = c**self.operand
            if nxt <= c or nxt > target:
                break
            c = best = nxt
        return best


@dataclass(eq=False)
class Jobspec:
    resources: list[Request]
    duration: int  # seconds, already rounded up; 0 = unbounded
    constraint: Constraint | None = None
    tasks: list[dict[str, Any]] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def window(self) -> int:
        return self.duration if self.duration > 0 else SYSTEM_MAX_DURATION


def parse_jobspec(text: str | bytes | dict[str, Any]) -> Jobspec:
    doc = _load(text)
    if not isinstance(doc, dict):
        raise JobspecError("jobspec must be a mapping with keys version, resources, tasks, attributes")
    keys = set(doc)
    expected = {"version", "resources", "tasks", "attributes"}
    if keys != expected:
        missing = sorted(expected - keys)
        extra = sorted(keys - expected)
        parts = []
        if missing:
            parts.append("missing key(s) " + ", ".join(missing))
        if extra:
            parts.append("unknown key(s) " + ", ".join(map(str, extra)))
        raise JobspecError(
            "jobspec must have exactly the keys version, resources, tasks, attributes: " + "; ".join(parts)
        )
    version = doc["version"]
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= 9999:
        raise JobspecError(f"'version' must be an integer from 1 to 9999, got {version!r}")
    resources = doc["resources"]
    if not isinstance(resources, list) or not resources:
        raise JobspecError("'resources' must be a non-empty sequence")
    labels: set[str] = set()
    reqs = [_resource(r, f"resources[{i}]", labels, in_slot=False) for i, r in enumerate(resources)]
    if not _has_slot(reqs):
        raise JobspecError("jobspec has no 'slot' resource; a slot is required (e.g. node -> slot -> core)")
    _check_siblings(reqs, "resources")
    tasks = doc["tasks"]
    if not isinstance(tasks, list) or not tasks:
        raise JobspecError("'tasks' must be a non-empty sequence")
    for i, t in enumerate(tasks):
        _task(t, f"tasks[{i}]", labels)
    attributes = doc["attributes"] or {}
    if not isinstance(attributes, dict):
        raise JobspecError("'attributes' must be a mapping")
    extra = set(attributes) - {"user", "system"}
    if extra:
        raise JobspecError(f"'attributes' may only hold 'user' and 'system', got {sorted(extra)}")
    system = attributes.get("system") or {}
    if not isinstance(system, dict):
        raise JobspecError("'attributes.system' must be a mapping")
    duration = _duration(system.get("duration", 0))
    constraint = None
    if system.get("constraints") is not None:
        try:
            constraint = parse_constraint(system["constraints"])
        except ConstraintError as exc:
            raise JobspecError(f"attributes.system.constraints: {exc}") from None
    for r in reqs:
        _compute_need(r)
    return Jobspec(reqs, duration, constraint, tasks, attributes)


def _load(text: str | bytes | dict[str, Any]) -> Any:
    if isinstance(text, dict):
        return text
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    if not isinstance(text, str) or not text.strip():
        raise JobspecError("empty jobspec")
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            return json.loads(text)
        except ValueError:
            pass  # not JSON after all: YAML (a superset) gives the better error
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise JobspecError(f"jobspec is neither valid YAML nor JSON: {exc}") from None


def _count(value: Any, where: str) -> tuple[int, int, str, int]:
    if isinstance(value, bool):
        raise JobspecError(f"{where}.count must be an integer or a mapping, got {value!r}")
    if isinstance(value, int):
        if value < 1:
            raise JobspecError(f"{where}.count must be at least 1, got {value}")
        return value, value, "+", 1
    if isinstance(value, dict):
        extra = set(value) - {"min", "max", "operator", "operand"}
        if extra:
            raise JobspecError(f"{where}.count has unknown key(s) {sorted(extra)}")
        lo = value.get("min")
        if isinstance(lo, bool) or not isinstance(lo, int) or lo < 1:
            raise JobspecError(f"{where}.count.min must be an integer >= 1, got {lo!r}")
        hi = value.get("max", lo)
        if isinstance(hi, bool) or not isinstance(hi, int) or hi < lo:
            raise JobspecError(f"{where}.count.max must be an integer >= min, got {hi!r}")
        op = value.get("operator", "+")
        if op not in ("+", "*", "^"):
            raise JobspecError(f"{where}.count.operator must be one of + * ^, got {op!r}")
        operand = value.get("operand", 1)
        if isinstance(operand, bool) or not isinstance(operand, int):
            raise JobspecError(f"{where}.count.operand must be an integer, got {operand!r}")
        if (op == "+" and operand < 1) or (op in "*^" and operand < 2 and hi > lo):
            raise JobspecError(f"{where}.count.operand {operand} with operator {op!r} never grows the count")
        return lo, hi, op, operand
    if value is None:
        raise JobspecError(f"{where} has no 'count'")
    raise JobspecError(f"{where}.count must be an integer or a mapping, got {value!r}")


def _resource(r: Any, where: str, labels: set[str], in_slot: bool) -> Request:
    if not isinstance(r, dict):
        raise JobspecError(f"{where} must be a mapping")
    extra = set(r) - _RESOURCE_KEYS
    if extra:
        raise JobspecError(f"{where} has unknown key(s) {sorted(map(str, extra))}")
    t = r.get("type")
    if not isinstance(t, str) or not t:
        raise JobspecError(f"{where} needs a 'type' string")
    lo, hi, op, operand = _count(r.get("count"), f"{where} ({t})")
    exclusive = r.get("exclusive")
    if exclusive is not None and not isinstance(exclusive, bool):
        raise JobspecError(f"{where}.exclusive must be true or false, got {exclusive!r}")
    label = r.get("label", "")
    if t == "slot":
        if in_slot:
            raise JobspecError(f"{where}: a slot cannot be nested inside another slot")
        if not isinstance(label, str) or not label:
            raise JobspecError(f"{where}: a slot needs a 'label'")
        if label in labels:
            raise JobspecError(f"{where}: slot label {label!r} is used twice")
        labels.add(label)
        if not r.get("with"):
            raise JobspecError(f"{where}: a slot needs 'with' (the resources of one slot)")
    elif in_slot and exclusive is False:
        # flux-sched by_excl: a non-exclusive request under a slot is invalid.
        raise JobspecError(f"{where}: exclusive: false conflicts with being inside a slot")
    children = r.get("with") or []
    if not isinstance(children, list):
        raise JobspecError(f"{where}.with must be a sequence")
    kids = [
        _resource(c, f"{where}.with[{i}]", labels, in_slot or t == "slot") for i, c in enumerate(children)
    ]
    _check_siblings(kids, f"{where}.with")
    unit = r.get("unit", "")
    if not isinstance(unit, str):
        raise JobspecError(f"{where}.unit must be a string")
    return Request(t, lo, hi, op, operand, exclusive, kids, label if t == "slot" else "", unit)


def _check_siblings(reqs: list[Request], where: str) -> None:
    # flux-sched's DFU traverser: siblings must not request the same type (dfu_impl match()).
    seen: set[str] = set()
    for r in reqs:
        if r.type in seen:
            raise JobspecError(f"{where}: siblings request the same resource type {r.type!r}")
        seen.add(r.type)


def _has_slot(reqs: list[Request]) -> bool:
    return any(r.is_slot or _has_slot(r.with_) for r in reqs)


def _task(t: Any, where: str, labels: set[str]) -> None:
    if not isinstance(t, dict):
        raise JobspecError(f"{where} must be a mapping")
    extra = set(t) - _TASK_KEYS
    if extra:
        raise JobspecError(f"{where} has unknown key(s) {sorted(map(str, extra))}")
    cmd = t.get("command")
    if not isinstance(cmd, list) or not cmd:
        raise JobspecError(f"{where}.command must be a non-empty sequence")
    slot = t.get("slot")
    if not isinstance(slot, str) or slot not in labels:
        raise JobspecError(f"{where}.slot {slot!r} does not name a slot label ({sorted(labels)})")
    count = t.get("count")
    if not isinstance(count, dict) or len(count) != 1 or next(iter(count)) not in ("per_slot", "total"):
        raise JobspecError(f"{where}.count must be a mapping with exactly one of per_slot or total")
    n = next(iter(count.values()))
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise JobspecError(f"{where}.count value must be a positive integer")


def _duration(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise JobspecError(f"attributes.system.duration must be a number of seconds, got {value!r}")
    if math.isnan(value) or math.isinf(value) or value < 0:
        raise JobspecError(f"attributes.system.duration must be finite and >= 0, got {value!r}")
    d = math.ceil(value)
    if d > SYSTEM_MAX_DURATION:
        raise JobspecError(
            f"attributes.system.duration {value} exceeds the graph window {SYSTEM_MAX_DURATION}"
        )
    return d


def _compute_need(r: Request) -> dict[str, int]:
    need: dict[str, int] = {}
    for c in r.with_:
        sub = _compute_need(c)
        if not c.with_:
            need[c.type] = need.get(c.type, 0) + c.min
        for t, a in sub.items():
            need[t] = need.get(t, 0) + a * c.min
    r.need = need
    return need
