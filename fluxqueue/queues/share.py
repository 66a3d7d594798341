"""Resource amounts, what units use, usage decayed over a half-life, and the fair-share value.

Amounts are dicts of resource name -> integer in base units: ``cpu`` in millicores, ``memory`` in bytes,
``nvidia.com/gpu`` in devices (what Fluxion places; :class:`fluxqueue.placement.resources.Resources`).

The fair-share value is Kueue's dominant resource share (pkg/cache/scheduler/fair_sharing.go: the largest,
over resources, of usage above quota divided by what can be lent, then divided by the weight), with one
change: the usage it is computed from is the larger of what the queue holds now and what it held lately,
decayed over a half-life (Slurm's PriorityDecayHalfLife). A queue that just finished a burst therefore
still ranks behind one that did not, and cannot win by timing its submissions (Kueue's DRS forgets at once,
kueue#9734).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from fluxqueue.kube.quantity import cpu_millis, format_bytes, to_int_ceil
from fluxqueue.placement.resources import GPU_RESOURCE

CPU, MEMORY, GPU = "cpu", "memory", GPU_RESOURCE
RESOURCES = (CPU, MEMORY, GPU)  # what a queue can account (what pod sets record)
ALIASES = {"gpu": GPU, "gpus": GPU, "requests.cpu": CPU, "requests.memory": MEMORY}

Amounts = dict[str, int]


def parse_amounts(spec: Mapping[str, object] | None) -> tuple[Amounts, list[str]]:
    """``{cpu: "64", memory: 256Gi, nvidia.com/gpu: 8}`` -> amounts, and the problems found (unknown
    resource names, bad quantities), phrased for the Queue's author."""
    out: Amounts = {}
    problems: list[str] = []
    for raw_name, value in (spec or {}).items():
        name = ALIASES.get(str(raw_name), str(raw_name))
        if name not in RESOURCES:
            problems.append(f"{raw_name} is not accounted (only cpu, memory and {GPU})")
            continue
        try:
            out[name] = cpu_millis(value) if name == CPU else to_int_ceil(value)
        except ValueError:
            problems.append(f"{raw_name}: {value!r} is not a quantity")
    return out, problems


def unit_demand(pod_sets: Iterable[Mapping[str, object]]) -> Amounts:
    """What a unit asks: each pod set's per-pod requests times its count (units.pod_sets JSON)."""
    cpu = memory = gpus = 0
    for ps in pod_sets:
        count = int(ps.get("count") or 0)
        cpu += count * int(ps.get("cpu_millis") or 0)
        memory += count * int(ps.get("memory_bytes") or 0)
        gpus += count * int(ps.get("gpus") or 0)
    return {CPU: cpu, MEMORY: memory, GPU: gpus}


def add(a: Mapping[str, int], b: Mapping[str, int], sign: int = 1) -> Amounts:
    return {r: a.get(r, 0) + sign * b.get(r, 0) for r in RESOURCES}


def describe_amount(resource: str, amount: int) -> str:
    """``8 CPUs`` / ``1.5 CPUs`` / ``256Gi memory`` / ``1 GPU``."""
    if resource == CPU:
        cores = amount / 1000
        return f"{cores:g} CPU" + ("" if cores == 1 else "s")
    if resource == MEMORY:
        return f"{format_bytes(amount)} memory"
    return f"{amount} GPU" + ("" if amount == 1 else "s")


def format_amount(resource: str, amount: int) -> str:
    """A Kubernetes quantity for status: ``4``, ``1500m``, ``16Gi``."""
    if resource == CPU:
        return f"{amount // 1000}" if amount % 1000 == 0 else f"{amount}m"
    if resource == MEMORY:
        return format_bytes(amount)
    return str(amount)


class DecayedUsage:
    """Usage averaged over time with a half-life: after ``half_life`` seconds of holding nothing, half of
    what was held counts (an exponentially weighted mean, in resource units, so it compares with quota).

    A half-life of 0 keeps no memory (Kueue's DRS)."""

    def __init__(self, half_life: float):
        self.half_life = half_life
        self.mean: Amounts = {}
        self.at: float | None = None

    def observe(self, now: float, usage: Mapping[str, int]) -> None:
        """Fold in ``usage``, held since the last observation."""
        if self.at is None or self.half_life <= 0:
            self.mean = {r: float(usage.get(r, 0)) for r in RESOURCES}  # type: ignore[misc]
        else:
            keep = math.pow(2.0, -max(0.0, now - self.at) / self.half_life)
            self.mean = {
                r: self.mean.get(r, 0) * keep + usage.get(r, 0) * (1 - keep)  # type: ignore[misc]
                for r in RESOURCES
            }
        self.at = now

    def restore(self, now: float, mean: Mapping[str, float], age: float) -> None:
        """Continue from ``mean``, computed ``age`` seconds before ``now`` (by a previous leader): the next
        observation decays it over that gap, as if this process had been observing all along (what the
        queue held meanwhile is taken to be what it holds at that observation)."""
        self.mean = {r: float(mean.get(r, 0)) for r in RESOURCES}  # type: ignore[misc]
        self.at = now - max(0.0, age)

    def charged(self, usage: Mapping[str, int]) -> dict[str, float]:
        """What the fair share counts: per resource, the larger of ``usage`` (now) and the decayed mean."""
        return {r: max(float(usage.get(r, 0)), float(self.mean.get(r, 0))) for r in RESOURCES}


def fair_share(
    usage: Mapping[str, float], quota: Mapping[str, int], capacity: Mapping[str, int], weight: float
) -> float:
    """Dominant share of usage above quota, divided by weight: 0 while within quota; a queue with a lower
    value borrows first. ``capacity`` is what can be lent in all (the cluster's nodes)."""
    share = 0.0
    for r in RESOURCES:
        above = usage.get(r, 0) - quota.get(r, 0)
        if above > 0 and capacity.get(r, 0) > 0:
            share = max(share, above / capacity[r])
    return share / weight if weight > 0 else math.inf
