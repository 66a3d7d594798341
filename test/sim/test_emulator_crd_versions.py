"""A CRD's status, set once its names are accepted, is a new version: the one stored before (what the
ADDED event carries) keeps its own resourceVersion."""

from __future__ import annotations

import asyncio

from support.crds import widget_crd

from fluxqueue.sim.apiserver import resources as R


async def test_crd_status_write_leaves_the_created_version_alone(api):
    e = api.engine
    stream = await e.watch(R.CRDS, None, str(e.store.rv))
    await api.client.create(R.CRDS, widget_crd())
    got = []

    async def read():
        async for typ, obj, _ev in stream:
            got.append((typ, obj))
            if len(got) == 2:
                return

    try:
        await asyncio.wait_for(read(), 5)
    finally:
        await stream.aclose()
    (t1, added), (t2, modified) = got
    assert (t1, t2) == ("ADDED", "MODIFIED")
    assert "status" not in added and modified["status"]["acceptedNames"]["kind"] == "Widget"
    assert int(added["metadata"]["resourceVersion"]) < int(modified["metadata"]["resourceVersion"])
