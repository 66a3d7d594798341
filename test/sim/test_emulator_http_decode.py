"""Request bodies: orjson where it reads like json, json for the integers beyond 64 bits orjson reads as floats."""

from __future__ import annotations

import json

import pytest

from fluxqueue.sim.apiserver.http import loads_json


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a": 123456789012345678, "t": "2026-01-01T00:00:00Z", "l": [1, 2.5, -3]}',
        b'{"big": 18446744073709551616}',
        b'{"neg": -92233720368547758090, "s": "x"}',
        b"[1234567890123456789]",
        '{"u": "\u00e9\u6f22"}'.encode(),
    ],
)
def test_loads_json_reads_as_json_does(raw):
    got, want = loads_json(raw), json.loads(raw)
    assert got == want
    assert json.dumps(got) == json.dumps(want)  # same types: an int stays an int


def test_loads_json_errors_are_jsons():
    with pytest.raises(json.JSONDecodeError):
        loads_json(b'{"a": ')
