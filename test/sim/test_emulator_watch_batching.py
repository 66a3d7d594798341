"""Watch events the emulator writes in batches: several at once, in order, each a complete JSON line; the
write's answer shares the bytes of its watch event; bookmarks, timeouts and 410 still work over HTTPS."""

from __future__ import annotations

import asyncio
import json
import ssl
import time

import aiohttp
import pytest

from fluxqueue.sim.apiserver import APIServer
from fluxqueue.sim.apiserver import resources as R
from fluxqueue.sim.apiserver.engine import WATCH_BATCH
from fluxqueue.sim.apiserver.store import dumps


def cm(name: str, **data: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


@pytest.fixture
async def session(apiserver: APIServer):
    ctx = ssl.create_default_context(cadata=apiserver.ca_pem.decode())
    headers = {"Authorization": f"Bearer {apiserver.token}"}
    async with aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(ssl=ctx)) as s:
        yield s


async def _lines(resp: aiohttp.ClientResponse, n: int) -> list[dict]:
    out = []
    async for raw in resp.content:  # one line at a time, however the chunks were cut
        assert raw.endswith(b"\n")
        out.append(json.loads(raw))
        if len(out) == n:
            break
    return out


async def test_engine_batches_what_is_waiting_in_order(api):
    rv = str(api.engine.store.rv)
    stream = await api.engine.watch(R.CONFIGMAPS, "default", rv, batched=True)
    for i in range(5):  # no await yields to the watcher between these writes
        await api.client.create(R.CONFIGMAPS, cm(f"c{i}"), namespace="default")
    await api.client.delete(R.CONFIGMAPS, "c0", namespace="default")
    batch = await anext(stream)
    await stream.aclose()
    assert [(t, o["metadata"]["name"]) for t, o, _ev in batch] == [
        *(("ADDED", f"c{i}") for i in range(5)),
        ("DELETED", "c0"),
    ]
    rvs = [int(o["metadata"]["resourceVersion"]) for _t, o, _ev in batch]
    assert rvs == sorted(rvs) and len(set(rvs)) == 6


async def test_engine_batch_is_bounded(api):
    for i in range(WATCH_BATCH + 3):
        await api.client.create(R.CONFIGMAPS, cm(f"c{i}"), namespace="default")
    stream = await api.engine.watch(R.CONFIGMAPS, "default", "0", batched=True)
    first, second = await anext(stream), await anext(stream)
    await stream.aclose()
    assert [len(first), len(second)] == [WATCH_BATCH, 3]
    names = [o["metadata"]["name"] for _t, o, _ev in first + second]
    assert names == sorted(names, key=lambda n: int(n[1:]))


async def test_http_watch_gets_events_written_together_in_order(apiserver, session):
    rv = str(apiserver.engine.store.rv)
    url = apiserver.url + "/api/v1/namespaces/default/configmaps"
    async with session.get(url, params={"watch": "true", "resourceVersion": rv}) as r:
        assert r.status == 200
        await asyncio.sleep(0.05)  # the watch is registered before the writes
        for i in range(20):
            await apiserver.client.create(R.CONFIGMAPS, cm(f"c{i}", i=str(i)), namespace="default")
        await apiserver.client.patch(R.CONFIGMAPS, "c3", {"data": {"i": "x"}}, namespace="default")
        await apiserver.client.delete(R.CONFIGMAPS, "c4", namespace="default")
        got = await asyncio.wait_for(_lines(r, 22), 5)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in got] == [
        *(("ADDED", f"c{i}") for i in range(20)),
        ("MODIFIED", "c3"),
        ("DELETED", "c4"),
    ]
    assert got[20]["object"]["data"] == {"i": "x"}
    assert [e["object"]["data"]["i"] for e in got[:20]] == [str(i) for i in range(20)]


