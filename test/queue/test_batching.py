"""Group commit: items submitted together are flushed together; each caller gets its own result or error."""

from __future__ import annotations

import asyncio

import pytest

from fluxqueue.queue.batching import Batcher


async def test_items_submitted_while_a_flush_is_in_flight_go_in_the_next_batch():
    batches: list[list[int]] = []
    gate = asyncio.Event()

    async def flush(items):
        batches.append(list(items))
        if len(batches) == 1:
            await gate.wait()
        return [i * 10 for i in items]

    b = Batcher(flush)
    first = asyncio.create_task(b.submit(1))
    await asyncio.sleep(0.01)  # the first batch is in flight
    rest = [asyncio.create_task(b.submit(i)) for i in (2, 3, 4)]
    await asyncio.sleep(0.01)
    gate.set()
    assert await first == 10
    assert [await t for t in rest] == [20, 30, 40]
    assert batches == [[1], [2, 3, 4]]
    assert (b.batches, b.items) == (2, 4)


async def test_a_failed_flush_fails_its_callers_and_the_next_batch_still_runs():
    calls = 0

    async def flush(items):
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ValueError("database went away")
        return items

    b = Batcher(flush)
    with pytest.raises(ValueError, match="went away"):
        await b.submit("a")
    assert await b.submit("b") == "b"


async def test_a_batch_is_split_at_max_items():
    sizes = []

    async def flush(items):
        sizes.append(len(items))
        return items

    b = Batcher(flush, max_items=3)
    assert await asyncio.gather(*(b.submit(i) for i in range(7))) == list(range(7))
    assert sizes == [3, 3, 1]


async def test_an_item_whose_result_is_an_exception_fails_its_caller_alone():
    async def flush(items):
        return [ValueError(f"bad {i}") if i == 2 else i for i in items]

    b = Batcher(flush)
    results = await asyncio.gather(*(b.submit(i) for i in range(4)), return_exceptions=True)
    assert results[:2] == [0, 1] and results[3] == 3
    assert isinstance(results[2], ValueError) and str(results[2]) == "bad 2"
