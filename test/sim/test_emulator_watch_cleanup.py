"""A watch the API server stops serving stops watching, even when it never delivered an event."""

from __future__ import annotations

from fluxqueue.sim.apiserver import APIServer
from fluxqueue.sim.apiserver import resources as R


async def test_a_watch_closed_before_its_first_event_leaves_no_watcher_behind():
    api = APIServer()
    engine = api.engine
    table = engine.table(engine.resolve(R.PODS))
    before = len(table.watchers)
    stream = await engine.watch(R.PODS, "default")
    assert len(table.watchers) == before + 1
    await stream.aclose()  # e.g. the HTTP client went away before the response started
    assert len(table.watchers) == before