async def test_write_answer_is_the_event_object(apiserver, session):
    """The answer to a write is cut out of the watch line: the same JSON, byte for byte."""
    rv = str(apiserver.engine.store.rv)
    base = apiserver.url + "/api/v1/namespaces/default/configmaps"
    async with session.get(base, params={"watch": "true", "resourceVersion": rv}) as w:
        await asyncio.sleep(0.05)
        async with session.post(base, json=cm("a", k="v")) as r:
            assert r.status == 201
            created = await r.read()
        headers = {"Content-Type": "application/merge-patch+json"}
        async with session.patch(base + "/a", data=b'{"data":{"k":"w"}}', headers=headers) as r:
            assert r.status == 200
            patched = await r.read()
        async with session.get(base + "/a") as r:
            fetched = await r.read()
        events = await asyncio.wait_for(_lines(w, 2), 5)
    assert json.loads(created) == events[0]["object"]
    assert json.loads(patched) == events[1]["object"] == json.loads(fetched)
    assert patched == dumps(events[1]["object"]) + b"\n"  # kube-apiserver ends each JSON body with one
    md = events[1]["object"]["metadata"]
    assert md["managedFields"][0]["manager"] == "Python" and int(md["resourceVersion"]) > int(rv)


async def test_http_watch_bookmarks_and_times_out(apiserver, session):
    url = apiserver.url + "/api/v1/namespaces/default/configmaps"
    params = {"watch": "1", "allowWatchBookmarks": "true", "timeoutSeconds": "1"}
    await apiserver.client.create(R.CONFIGMAPS, cm("x"), namespace="default")
    t0 = time.monotonic()
    async with session.get(url, params=params) as r:
        lines = [json.loads(raw) async for raw in r.content if raw.strip()]
    took = time.monotonic() - t0
    # the initial state, then a bookmark at the current version (interval 0.5 s), then the end at 1 s
    assert lines[0]["type"] == "ADDED" and lines[0]["object"]["metadata"]["name"] == "x"
    bookmarks = [e for e in lines if e["type"] == "BOOKMARK"]
    assert bookmarks and bookmarks[-1]["object"]["kind"] == "ConfigMap"
    assert bookmarks[-1]["object"]["metadata"]["resourceVersion"] == str(apiserver.engine.store.rv)
    assert 0.9 < took < 5


async def test_http_watch_too_old_is_an_error_event(tmp_path):
    api = APIServer(watch_history=3)
    await api.start()
    try:
        for i in range(6):
            await api.client.create(R.CONFIGMAPS, cm(f"c{i}"), namespace="default")
        ctx = ssl.create_default_context(cadata=api.ca_pem.decode())
        headers = {"Authorization": f"Bearer {api.token}"}
        async with aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(ssl=ctx)) as s:
            url = api.url + "/api/v1/namespaces/default/configmaps"
            async with s.get(url, params={"watch": "true", "resourceVersion": "2"}) as r:
                assert r.status == 200
                lines = [json.loads(raw) async for raw in r.content if raw.strip()]
        assert len(lines) == 1 and lines[0]["type"] == "ERROR"
        assert lines[0]["object"]["code"] == 410 and lines[0]["object"]["reason"] == "Expired"
    finally:
        await api.stop()


async def test_expect_100_continue_is_answered(apiserver):
    """What curl sends with a large body: the body only follows a 100 Continue."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1",
        int(apiserver.url.rsplit(":", 1)[1]),
        ssl=ssl.create_default_context(cadata=apiserver.ca_pem.decode()),
        server_hostname="127.0.0.1",
    )
    body = json.dumps(cm("big", k="v" * 2000)).encode()
    writer.write(
        b"POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: x\r\n"
        + f"Authorization: Bearer {apiserver.token}\r\nContent-Type: application/json\r\n".encode()
        + f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n".encode()
    )
    assert await asyncio.wait_for(reader.readline(), 5) == b"HTTP/1.1 100 Continue\r\n"
    assert await reader.readline() == b"\r\n"
    writer.write(body)
    assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"HTTP/1.1 201")
    writer.close()
    assert (await apiserver.client.get(R.CONFIGMAPS, "big", "default"))["data"]["k"] == "v" * 2000
