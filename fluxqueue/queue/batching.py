"""Group commit for the controller's small writes: many callers, one statement.

Callers ``await batcher.submit(item)``; items submitted while the previous statement is in flight are written
together by the next one. Under light load every item goes alone at once (no added delay); under a flood,
hundreds of state changes cost one round trip and one commit instead of hundreds (PostgreSQL's own
``commit_delay`` idea, done in the client).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    def __init__(
        self, flush: Callable[[list[T]], Awaitable[Sequence[R | BaseException]]], *, max_items: int = 500
    ):
        """``flush(items)`` writes a batch and returns one result per item, in order; a result that is an
        exception is raised to that item's caller alone."""
        self._flush = flush
        self._max = max_items
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._runner: asyncio.Task | None = None
        self.batches = 0
        self.items = 0

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run())
        return await future

    async def _run(self) -> None:
        await asyncio.sleep(0)  # everything submitted in this turn of the event loop goes in one batch
        while self._pending:
            batch, self._pending = self._pending[: self._max], self._pending[self._max :]
            live = [(item, f) for item, f in batch if not f.cancelled()]
            if not live:
                continue
            try:
                results = await self._flush([item for item, _ in live])
                if len(results) != len(live):
                    raise RuntimeError(f"batch of {len(live)} returned {len(results)} results")
            except asyncio.CancelledError:
                for _, f in live + self._pending:
                    f.cancel()
                self._pending = []
                raise
            except Exception as exc:
                for _, f in live:
                    if not f.done():
                        f.set_exception(exc)
                continue
            self.batches += 1
            self.items += len(live)
            for (_, f), result in zip(live, results, strict=True):
                if f.done():
                    continue
                if isinstance(result, BaseException):
                    f.set_exception(result)
                else:
                    f.set_result(result)
