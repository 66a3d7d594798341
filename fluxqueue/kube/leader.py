"""Leader election on a coordination.k8s.io/v1 Lease (client-go's leaderelection, Kueue's defaults).

The holder renews every ``retry_period`` seconds; if it cannot renew within ``renew_deadline`` it stops
leading. Another candidate takes the lease only once ``lease_duration`` has passed since the last renewal,
so at most one scheduling loop runs at a time (given clocks that agree within the margin).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from fluxqueue.kube.client import LEASES, APIError
from fluxqueue.kube.events import now_micro
from fluxqueue.log import get_logger

log = get_logger(__name__)


def default_identity() -> str:
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def _parse_micro(value: str | None) -> float | None:
    if not value:
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    return None


class LeaderElector:
    def __init__(
        self,
        client: Any,
        namespace: str,
        name: str = "fluxqueue-scheduler",
        identity: str | None = None,
        *,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
    ):
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity or default_identity()
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.is_leader = False
        self.transitions = 0
        self.refused = 0  # attempts that found the lease held by someone else (or lost a race to write it)

    def _lease_body(self, existing: dict | None, transitions: int) -> dict:
        now = now_micro()
        spec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.lease_duration)),
            "renewTime": now,
            "leaseTransitions": transitions,
        }
        if existing is None or existing.get("spec", {}).get("holderIdentity") != self.identity:
            spec["acquireTime"] = now
        else:
            spec["acquireTime"] = existing["spec"].get("acquireTime", now)
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": spec,
        }
        if existing is not None:
            body["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
        return body

    async def try_acquire_or_renew(self) -> bool:
        try:
            lease = await self.client.get(LEASES, self.name, namespace=self.namespace)
        except APIError as exc:
            if exc.code != 404:
                raise
            try:
                await self.client.create(LEASES, self._lease_body(None, 0), namespace=self.namespace)
                return True
            except APIError as exc2:
                if exc2.code == 409:
                    self.refused += 1
                    return False
                raise
        spec = lease.get("spec", {})
        holder = spec.get("holderIdentity") or ""
        renewed = _parse_micro(spec.get("renewTime")) or 0.0
        duration = spec.get("leaseDurationSeconds") or self.lease_duration
        if holder and holder != self.identity and time.time() < renewed + duration:
            self.refused += 1
            return False
        transitions = spec.get("leaseTransitions") or 0
        if holder != self.identity:
            transitions += 1
        try:
            await self.client.update(LEASES, self._lease_body(lease, transitions), namespace=self.namespace)
            return True
        except APIError as exc:
            if exc.code == 409:  # someone else wrote the lease first
                self.refused += 1
                return False
            raise

    async def run(self, lead: Callable[[], Awaitable[None]]) -> None:
        """Campaign forever; while leading, run ``lead()`` (cancelled as soon as leadership is lost)."""
        while True:
            if not await self._attempt():
                await asyncio.sleep(self.retry_period)
                continue
            self.is_leader = True
            self.transitions += 1
            log.info("became leader", lease=f"{self.namespace}/{self.name}", identity=self.identity)
            task = asyncio.create_task(lead(), name="leader-work")
            renew = asyncio.create_task(self._renew_loop(), name="leader-renew")
            try:
                done, _ = await asyncio.wait({task, renew}, return_when=asyncio.FIRST_COMPLETED)
                if task in done and not task.cancelled() and task.exception() is not None:
                    log.error("leader work failed", error=repr(task.exception()))
            finally:
                self.is_leader = False
                for t in (task, renew):
                    t.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await t
            log.warning("stopped leading", identity=self.identity)

    async def _attempt(self) -> bool:
        try:
            return await self.try_acquire_or_renew()
        except APIError as exc:
            log.warning("lease request failed", error=str(exc))
            return False

    async def _renew_loop(self) -> None:
        last_ok = time.monotonic()
        while True:
            await asyncio.sleep(self.retry_period)
            if await self._attempt():
                last_ok = time.monotonic()
            elif time.monotonic() - last_ok > self.renew_deadline:
                return

    async def release(self) -> None:
        """Give the lease up (on clean shutdown) so a standby takes over at once, not after lease_duration."""
        try:
            lease = await self.client.get(LEASES, self.name, namespace=self.namespace)
            if lease.get("spec", {}).get("holderIdentity") != self.identity:
                return
            lease["spec"]["holderIdentity"] = ""
            lease["spec"]["leaseDurationSeconds"] = 1
            await self.client.update(LEASES, lease, namespace=self.namespace)
        except APIError as exc:
            log.warning("could not release the lease", error=str(exc))
