"""The event loop our processes run on (fluxqueue.runtime)."""

from __future__ import annotations

import asyncio

import uvloop  # a dependency on every platform we support (pyproject: not on Windows)

from fluxqueue import runtime


def test_uvloop_runs_our_coroutines_when_installed_and_the_standard_loop_can_be_forced(monkeypatch):
    async def loop_type() -> type:
        await asyncio.sleep(0)
        return type(asyncio.get_running_loop())

    assert runtime.run(loop_type()) is uvloop.Loop
    monkeypatch.setenv("FLUXQUEUE_EVENT_LOOP", "asyncio")
    assert not issubclass(runtime.run(loop_type()), uvloop.Loop)
