"""The admission webhook served from its own thread and event loop.

The API server waits on every admission (failurePolicy Ignore lets a pod through unqueued after the timeout),
so admission latency must not depend on how busy the controller's loop is: a scheduling pass or a burst of
watch events would otherwise queue each review behind them (measured: a 0.26 ms handler answered in 65-75 ms
p50 with 1,000 nodes, and timed out at 5,000). The handler is pure (``fluxqueue.webhook.mutate``) and shares
nothing with the controller but the metrics registry, which is thread-safe.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
import threading
from typing import Any

from fluxqueue.log import get_logger
from fluxqueue.runtime import loop_factory

log = get_logger(__name__)


class ThreadedWebhook:
    """``await ThreadedWebhook.start(app, host, port, ssl_context)``; ``.port``; ``await .stop()``."""

    def __init__(self) -> None:
        self._loop = loop_factory()()
        self._thread = threading.Thread(target=self._run, name="fluxqueue-webhook", daemon=True)
        self._server: Any = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()
        self._loop.close()

    @classmethod
    async def start(
        cls, app: Any, host: str, port: int, ssl_context: ssl.SSLContext | None = None
    ) -> ThreadedWebhook:
        from fluxqueue.webhook.server import serve

        self = cls()
        # The loop thread is CPU-bound; each time this thread wakes it waits for the GIL up to the switch
        # interval (5 ms by default), several times per review. 1 ms keeps that wait small.
        sys.setswitchinterval(min(sys.getswitchinterval(), 0.001))
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(serve(app, host, port, ssl_context=ssl_context), self._loop)
        try:
            self._server = await asyncio.wrap_future(future)
        except BaseException:
            self._loop.call_soon_threadsafe(self._loop.stop)
            await asyncio.to_thread(self._thread.join, 5)
            raise
        return self

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def url(self) -> str:
        return self._server.url

    async def stop(self) -> None:
        if self._server is not None:
            future = asyncio.run_coroutine_threadsafe(self._server.stop(), self._loop)
            try:
                await asyncio.wrap_future(future)
            except Exception as exc:
                log.warning("webhook stop failed", error=repr(exc))
            self._server = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        await asyncio.to_thread(self._thread.join, 5)
