"""The in-process client: the C1 calls, going through the same pipeline as HTTP requests.

Objects are plain dicts in their JSON form; every result is the caller's own copy.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from .engine import Ctx, Engine
from .resources import Key
from .store import clone

Obj = dict[str, Any]


class Client:
    def __init__(
        self, engine: Engine, field_manager: str = "fluxqueue-sim", user_agent: str = "fluxqueue-sim/0"
    ):
        self._engine = engine
        self._manager = field_manager
        self._ua = user_agent

    def _ctx(self, dry_run: bool = False, field_manager: str | None = None, force: bool = False) -> Ctx:
        return Ctx(
            user_agent=self._ua, dry_run=dry_run, field_manager=field_manager or self._manager, force=force
        )

    async def create(
        self,
        key: Key,
        body: Obj,
        namespace: str | None = None,
        subresource: str | None = None,
        dry_run: bool = False,
        field_manager: str | None = None,
    ) -> Obj:
        return clone(
            await self._engine.create(key, body, namespace, subresource, self._ctx(dry_run, field_manager))
        )

    async def get(
        self, key: Key, name: str, namespace: str | None = None, subresource: str | None = None
    ) -> Obj:
        return clone(await self._engine.get(key, name, namespace, subresource))

    async def list(
        self,
        key: Key,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_: str | None = None,
    ) -> Obj:
        return clone(
            await self._engine.list(key, namespace, label_selector, field_selector, limit, continue_)
        )

    async def update(
        self,
        key: Key,
        body: Obj,
        namespace: str | None = None,
        subresource: str | None = None,
        dry_run: bool = False,
        field_manager: str | None = None,
    ) -> Obj:
        return clone(
            await self._engine.update(key, body, namespace, subresource, self._ctx(dry_run, field_manager))
        )

    async def patch(
        self,
        key: Key,
        name: str,
        patch: Any,
        namespace: str | None = None,
        patch_type: str = "merge",
        subresource: str | None = None,
        dry_run: bool = False,
        field_manager: str | None = None,
        force: bool = False,
        copy: bool = True,
    ) -> Obj:
        """``copy=False`` answers the stored object itself (no deep copy): the caller must never mutate it."""
        ctx = self._ctx(dry_run, field_manager, force)
        out = await self._engine.patch(key, name, patch, namespace, patch_type, subresource, ctx)
        return clone(out) if copy else out

    async def delete(
        self,
        key: Key,
        name: str,
        namespace: str | None = None,
        propagation_policy: str | None = None,
        grace_period_seconds: int | None = None,
        dry_run: bool = False,
        preconditions: dict[str, str] | None = None,
    ) -> Obj:
        ctx = self._ctx(dry_run)
        obj = await self._engine.delete(
            key, name, namespace, propagation_policy, grace_period_seconds, ctx, preconditions
        )
        return clone(obj)

    async def delete_collection(
        self,
        key: Key,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        propagation_policy: str | None = None,
    ) -> Obj:
        return clone(
            await self._engine.delete_collection(
                key, namespace, label_selector, field_selector, propagation_policy, None, self._ctx()
            )
        )

    async def watch(
        self,
        key: Key,
        namespace: str | None = None,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        allow_bookmarks: bool = False,
        timeout_seconds: float | None = None,
        send_initial_events: bool = False,
        copy_objects: bool = True,
    ) -> AsyncIterator[Obj]:
        """Events {"type", "object"} until the caller stops iterating; APIError(410) when the version is too old.

        ``copy_objects=False`` hands out the stored objects themselves (no copy per watcher): faster for
        thousands of watchers, but the caller must then never mutate them.
        """
        stream = await self._engine.watch(
            key,
            namespace,
            resource_version,
            label_selector,
            field_selector,
            allow_bookmarks,
            timeout_seconds,
            send_initial_events,
        )
        try:
            async for typ, obj, _ev in stream:
                yield {"type": typ, "object": clone(obj) if copy_objects else obj}
        finally:
            await stream.aclose()
