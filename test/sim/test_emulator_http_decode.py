"""Request bodies: orjson where it reads like json, json for the integers beyond 64 bits orjson reads as floats."""

from __future__ import annotations

import json

import pytest

from fluxqueue.sim.apiserver import resources as R
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


async def test_unknown_fields_are_found_where_they_are(apiserver):
    """fieldValidation: every unknown field of a built-in object, with its path, in the order met; Strict
    refuses them, the default warns."""
    import ssl

    import aiohttp

    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "u", "labels": {"a": "b"}, "what": 2},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "i",
                    "command": ["x"],
                    "resources": {"requests": {"cpu": "1"}, "nope": [1]},
                    "bogus": {"x": 1},
                }
            ],
            "volumes": [{"name": "v", "emptyDir": {"zzz": 1}}],
        },
        "junk": 1,
    }
    want = [
        "metadata.what",
        "spec.containers[0].resources.nope",
        "spec.containers[0].bogus",
        "spec.volumes[0].emptyDir.zzz",
        "junk",
    ]
    ctx = ssl.create_default_context(cadata=apiserver.ca_pem.decode())
    headers = {"Authorization": f"Bearer {apiserver.token}"}
    url = apiserver.url + "/api/v1/namespaces/default/pods"
    async with aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(ssl=ctx)) as s:
        async with s.post(url, json=body, params={"fieldValidation": "Strict"}) as r:
            assert r.status == 400
            msg = (await r.json())["message"]
        assert msg == "strict decoding error: " + ", ".join(f'unknown field "{w}"' for w in want)
        async with s.post(url, json=body) as r:
            assert r.status == 201
            assert r.headers.getall("Warning") == [f'299 - "unknown field "{w}""' for w in want]
        patch = {"metadata": {"$patch": "merge", "labels": {"b": "c"}, "oops": 1}}
        hdrs = {"Content-Type": "application/strategic-merge-patch+json"}
        async with s.patch(url + "/u", json=patch, headers=hdrs) as r:
            assert r.status == 200
            assert r.headers.getall("Warning") == ['299 - "unknown field "metadata.oops""']
            assert (await r.json())["metadata"]["labels"] == {"a": "b", "b": "c"}


async def test_bodies_small_and_large_arrive_whole(apiserver):
    """A body that came with its request is taken as it is; one still arriving is read to its end."""
    import ssl

    import aiohttp

    ctx = ssl.create_default_context(cadata=apiserver.ca_pem.decode())
    headers = {"Authorization": f"Bearer {apiserver.token}"}
    url = apiserver.url + "/api/v1/namespaces/default/configmaps"
    async with aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(ssl=ctx)) as s:
        for name, size in (("small", 10), ("large", 3_000_000)):
            body = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": name},
                "data": {"k": "v" * size},
            }
            async with s.post(url, json=body) as r:
                assert r.status == 201, await r.text()
                assert len((await r.json())["data"]["k"]) == size
    stored = await apiserver.client.get(R.CONFIGMAPS, "large", namespace="default")
    assert stored["data"]["k"] == "v" * 3_000_000
