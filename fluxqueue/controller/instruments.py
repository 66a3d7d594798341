"""The controller's measurements, recorded into ``fluxqueue.metrics.Metrics`` (names owned there)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


class Instruments:
    def __init__(self, metrics: Any):
        self.m = metrics

    def observe_pass(self, seconds: float, pending: int, placed: int) -> None:
        self.m.pass_duration.observe(seconds)

    def observe_queued(self, unit: Any) -> None:
        self.m.submissions.labels(kind=unit.kind).inc()

    def observe_scheduled(self, unit: Any) -> None:
        if unit.submitted_at is not None:
            self.m.scheduling_latency.observe((datetime.now(UTC) - unit.submitted_at).total_seconds())

    def observe_bound(self, pod: dict, node: str) -> None:
        self.m.binds.inc()

    def observe_finished(self, unit: Any) -> None:
        if unit.state == "Unsatisfiable":
            self.m.unsatisfiable.inc()
        elif unit.scheduled_at is not None:
            self.m.cancels.inc()

    def observe_match(self, seconds: float, status: str) -> None:
        self.m.match_duration.labels(status=status).observe(seconds)

    def set_leader(self, leading: bool) -> None:
        self.m.leader.set(1 if leading else 0)

    def set_queue_lengths(self, counts: dict[str, int]) -> None:
        self.m.set_queue_lengths(counts)

    def admitted_unplaced(self, queue: str) -> None:
        """Quota-only admission: a unit its queue admitted that Fluxion could not place then."""
        self.m.queue_admitted_unplaced.labels(queue=queue).inc()

    def preempted(self, queue: str, cause: str, outcome: str) -> None:
        self.m.queue_preemptions.labels(queue=queue, cause=cause, outcome=outcome).inc()

    def set_queue(
        self, queue: str, usage: dict, quota: dict, running: int, pending: int, share: float
    ) -> None:
        """One tenant queue's gauges (amounts in base units: CPU in cores)."""
        for resource in ("cpu", "memory", "nvidia.com/gpu"):
            scale = 1000 if resource == "cpu" else 1
            self.m.queue_usage.labels(queue=queue, resource=resource).set(usage.get(resource, 0) / scale)
            self.m.queue_quota.labels(queue=queue, resource=resource).set(quota.get(resource, 0) / scale)
        self.m.queue_units.labels(queue=queue, state="running").set(running)
        self.m.queue_units.labels(queue=queue, state="pending").set(pending)
        self.m.queue_share.labels(queue=queue).set(share)
