"""Canonical jobspec v1 (RFC 14), read exactly as flux-sched's libjobspec reads it (prior-art §7.5).

Rules followed, from flux-sched ``resource/libjobspec/jobspec.cpp`` (v0.54) unless said otherwise:

- The top level is a mapping of exactly four keys: ``version`` (an unsigned scalar 1..9999), ``resources``
  and ``tasks`` (sequences), ``attributes`` (a mapping or null; only ``user`` and ``system``).
- A resource has ``type`` and ``count`` and optionally ``unit``, ``exclusive`` ("true"/"false"), ``with``
  (a sequence), ``label`` and ``id``, each present key being a scalar (``with`` a sequence); any other key
  is refused. Only a slot needs a label; labels need not be unique, and the slot a task names need not be
  one of them (only the key is required).
- ``count`` is an unsigned scalar, or a mapping with ``min`` and either all or none of ``max``,
  ``operator``, ``operand``: only ``min`` means ``max`` unbounded (UINT_MAX), operator ``+``, operand 1.
  ``min`` >= 1, ``max`` >= ``min``; ``+`` needs operand >= 1, ``*`` operand >= 2, ``^`` operand >= 2 and
  min >= 2.
- A task has ``command`` (a sequence), ``slot`` (a scalar) and 3 to 5 entries in all; ``count``, if given,
  is a mapping with exactly one entry.
- ``attributes.system``: ``duration`` (seconds; rounded up; 0 = the whole graph window; negative, NaN,
  infinite or beyond the window are refused, as the traverser's jobmeta does), ``queue``, ``cwd``,
  ``environment`` and ``constraints`` (RFC 31, `constraints.py`); anything else is kept as is.

- Scalars are read as yaml-cpp reads them: "2" is a count, "true" an exclusive flag; in YAML the text
  counts (``exclusive: yes`` is refused) and RFC 31 properties must be quoted strings.

Refused here although libjobspec parses them, because flux-sched's traversal can only fail on them: an empty
``resources``, a count of 0, a slot without ``with`` (it would count UINT_MAX slots), ``exclusive: false``
inside a slot (by_excl). Every refusal is a `JobspecError` whose message says where and why. Rules that
depend on the loaded graph (a type fluxion does not know, a jobspec without any slot) are in
`check_against_graph`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from fluxqueue.fluxion.matcher.constraints import Constraint, ConstraintError, parse_constraint

# flux-sched's graph window: 100 years (SYSTEM_MAX_DURATION); duration 0 means "the whole window".
SYSTEM_MAX_DURATION = 3_153_600_000
# jobspec.hpp: count.max defaults to std::numeric_limits<unsigned>::max() when only min is given.
UNBOUNDED = 4_294_967_295
# Types flux-sched's interner knows before any graph is loaded (resource/schema/data_std.cpp); any other type
# in a jobspec must occur in the loaded graph, else the jobspec is refused (not answered no-match).
PREREGISTERED_TYPES = frozenset({"cluster", "rack", "node", "socket", "core", "gpu", "slot"})

_RESOURCE_KEYS = ("type", "count", "unit", "exclusive", "with", "label", "id")
_INT32 = 2**31


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

    @property
    def unbounded(self) -> bool:
        return self.max >= UNBOUNDED

    def best_count(self, available: int) -> int:
        """The largest count <= available that the count expression allows, or 0 if below min.

        flux-sched matcher_util_api_t::calc_count (resource/policies/base/matcher.cpp)."""
        lo = self.min
        if available < lo or lo > self.max:
            return 0
        if lo == self.max:
            return lo
        target = min(available, self.max)
        if self.operator == "+":
            return target - (target - lo) % self.operand
        best = c = lo
        if self.operator == "*":
            while c <= target:
                best = c
                c *= self.operand
        elif lo > 1:  # "^": min, min^operand, (min^operand)^operand, ...
            while c <= target:
                best = c
                c = c**self.operand
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

    # Computed once when parsed, checked on every match (`check_against_graph`).
    types: frozenset[str] = frozenset()
    has_slot: bool = True

    def __post_init__(self) -> None:
        out: set[str] = set()
        stack = list(self.resources)
        while stack:
            r = stack.pop()
            out.add(r.type)
            stack.extend(r.with_)
        self.types = frozenset(out)
        self.has_slot = "slot" in out


def parse_jobspec(text: str | bytes | dict[str, Any]) -> Jobspec:
    doc, node = _load(text)
    if not isinstance(doc, dict):
        raise JobspecError("jobspec must be a mapping with keys version, resources, tasks, attributes")
    expected = ("version", "resources", "tasks", "attributes")
    missing = [k for k in expected if k not in doc]
    extra = sorted(map(str, set(doc) - set(expected)))
    if missing or extra:
        parts = []
        if missing:
            parts.append("missing key(s) " + ", ".join(missing))
        if extra:
            parts.append("unknown key(s) " + ", ".join(extra))
        raise JobspecError(
            "jobspec must have exactly the keys version, resources, tasks, attributes: " + "; ".join(parts)
        )
    version = doc["version"]
    v = _unsigned(version) if _is_scalar(version) else None
    if v is None or not 1 <= v <= 9999:
        raise JobspecError(f"'version' must be an integer from 1 to 9999, got {version!r}")
    # flux-sched reads attributes first, then resources, then tasks.
    attributes = doc["attributes"]
    if attributes is None:
        attributes = {}
    if not isinstance(attributes, dict):
        raise JobspecError("'attributes' must be a mapping (or null)")
    extra = sorted(map(str, set(attributes) - {"user", "system"}))
    if extra:
        raise JobspecError(f"'attributes' may only hold 'user' and 'system', got {extra}")
    duration, constraint = _system(attributes.get("system"))
    resources = doc["resources"]
    if not isinstance(resources, list):
        raise JobspecError("'resources' must be a non-empty sequence")
    if not resources:
        # Parses in flux-sched, then the traverser refuses it (dfu_traverser_t::run: EINVAL).
        raise JobspecError("'resources' must be a non-empty sequence: there is nothing to match")
    # Siblings of one type and slots in slots parse too: what they match is the traverser's business
    # (dfu_impl match() fails a level whose requests repeat a type, a no-match that uses a job id).
    reqs = [_resource(r, f"resources[{i}]", in_slot=False) for i, r in enumerate(resources)]
    tasks = doc["tasks"]
    if not isinstance(tasks, list):
        raise JobspecError("'tasks' must be a sequence")
    for i, t in enumerate(tasks):
        _task(t, f"tasks[{i}]")
    if node is not None:
        _yaml_scalar_rules(node)
    for r in reqs:
        _compute_need(r)
    return Jobspec(reqs, duration, constraint, tasks, attributes)


def check_against_graph(js: Jobspec, graph: Any) -> None:
    """Refusals that depend on the loaded graph (a `ResourceGraph`); like parse errors they use no job id."""
    root = graph.root
    cap = root.cap
    for t in js.types:
        if t not in cap and t not in PREREGISTERED_TYPES and t != root.type:
            if t in getattr(graph, "other_types", ()):  # types of vertices outside the containment tree
                continue
            # jobspec.cpp: resource_type_t{type} throws for a type the (closed) interner does not hold.
            raise JobspecError(
                f"resource type {t!r} is not known to fluxion: the graph has no {t!r} vertex "
                '(flux-sched: Value of "type" must be a resource type known to fluxion)'
            )
    if not js.has_slot:
        # The golden trace node_without_slot: flux-sched parses it, then its traverser fails with errno 0
        # ("traverser: Success"), a refusal that consumes no job id.
        raise JobspecError(
            "jobspec has no 'slot' resource, which flux-sched's traverser cannot match "
            "(e.g. node -> slot -> core)"
        )


def _load(text: str | bytes | dict[str, Any]) -> tuple[Any, yaml.Node | None]:
    """The document, and its YAML node tree when it was read as YAML (for `_yaml_scalar_rules`)."""
    if isinstance(text, dict):
        return text, None
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    if not isinstance(text, str) or not text.strip():
        raise JobspecError("empty jobspec")
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            return json.loads(text), None
        except ValueError:
            pass  # not JSON after all: YAML (a superset) gives the better error
    try:
        return yaml.safe_load(text), yaml.compose(text)
    except yaml.YAMLError as exc:
        raise JobspecError(f"jobspec is neither valid YAML nor JSON: {exc}") from None


def _yaml_scalar_rules(node: yaml.Node) -> None:
    """What yaml-cpp sees in the scalars' text and PyYAML's values hide (YAML 1.1 booleans, quoting)."""

    def mapping(n: Any) -> dict[str, yaml.Node]:
        if not isinstance(n, yaml.MappingNode):
            return {}
        return {k.value: v for k, v in n.value if isinstance(k, yaml.ScalarNode)}

    def sequence(n: Any) -> list[yaml.Node]:
        return n.value if isinstance(n, yaml.SequenceNode) else []

    def resource(n: yaml.Node, where: str) -> None:
        m = mapping(n)
        x = m.get("exclusive")
        if isinstance(x, yaml.ScalarNode) and x.value not in ("true", "false"):
            # jobspec.cpp compares the scalar's text: yes/True/on are not "true".
            raise JobspecError(f"{where}.exclusive must be true or false, got {x.value!r}")
        for i, c in enumerate(sequence(m.get("with"))):
            resource(c, f"{where}.with[{i}]")

    def constraint(n: yaml.Node, where: str) -> None:
        for op, v in mapping(n).items():
            if op == "properties":
                for e in sequence(v):
                    if isinstance(e, yaml.ScalarNode) and e.style not in ("'", '"'):
                        # constraint.cpp: a property must be a quoted string (Tag() "!"), as RFC 31 says.
                        raise JobspecError(
                            f'{where}: property {e.value!r} must be a quoted string, e.g. "{e.value}"'
                        )
            elif op in ("and", "or", "not"):
                for e in sequence(v):
                    constraint(e, where)

    top = mapping(node)
    for i, r in enumerate(sequence(top.get("resources"))):
        resource(r, f"resources[{i}]")
    cons = mapping(mapping(top.get("attributes")).get("system")).get("constraints")
    if cons is not None:
        constraint(cons, "attributes.system.constraints")


# -- scalars as yaml-cpp converts them ---------------------------------------------------------------------

# yaml-cpp's convert<unsigned/int>: a stream read with the base taken from the prefix (0x.., 0..), the whole
# scalar consumed but trailing blanks; "-" refused for unsigned.
_CINT = re.compile(r"([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)[ \t\n\r]*\Z")


def _is_scalar(v: Any) -> bool:
    return v is not None and not isinstance(v, dict | list)


def _cint(v: Any) -> int | None:
    if isinstance(v, bool) or not _is_scalar(v):
        return None  # a JSON true is the YAML scalar "true": not a number
    if isinstance(v, int):
        return v
    if isinstance(v, str):
        m = _CINT.match(v)
        if m:
            digits = m.group(2)
            base = 16 if digits[:2] in ("0x", "0X") else 8 if len(digits) > 1 else 10
            n = int(digits, base)
            return -n if m.group(1) == "-" else n
    return None  # floats ("2.0"), anything else


def _unsigned(v: Any) -> int | None:
    n = _cint(v)
    if n is None or n < 0 or n > UNBOUNDED or (isinstance(v, str) and v.lstrip().startswith("-")):
        return None
    return n


def _signed(v: Any) -> int | None:
    n = _cint(v)
    return n if n is not None and -_INT32 <= n < _INT32 else None


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


# -- parts ----------------------------------------------------------------------------------------------------


def _count(value: Any, where: str) -> tuple[int, int, str, int]:
    if value is None:
        raise JobspecError(f"{where}.count must be an integer or a mapping, got null")
    if _is_scalar(value):
        n = _unsigned(value)
        if n is None:
            raise JobspecError(f"{where}.count must be an unsigned integer or a mapping, got {value!r}")
        if n < 1:
            # flux-sched parses a scalar 0 (min = max = 0); we refuse it: nothing could be allocated.
            raise JobspecError(f"{where}.count must be at least 1, got {value!r}")
        return n, n, "+", 1
    if not isinstance(value, dict):
        raise JobspecError(f"{where}.count must be an integer or a mapping, got {value!r}")
    if "min" not in value:
        raise JobspecError(f"{where}.count has no 'min'")
    if not _is_scalar(value["min"]):
        raise JobspecError(f"{where}.count.min must be a scalar, got {value['min']!r}")
    hi, op, operand = UNBOUNDED, "+", 1
    given = [k for k in ("max", "operator", "operand") if k in value]
    if given:
        if len(given) != 3:
            absent = [k for k in ("max", "operator", "operand") if k not in value]
            raise JobspecError(
                f"{where}.count gives {', '.join(given)} without {', '.join(absent)}: "
                "'max', 'operator' and 'operand' go all together or not at all"
            )
        for k in given:
            if not _is_scalar(value[k]):
                raise JobspecError(f"{where}.count.{k} must be a scalar, got {value[k]!r}")
        hi = _unsigned(value["max"])
        if hi is None:
            raise JobspecError(f"{where}.count.max must be an unsigned integer, got {value['max']!r}")
        op = _text(value["operator"])
        if len(op) != 1:
            raise JobspecError(f"{where}.count.operator must be one of + * ^, got {value['operator']!r}")
        operand = _signed(value["operand"])
        if operand is None:
            raise JobspecError(f"{where}.count.operand must be an integer, got {value['operand']!r}")
    lo = _unsigned(value["min"])
    if lo is None:
        raise JobspecError(f"{where}.count.min must be an unsigned integer, got {value['min']!r}")
    if lo < 1:
        raise JobspecError(f"{where}.count.min must be greater than zero, got {lo}")
    if hi < lo:
        raise JobspecError(f"{where}.count.max ({hi}) must be greater than or equal to min ({lo})")
    if op == "+":
        if operand < 1:
            raise JobspecError(f"{where}.count.operand must be greater than zero for '+', got {operand}")
    elif op == "*":
        if operand < 2:
            raise JobspecError(f"{where}.count.operand must be greater than one for '*', got {operand}")
    elif op == "^":
        if operand < 2:
            raise JobspecError(f"{where}.count.operand must be greater than one for '^', got {operand}")
        if lo < 2:
            raise JobspecError(f"{where}.count.min must be greater than one for '^', got {lo}")
    else:
        raise JobspecError(f"{where}.count.operator must be one of + * ^, got {op!r}")
    return lo, hi, op, operand


def _resource(r: Any, where: str, in_slot: bool) -> Request:
    if not isinstance(r, dict):
        raise JobspecError(f"{where} must be a mapping")
    extra = [k for k in r if k not in _RESOURCE_KEYS]
    if extra:
        raise JobspecError(
            f"{where} has unknown key(s) {sorted(map(str, extra))}; a resource may only have "
            + ", ".join(_RESOURCE_KEYS)
        )
    if "type" not in r:
        raise JobspecError(f"{where} has no 'type'")
    if not _is_scalar(r["type"]):
        raise JobspecError(f"{where}.type must be a scalar, got {r['type']!r}")
    t = _text(r["type"])
    if "count" not in r:
        raise JobspecError(f"{where} ({t}) has no 'count'")
    lo, hi, op, operand = _count(r["count"], f"{where} ({t})")
    for k in ("unit", "exclusive", "label", "id"):
        if k in r and not _is_scalar(r[k]):
            raise JobspecError(f"{where}.{k} must be a scalar, got {r[k]!r}")
    unit = _text(r["unit"]) if "unit" in r else ""
    exclusive = None
    if "exclusive" in r:
        x = _text(r["exclusive"])
        if x not in ("true", "false"):
            raise JobspecError(f"{where}.exclusive must be true or false, got {r['exclusive']!r}")
        exclusive = x == "true"
    if "label" in r:
        label = _text(r["label"])
    elif t == "slot":
        raise JobspecError(f"{where}: a slot needs a 'label' (flux-sched: All slots must be labeled)")
    else:
        label = ""
    children = r.get("with", [])
    if "with" in r and not isinstance(children, list):
        raise JobspecError(f"{where}.with must be a sequence, got {children!r}")
    if t == "slot" and not children:
        # Parses in flux-sched, but a slot without a shape matches everywhere (slot_match() is true for any
        # vertex) and dom_slot() then counts UINT_MAX slots: refused here rather than never answered.
        raise JobspecError(f"{where}: a slot needs 'with' (the resources of one slot)")
    if in_slot and exclusive is False:
        # dfu_impl by_excl: a non-exclusive request under a slot is invalid (EINVAL). flux-sched finds it
        # during the walk, which then fails as a no-match; here it is refused up front.
        raise JobspecError(f"{where}: exclusive: false conflicts with being inside a slot")
    kids = [_resource(c, f"{where}.with[{i}]", in_slot or t == "slot") for i, c in enumerate(children)]
    return Request(t, lo, hi, op, operand, exclusive, kids, label if t == "slot" else "", unit)


def _task(t: Any, where: str) -> None:
    if not isinstance(t, dict):
        raise JobspecError(f"{where} must be a mapping")
    if "command" not in t:
        raise JobspecError(f"{where} has no 'command'")
    cmd = t["command"]
    if not isinstance(cmd, list) or not all(_is_scalar(c) for c in cmd):
        raise JobspecError(f"{where}.command must be a sequence of strings, got {cmd!r}")
    if "slot" not in t:
        raise JobspecError(f"{where} has no 'slot'")
    if not _is_scalar(t["slot"]):
        raise JobspecError(f"{where}.slot must be a scalar (a slot label), got {t['slot']!r}")
    if "count" in t:
        count = t["count"]
        if not isinstance(count, dict):
            raise JobspecError(f"{where}.count must be a mapping, e.g. {{per_slot: 1}}")
        if len(count) != 1:
            raise JobspecError(f"{where}.count must have exactly one entry, e.g. per_slot or total")
        if not all(_is_scalar(v) for v in count.values()):
            raise JobspecError(f"{where}.count value must be a scalar")
    if "distribution" in t and not _is_scalar(t["distribution"]):
        raise JobspecError(f"{where}.distribution must be a scalar")
    if "attributes" in t:
        attrs = t["attributes"]
        if not isinstance(attrs, dict) or not all(_is_scalar(v) for v in attrs.values()):
            raise JobspecError(f"{where}.attributes must be a mapping of scalars")
    if not 3 <= len(t) <= 5:
        raise JobspecError(
            f"{where} has {len(t)} entries; a task has command, slot and one to three of "
            "count, distribution, attributes"
        )


def _system(system: Any) -> tuple[int, Constraint | None]:
    if system is None or _is_scalar(system):
        return 0, None  # yaml-cpp iterates nothing in a null or scalar node
    if not isinstance(system, dict):
        raise JobspecError("'attributes.system' must be a mapping")
    duration = _duration(system["duration"]) if "duration" in system else 0
    for k in ("queue", "cwd"):
        if k in system and not _is_scalar(system[k]):
            raise JobspecError(f"attributes.system.{k} must be a scalar")
    env = system.get("environment")
    if env is not None and not (isinstance(env, dict) and all(_is_scalar(v) for v in env.values())):
        raise JobspecError("attributes.system.environment must be a mapping of scalars")
    constraint = None
    if "constraints" in system:
        try:
            constraint = parse_constraint(system["constraints"])
        except ConstraintError as exc:
            raise JobspecError(f"attributes.system.constraints: {exc}") from None
    return duration, constraint


def _duration(value: Any) -> int:
    v: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        v = float(value) if isinstance(value, float) else value
    elif isinstance(value, str):  # as<double> of a scalar
        try:
            v = float(value)
        except ValueError:
            v = None
    if v is None:
        raise JobspecError(f"attributes.system.duration must be a number of seconds, got {value!r}")
    if (isinstance(v, float) and (math.isnan(v) or math.isinf(v))) or v < 0:
        raise JobspecError(f"attributes.system.duration must be finite and >= 0, got {value!r}")
    d = math.ceil(v)
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
