"""Kubernetes Events (core/v1) for what users must see, aggregated like client-go's EventCorrelator.

A repeat of the same (object, reason, message) bumps ``count`` and ``lastTimestamp`` on the existing Event
instead of creating a new one, so a unit waiting through a hundred passes shows one line, not a hundred.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from fluxqueue.kube.client import EVENTS, APIError
from fluxqueue.log import get_logger

log = get_logger(__name__)


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def involved_object(obj: dict) -> dict:
    meta = obj.get("metadata", {})
    ref = {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "uid": meta.get("uid"),
        "resourceVersion": meta.get("resourceVersion"),
    }
    return {k: v for k, v in ref.items() if v}


class EventRecorder:
    def __init__(self, client: Any, component: str = "fluxqueue", host: str = "", max_remembered: int = 4096):
        self.client = client
        self.component = component
        self.host = host
        self._seen: dict[tuple, tuple[str, int]] = {}
        self._max = max_remembered

    async def record(self, obj: dict, reason: str, message: str, type_: str = "Normal") -> None:
        """Post (or aggregate) an Event; failures are logged, never raised (events are best effort)."""
        ref = involved_object(obj)
        namespace = ref.get("namespace") or "default"
        key = (ref.get("uid") or ref.get("name"), reason, message, type_)
        seen = self._seen.get(key)
        try:
            if seen is not None:
                name, count = seen
                await self.client.patch(
                    EVENTS,
                    name,
                    {"count": count + 1, "lastTimestamp": now_rfc3339()},
                    namespace=namespace,
                    patch_type="merge",
                )
                self._seen[key] = (name, count + 1)
                return
        except APIError as exc:
            if exc.code != 404:
                log.warning("could not update event", reason=reason, error=str(exc))
                return
        name = f"{ref.get('name', 'object')}.{secrets.token_hex(8)}"
        stamp = now_rfc3339()
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": ref,
            "reason": reason,
            "message": message[:1024],
            "type": type_,
            "count": 1,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "eventTime": None,
            "reportingComponent": self.component,
            "reportingInstance": self.host or self.component,
            "source": {"component": self.component, "host": self.host}
            if self.host
            else {"component": self.component},
        }
        try:
            await self.client.create(EVENTS, body, namespace=namespace)
        except APIError as exc:
            log.warning("could not post event", reason=reason, object=ref.get("name"), error=str(exc))
            return
        if len(self._seen) >= self._max:
            self._seen.pop(next(iter(self._seen)))
        self._seen[key] = (name, 1)
