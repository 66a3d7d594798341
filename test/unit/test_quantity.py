from decimal import Decimal

import pytest

from fluxqueue.kube.quantity import QuantityError, cpu_millis, format_bytes, parse_quantity, to_int_ceil


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("500m", Decimal("0.5")),
        ("2", Decimal(2)),
        ("1.5Gi", Decimal(1.5 * 2**30)),
        ("128Mi", Decimal(128 * 2**20)),
        ("1k", Decimal(1000)),
        ("2e3", Decimal(2000)),
        ("100n", Decimal("1e-7")),
    ],
)
def test_quantities_parse_to_exact_base_units(text, expected):
    assert parse_quantity(text) == expected


def test_cpu_is_counted_in_millicores_rounded_up():
    assert cpu_millis("100m") == 100
    assert cpu_millis("1.0005") == 1001
    assert cpu_millis(2) == 2000


def test_bytes_round_up_and_format_back():
    assert to_int_ceil("1.5Ki") == 1536
    assert format_bytes(128 * 2**30) == "128Gi"
    assert format_bytes(1000) == "1000"


@pytest.mark.parametrize("bad", ["", "abc", "1Qi", ".", "1..2", True])
def test_malformed_quantities_are_refused(bad):
    with pytest.raises(QuantityError):
        parse_quantity(bad)
