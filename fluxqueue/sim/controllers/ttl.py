"""The TTL-after-finished controller (pkg/controller/ttlafterfinished): delete a finished Job
``ttlSecondsAfterFinished`` simulated seconds after it finished (completionTime, else the time of its Complete
or Failed condition), with background propagation so its pods go too."""

from __future__ import annotations

from typing import Any

from fluxqueue.sim.apiserver import APIError
from fluxqueue.sim.apiserver import resources as R

from ..clock import SimClock, Timers, parse_time
from .base import Controller, Informer, Obj


def finish_time(job: Obj) -> float | None:
    st = job.get("status") or {}
    for c in st.get("conditions") or []:
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            return parse_time(st.get("completionTime") or c.get("lastTransitionTime"))
    return None


def ttl_remaining(job: Obj, now: float, time_scale: float, finished_at: float | None = None) -> float | None:
    """Simulated seconds until the Job expires (<= 0: now), None when it never does (yet).

    ``finished_at``: when the Job was seen finishing, more precise than its second-resolution timestamps."""
    ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
    if ttl is None or job["metadata"].get("deletionTimestamp"):
        return None
    done = finish_time(job)
    if done is None:
        return None
    if finished_at is not None and abs(finished_at - done) < 1.0:
        done = finished_at
    return ttl - (now - done) * time_scale


class TTLAfterFinishedController(Controller):
    name = "ttl-after-finished-controller"

    def __init__(self, client: Any, timers: Timers, clock: SimClock, jobs: Informer):
        super().__init__(client, timers)
        self.clock = clock
        self.jobs = jobs
        self._finished: dict[str, float] = {}  # job uid -> when it was seen finished
        jobs.add_handler(self._on_job)

    def _on_job(self, typ: str, old: Obj | None, new: Obj | None) -> None:
        if new is None:
            if old is not None:
                self._finished.pop(old["metadata"]["uid"], None)
            return
        if (new.get("spec") or {}).get("ttlSecondsAfterFinished") is not None:
            if finish_time(new) is not None:
                self._finished.setdefault(new["metadata"]["uid"], self.clock.now())
            self.queue.add((new["metadata"].get("namespace", ""), new["metadata"]["name"]))

    async def reconcile(self, key: tuple[str, str]) -> None:
        job = self.jobs.get(*key)
        if job is None:
            return
        left = ttl_remaining(
            job, self.clock.now(), self.clock.time_scale, self._finished.get(job["metadata"]["uid"])
        )
        if left is None:
            return
        if left > 0:
            self.queue.add_after(key, left + 0.001)
            return
        try:
            await self.client.delete(
                R.JOBS,
                key[1],
                namespace=key[0],
                propagation_policy="Background",
                preconditions={"uid": job["metadata"]["uid"]},
            )
        except APIError as exc:
            if exc.code not in (404, 409):
                raise
