"""Events the simulated controllers post (core/v1 Events, as client-go's EventRecorder writes them)."""

from __future__ import annotations

from typing import Any

from fluxqueue.log import get_logger
from fluxqueue.sim.apiserver import APIError
from fluxqueue.sim.apiserver import resources as R

from ..clock import rfc3339

log = get_logger(__name__)


class EventRecorder:
    """Posts Events about objects; ``enabled=False`` (benchmarks) posts nothing."""

    def __init__(self, client: Any, enabled: bool = True):
        self.client = client
        self.enabled = enabled

    async def record(
        self, obj: dict[str, Any], typ: str, reason: str, message: str, component: str, host: str = ""
    ) -> None:
        if not self.enabled:
            return
        md = obj["metadata"]
        ns = md.get("namespace") or "default"
        now = rfc3339()
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": md["name"] + ".", "namespace": ns},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion", "v1"),
                "kind": obj.get("kind", "Pod"),
                "name": md["name"],
                "namespace": md.get("namespace", ""),
                "uid": md.get("uid", ""),
                "resourceVersion": md.get("resourceVersion", ""),
            },
            "reason": reason,
            "message": message,
            "type": typ,
            "source": {"component": component, **({"host": host} if host else {})},
            "reportingComponent": component,
            "reportingInstance": host,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await self.client.create(R.EVENTS, body, namespace=ns)
        except APIError as exc:  # a namespace being deleted refuses new content
            log.debug("event not recorded", reason=reason, error=str(exc))
