"""Kubernetes resource quantities ("500m", "1.5Gi", "2e3") as exact numbers.

Follows apimachinery's resource.Quantity grammar: a signed decimal number, optionally with a decimal
exponent (e/E), followed by a binary SI suffix (Ki..Ei), a decimal SI suffix (n, u, m, "", k, M, G, T, P, E).
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")


class QuantityError(ValueError):
    pass


def parse_quantity(value: str | int | float) -> Decimal:
    """The exact value of a quantity, in base units (cores, bytes, devices)."""
    if isinstance(value, bool):
        raise QuantityError(f"invalid quantity {value!r}")
    if isinstance(value, int | float):
        return Decimal(str(value))
    text = str(value).strip()
    m = _QUANTITY.match(text)
    if not m or m.group(1) in (".", "+.", "-."):
        raise QuantityError(f"invalid quantity {value!r}")
    number, exponent, suffix = m.group(1), m.group(2) or "", m.group(3) or ""
    try:
        base = Decimal(number + exponent)
    except InvalidOperation as exc:
        raise QuantityError(f"invalid quantity {value!r}") from exc
    if suffix in _BINARY:
        return base * _BINARY[suffix]
    return base * _DECIMAL[suffix]


def cpu_millis(value: str | int | float) -> int:
    """CPU in millicores, rounded up (Kubernetes rounds fractional millicores up too)."""
    return math.ceil(parse_quantity(value) * 1000)


def to_int_ceil(value: str | int | float) -> int:
    """A quantity rounded up to a whole base unit (bytes, devices)."""
    return math.ceil(parse_quantity(value))


def format_bytes(n: int) -> str:
    """Bytes as the largest exact binary suffix, e.g. 137438953472 -> '128Gi'."""
    for suffix, factor in sorted(_BINARY.items(), key=lambda kv: -kv[1]):
        if n and n % factor == 0:
            return f"{n // factor}{suffix}"
    return str(n)
