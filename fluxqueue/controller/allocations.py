"""The held allocations this process knows, by unit id: written by the pass, read when a unit is started,
bound, shown or ended (node shares never change once written), so those do not read the database each time."""

from __future__ import annotations

from fluxqueue.queue.store import Allocation, QueueStore


class HeldAllocations:
    def __init__(self, store: QueueStore):
        self.store = store
        self._by_unit: dict[int, Allocation] = {}

    async def get(self, unit_id: int) -> Allocation | None:
        """The unit's allocation, from memory when this process wrote or read it before."""
        alloc = self._by_unit.get(unit_id)
        if alloc is None:
            alloc = await self.store.allocation(unit_id)
            if alloc is not None and alloc.released_at is None:
                self._by_unit[unit_id] = alloc
        return alloc

    def hold(self, alloc: Allocation) -> None:
        self._by_unit[alloc.unit_id] = alloc

    def forget(self, unit_id: int) -> None:
        """Given back, or no longer what Fluxion holds (a replay may give it a new Fluxion id)."""
        self._by_unit.pop(unit_id, None)
