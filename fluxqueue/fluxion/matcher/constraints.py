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


# RFC 31 / libjobspec constraint.cpp: a property name may not contain any of these (after a leading "^").
_BAD_PROPERTY_CHARS = frozenset("!&'\"^`|()")


def parse_constraint(doc: Any) -> Constraint:
    """flux-sched libjobspec constraint_parser: one operation per mapping, its operands a sequence."""
    if not isinstance(doc, dict):
        raise ConstraintError("a constraint must be a mapping of one operator to its values")
    if not doc:
        return Constraint("and")  # the empty constraint matches everything
    if len(doc) > 1:
        raise ConstraintError(
            f"a constraint mapping may hold only one operation, got {sorted(map(str, doc))}; "
            "combine them with 'and'"
        )
    op, value = next(iter(doc.items()))
    op = str(op)
    if not isinstance(value, list):
        raise ConstraintError(f"'{op}' operator value must be a sequence")
    if op == "properties":
        for v in value:
            if not isinstance(v, str):
                raise ConstraintError(f"non-string property {v!r}: properties must be strings")
            name = v[1:] if v.startswith("^") else v
            bad = sorted(set(name) & _BAD_PROPERTY_CHARS)
            if bad:
                raise ConstraintError(
                    f"property {v!r} is invalid: a property name may not contain {''.join(bad)} "
                    "(none of !&'\"^`|() is allowed, save one leading ^)"
                )
        return Constraint("properties", tuple(value))
    if op == "hostlist":
        hosts: list[str] = []
        for v in value:
            if not _scalar(v):
                raise ConstraintError(f"'hostlist' values must be hostlist strings, got {v!r}")
            hosts.extend(expand_hostlist(_text(v)))
        return Constraint("hostlist", frozenset(hosts))
    if op == "ranks":
        ranks: set[int] = set()
        for v in value:
            if not _scalar(v):
                raise ConstraintError(f"'ranks' values must be idsets, got {v!r}")
            ranks.update(decode_idset(_text(v)))
        return Constraint("ranks", frozenset(ranks))
    if op in ("and", "or", "not"):
        # Empty lists are valid: and [] matches everything, or [] nothing, not [] nothing.
        return Constraint(op, (), tuple(parse_constraint(v) for v in value))
    raise ConstraintError(f"unknown constraint operator {op!r}")


def _scalar(v: Any) -> bool:
    return v is not None and not isinstance(v, dict | list)


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


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


_IDSET_ITEM = re.compile(r"([0-9]+)(?:-([0-9]+))?\Z")


def decode_idset(s: str) -> set[int]:
    """RFC 22 idset as flux-core's idset_decode reads it: ``1,3-5`` or ``[1,3-5]``; a range needs lo < hi."""
    body = s[1:-1] if s.startswith("[") and s.endswith("]") else s
    out: set[int] = set()
    if body == "":
        return out
    for item in body.split(","):
        m = _IDSET_ITEM.match(item)
        if not m or (m.group(2) is not None and int(m.group(2)) <= int(m.group(1))):
            raise ConstraintError(f"invalid idset {s!r} (write a single id as '5', a range as '3-5')")
        lo = int(m.group(1))
        out.update(range(lo, int(m.group(2)) + 1) if m.group(2) is not None else (lo,))
    return out
