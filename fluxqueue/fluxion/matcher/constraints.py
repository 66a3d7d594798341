"""RFC 31 job constraints on node vertices: ``properties``, ``hostlist``, ``ranks``, and ``and``/``or``/``not``.

flux-sched evaluates them only on vertices of type ``node`` (and ``storage_node``) (dfu_impl by_constraint).
A property ``p`` matches a node whose JGF ``properties`` has key ``p``, or ``k=v`` when ``properties[k] == v``;
``^p`` negates. A hostlist is RFC 29 (``node[1-3,7]``) and matches the node's name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


class ConstraintError(ValueError):
    pass


@dataclass(frozen=True)
class Constraint:
    op: str  # properties | hostlist | ranks | and | or | not
    values: tuple = ()
    children: tuple[Constraint, ...] = ()

    def match(self, name: str, properties: dict[str, str] | None, rank: int = -1) -> bool:
        if self.op == "properties":
            return all(_has_property(p, properties) for p in self.values)
        if self.op == "hostlist":
            return name in self.values
        if self.op == "ranks":
            return rank in self.values
        if self.op == "and":
            return all(c.match(name, properties, rank) for c in self.children)
        if self.op == "or":
            return any(c.match(name, properties, rank) for c in self.children)
        if self.op == "not":
            return not all(c.match(name, properties, rank) for c in self.children)
        raise AssertionError(self.op)


def _has_property(p: str, properties: dict[str, str] | None) -> bool:
    if p.startswith("^"):
        return not _has_property(p[1:], properties)
    props = properties or {}
    if p in props:
        return True
    if "=" in p:
        k, v = p.split("=", 1)
        return props.get(k) == v
    return False


def parse_constraint(doc: Any) -> Constraint:
    if not isinstance(doc, dict):
        raise ConstraintError("a constraint must be a mapping of operator to values")
    if not doc:
        return Constraint("and")
    parts = []
    for op, value in doc.items():
        if op == "properties":
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise ConstraintError("'properties' must be a list of non-empty strings")
            parts.append(Constraint("properties", tuple(value)))
        elif op == "hostlist":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConstraintError("'hostlist' must be a list of hostlist strings")
            hosts: list[str] = []
            for v in value:
                hosts.extend(expand_hostlist(v))
            parts.append(Constraint("hostlist", frozenset(hosts)))
        elif op == "ranks":
            if not isinstance(value, list):
                raise ConstraintError("'ranks' must be a list of idsets")
            ranks: set[int] = set()
            for v in value:
                ranks.update(_expand_idset(str(v)))
            parts.append(Constraint("ranks", frozenset(ranks)))
        elif op in ("and", "or", "not"):
            if not isinstance(value, list) or not value:
                raise ConstraintError(f"'{op}' must be a non-empty list of constraints")
            parts.append(Constraint(op, (), tuple(parse_constraint(v) for v in value)))
        else:
            raise ConstraintError(f"unknown constraint operator {op!r}")
    return parts[0] if len(parts) == 1 else Constraint("and", (), tuple(parts))


_BRACKET = re.compile(r"\[([^\]]*)\]")


def expand_hostlist(expr: str) -> list[str]:
    """RFC 29 hostlist: ``a[1-3],b0`` -> a1 a2 a3 b0 (zero padding kept, several bracket groups allowed)."""
    out: list[str] = []
    for part in _split_top(expr):
        m = _BRACKET.search(part)
        if not m:
            if part:
                out.append(part)
            continue
        prefix, suffix = part[: m.start()], part[m.end() :]
        for tail in expand_hostlist(suffix) if _BRACKET.search(suffix) else [suffix]:
            for item in m.group(1).split(","):
                item = item.strip()
                if "-" in item:
                    lo, hi = item.split("-", 1)
                    if not lo.isdigit() or not hi.isdigit() or int(hi) < int(lo):
                        raise ConstraintError(f"bad hostlist range {item!r} in {expr!r}")
                    width = len(lo) if lo.startswith("0") else 0
                    out.extend(f"{prefix}{str(i).zfill(width)}{tail}" for i in range(int(lo), int(hi) + 1))
                elif item.isdigit():
                    out.append(f"{prefix}{item}{tail}")
                else:
                    raise ConstraintError(f"bad hostlist item {item!r} in {expr!r}")
    return out


def _split_top(expr: str) -> list[str]:
    parts, depth, cur = [], 0, []
    for ch in expr:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts]


def _expand_idset(s: str) -> set[int]:
    out: set[int] = set()
    for item in s.strip("[]").split(","):
        item = item.strip()
        if not item:
            continue
        if "-" in item:
            lo, hi = item.split("-", 1)
            out.update(range(int(lo), int(hi) + 1))
        else:
            out.add(int(item))
    return out
