"""Scheduling units: the things fluxqueue queues and places all at once (a Job, a bare pod, a pod group).

A unit says how many pods it needs, what each pod asks for, for how long, at which priority, and where its
pods may run (nodeSelector, required node affinity, tolerations). Builders read Kubernetes objects (JSON dicts)
and validate the labels users set; a bad label raises :class:`UnitError` with a message meant for the user
(the webhook rejects the object with it).

User settings are read from labels first, then annotations (a duration like ``1h30m`` is a valid label value,
but annotations also work); for a Job, from the Job first, then its pod template.

Decisions:

* A Job's size is ``parallelism`` (the API defaults it to 1), capped by ``completions`` when that is smaller:
  the Job controller never runs more pods at once than remain to complete (KEP-2214 semantics).
* A unit of size 0 (``parallelism: 0``) asks for nothing and is not placeable: it waits, suspended, until the
  user raises parallelism. :func:`fluxqueue.placement.jobspec.jobspec_for` refuses it.
* Duration: ``fluxqueue.io/duration`` (seconds, or ``90s``/``30m``/``2h``/``1h30m``/``1d``), else the Job's
  ``activeDeadlineSeconds``, else the pod's ``activeDeadlineSeconds``, else the configured default. Zero is
  refused: to Fluxion 0 means "unlimited", which silently defeats backfill.
* Priority: ``spec.priority`` (the Priority admission plugin resolves it from ``priorityClassName`` on Pods),
  else ``priorityClassName`` looked up in the classes the caller knows (pod templates of Jobs are not
  resolved by the API server), else the default.
* A pod group's members may differ (a launcher and workers): the group asks, per pod, for the per-resource
  maximum over its members. That over-reserves a little but any member fits any slot.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fluxqueue.kube import names
from fluxqueue.placement.resources import Resources, pod_requests

KIND_JOB = "Job"
KIND_POD = "Pod"
KIND_POD_GROUP = "PodGroup"

DEFAULT_QUEUE = "default"


class UnitError(ValueError):
    """A user-facing problem with a workload's fluxqueue settings (labels), phrased for that user."""


@dataclass(frozen=True)
class UnitDefaults:
    """What applies when the workload does not say."""

    default_duration: int = 3600  # seconds
    default_priority: int = 0
    # PriorityClass name -> value, as the controller knows them (Jobs' templates are not resolved by the API).
    priority_classes: Mapping[str, int] = field(default_factory=dict)


@dataclass
class SchedulingUnit:
    kind: str  # "Job" | "Pod" | "PodGroup"
    namespace: str
    name: str  # object name, or the group name for a PodGroup
    uid: str  # the wrapped object's uid ("" for a PodGroup, which has no object of its own)
    size: int  # pods placed together
    per_pod: Resources
    duration: int  # seconds
    priority: int = 0
    exclusive: bool = False
    queue: str = DEFAULT_QUEUE
    group_name: str | None = None
    group_size: int | None = None
    # Where the pods may run, copied from the pod (template) spec.
    node_selector: dict[str, str] = field(default_factory=dict)
    node_affinity_terms: list[dict[str, Any]] = field(default_factory=list)  # required terms, ORed
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    indexed: bool = False  # Indexed Job: bind pods by completion index
    members: tuple[str, ...] = ()  # pod names of a PodGroup seen so far

    @property
    def placeable(self) -> bool:
        return self.size > 0

    @property
    def total(self) -> Resources:
        p = self.per_pod
        return Resources(p.cpu_milli * self.size, p.memory * self.size, p.gpus * self.size, self.size)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.kind}/{self.name}"


# --- reading user settings ------------------------------------------------------------------------------------

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_LABEL_VALUE = re.compile(r"^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$")


def setting(sources: Iterable[dict[str, Any] | None], key: str) -> str | None:
    """The first value of ``key`` among the labels, then annotations, of each metadata in ``sources``."""
    metas = [m for m in sources if m]
    for attr in ("labels", "annotations"):
        for meta in metas:
            values = meta.get(attr) or {}
            if key in values and values[key] is not None:
                return str(values[key])
    return None


def parse_duration(text: str) -> int:
    """Seconds from ``"3600"``, ``"90s"``, ``"30m"``, ``"2h"``, ``"1h30m"``, ``"1d"``; UnitError otherwise."""
    value = text.strip()
    if value.isdigit():
        seconds = int(value)
    else:
        m = _DURATION.match(value)
        if not value or not m:
            raise UnitError(
                f"{names.LABEL_DURATION} must be a number of seconds or a duration like 90s, 30m, 2h, 1h30m, "
                f"got {text!r}"
            )
        d, h, mi, s = (int(g) if g else 0 for g in m.groups())
        seconds = ((d * 24 + h) * 60 + mi) * 60 + s
    if seconds <= 0:
        raise UnitError(f"{names.LABEL_DURATION} must be positive, got {text!r}")
    return seconds


def _parse_bool(key: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    raise UnitError(f'{key} must be "true" or "false", got {text!r}')


def _parse_group_size(text: str) -> int:
    value = text.strip()
    if not value.isdigit() or int(value) < 1:
        raise UnitError(f"{names.LABEL_GROUP_SIZE} must be a positive integer, got {text!r}")
    return int(value)


@dataclass(frozen=True)
class UserSettings:
    """The validated fluxqueue.io/* settings of one object."""

    duration: int | None = None
    exclusive: bool = False
    group_name: str | None = None
    group_size: int | None = None
    queue: str = DEFAULT_QUEUE
    skip: bool = False


def read_settings(sources: Iterable[dict[str, Any] | None]) -> UserSettings:
    """Validate and read every fluxqueue.io/* setting; UnitError names the first bad one."""
    sources = list(sources)
    skip_text = setting(sources, names.LABEL_SKIP)
    skip = _parse_bool(names.LABEL_SKIP, skip_text) if skip_text is not None else False
    duration_text = setting(sources, names.LABEL_DURATION)
    duration = parse_duration(duration_text) if duration_text is not None else None
    exclusive_text = setting(sources, names.LABEL_EXCLUSIVE)
    exclusive = _parse_bool(names.LABEL_EXCLUSIVE, exclusive_text) if exclusive_text is not None else False
    group_name = setting(sources, names.LABEL_GROUP_NAME)
    group_size_text = setting(sources, names.LABEL_GROUP_SIZE)
    group_size = _parse_group_size(group_size_text) if group_size_text is not None else None
    if group_name is not None and not _LABEL_VALUE.match(group_name):
        raise UnitError(
            f"{names.LABEL_GROUP_NAME} must be 1-63 letters, digits, '-', '_' or '.', starting and ending "
            f"with a letter or digit, got {group_name!r}"
        )
    if group_name is not None and group_size is None:
        raise UnitError(
            f"{names.LABEL_GROUP_NAME} is set ({group_name!r}) but {names.LABEL_GROUP_SIZE} is not"
        )
    if group_size is not None and group_name is None:
        raise UnitError(f"{names.LABEL_GROUP_SIZE} is set ({group_size}) but {names.LABEL_GROUP_NAME} is not")
    queue = setting(sources, names.LABEL_QUEUE)
    if queue is not None and not _LABEL_VALUE.match(queue):
        raise UnitError(f"{names.LABEL_QUEUE} must be a valid label value, got {queue!r}")
    return UserSettings(
        duration=duration,
        exclusive=exclusive,
        group_name=group_name,
        group_size=group_size,
        queue=queue or DEFAULT_QUEUE,
        skip=skip,
    )


def _priority(pod_spec: dict[str, Any], defaults: UnitDefaults) -> int:
    if isinstance(pod_spec.get("priority"), int):
        return pod_spec["priority"]
    cls = pod_spec.get("priorityClassName")
    if cls and cls in defaults.priority_classes:
        return int(defaults.priority_classes[cls])
    return defaults.default_priority


def _placement_rules(
    pod_spec: dict[str, Any],
) -> tuple[dict[str, str], list[dict[str, Any]], list[dict[str, Any]]]:
    selector = {str(k): str(v) for k, v in (pod_spec.get("nodeSelector") or {}).items()}
    required = ((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = list(required.get("nodeSelectorTerms") or [])
    tolerations = list(pod_spec.get("tolerations") or [])
    return selector, terms, tolerations


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# --- builders ---------------------------------------------------------------------------------------------------


def job_size(job: dict[str, Any]) -> int:
    """Pods the Job runs at once: parallelism (default 1), capped by completions when set."""
    spec = job.get("spec") or {}
    parallelism = _int_or_none(spec.get("parallelism"))
    parallelism = 1 if parallelism is None else parallelism
    completions = _int_or_none(spec.get("completions"))
    if completions is not None:
        return max(0, min(parallelism, completions))
    return max(0, parallelism)


def unit_from_job(job: dict[str, Any], defaults: UnitDefaults | None = None) -> SchedulingUnit:
    defaults = defaults or UnitDefaults()
    meta = job.get("metadata") or {}
    spec = job.get("spec") or {}
    template = spec.get("template") or {}
    pod_spec = template.get("spec") or {}
    settings = read_settings([meta, template.get("metadata")])
    size = job_size(job)
    if settings.group_size is not None and settings.group_size < size:
        raise UnitError(
            f"{names.LABEL_GROUP_SIZE} ({settings.group_size}) is smaller than the Job's parallelism ({size}); "
            "the group could never hold all of the Job's pods"
        )
    duration = (
        settings.duration
        or _positive(spec.get("activeDeadlineSeconds"))
        or _positive(pod_spec.get("activeDeadlineSeconds"))
        or defaults.default_duration
    )
    selector, terms, tolerations = _placement_rules(pod_spec)
    return SchedulingUnit(
        kind=KIND_JOB,
        namespace=meta.get("namespace") or "default",
        name=meta.get("name") or "",
        uid=meta.get("uid") or "",
        size=size,
        per_pod=pod_requests(template),
        duration=duration,
        priority=_priority(pod_spec, defaults),
        exclusive=settings.exclusive,
        queue=settings.queue,
        group_name=settings.group_name,
        group_size=settings.group_size,
        node_selector=selector,
        node_affinity_terms=terms,
        tolerations=tolerations,
        indexed=spec.get("completionMode") == "Indexed",
    )


def _positive(value: Any) -> int | None:
    v = _int_or_none(value)
    return v if v is not None and v > 0 else None


def group_of(pod: dict[str, Any]) -> tuple[str, str, int] | None:
    """``(namespace, group name, group size)`` when the pod is a pod-group member (labels validated)."""
    settings = read_settings([pod.get("metadata")])
    if settings.group_name is None or settings.group_size is None:
        return None
    return (pod.get("metadata", {}).get("namespace") or "default", settings.group_name, settings.group_size)


def unit_from_pod(pod: dict[str, Any], defaults: UnitDefaults | None = None) -> SchedulingUnit:
    """A bare pod (or a ReplicaSet/StatefulSet pod): kind Pod, or PodGroup when it carries group labels."""
    defaults = defaults or UnitDefaults()
    meta = pod.get("metadata") or {}
    pod_spec = pod.get("spec") or {}
    settings = read_settings([meta])
    selector, terms, tolerations = _placement_rules(pod_spec)
    name = meta.get("name") or meta.get("generateName") or ""
    grouped = settings.group_name is not None
    return SchedulingUnit(
        kind=KIND_POD_GROUP if grouped else KIND_POD,
        namespace=meta.get("namespace") or "default",
        name=settings.group_name if grouped else name,
        uid="" if grouped else (meta.get("uid") or ""),
        size=settings.group_size if grouped else 1,
        per_pod=pod_requests(pod),
        duration=settings.duration
        or _positive(pod_spec.get("activeDeadlineSeconds"))
        or defaults.default_duration,
        priority=_priority(pod_spec, defaults),
        exclusive=settings.exclusive,
        queue=settings.queue,
        group_name=settings.group_name,
        group_size=settings.group_size,
        node_selector=selector,
        node_affinity_terms=terms,
        tolerations=tolerations,
        members=(name,) if grouped else (),
    )


def unit_from_pod_group(pods: list[dict[str, Any]], defaults: UnitDefaults | None = None) -> SchedulingUnit:
    """One PodGroup unit from the members seen so far (all must name the same group).

    Per-pod resources are the per-resource maximum over members; duration and priority the maximum;
    exclusive if any member asks; placement rules are the first member's (members of one gang are expected
    to agree; pods are sorted by name so the choice is deterministic).
    """
    if not pods:
        raise ValueError("a pod group needs at least one member")
    units = [
        unit_from_pod(p, defaults)
        for p in sorted(pods, key=lambda p: p.get("metadata", {}).get("name") or "")
    ]
    first = units[0]
    if first.kind != KIND_POD_GROUP:
        raise UnitError(f"pod {first.name!r} carries no {names.LABEL_GROUP_NAME} label")
    for u in units[1:]:
        if (u.namespace, u.group_name) != (first.namespace, first.group_name):
            raise ValueError(f"pods of different groups: {first.group_name!r} and {u.group_name!r}")
        if u.group_size != first.group_size:
            raise UnitError(
                f"members of pod group {first.group_name!r} disagree on {names.LABEL_GROUP_SIZE}: "
                f"{first.group_size} and {u.group_size}"
            )
    per_pod = first.per_pod
    for u in units[1:]:
        per_pod = per_pod.max(u.per_pod)
    return SchedulingUnit(
        kind=KIND_POD_GROUP,
        namespace=first.namespace,
        name=first.name,
        uid="",
        size=first.size,
        per_pod=per_pod,
        duration=max(u.duration for u in units),
        priority=max(u.priority for u in units),
        exclusive=any(u.exclusive for u in units),
        queue=first.queue,
        group_name=first.group_name,
        group_size=first.group_size,
        node_selector=first.node_selector,
        node_affinity_terms=first.node_affinity_terms,
        tolerations=first.tolerations,
        members=tuple(m for u in units for m in u.members),
    )


def unit_ref_of_pod(
    pod: dict[str, Any], scheduler_name: str = names.SCHEDULER_NAME
) -> tuple[str, str, str] | None:
    """``(kind, namespace, name)`` of the unit a fluxqueue pod belongs to, or None for pods that are not ours.

    Mirrors the webhook's decisions: a pod is ours when it names our scheduler; a pod whose controller owner
    is a Job belongs to that Job's unit; a pod with group labels to its PodGroup; any other pod is its own
    unit. Raises UnitError for group labels the webhook would have refused.
    """
    spec = pod.get("spec") or {}
    if spec.get("schedulerName") != scheduler_name:
        return None
    meta = pod.get("metadata") or {}
    namespace = meta.get("namespace") or "default"
    refs = [r for r in meta.get("ownerReferences") or [] if isinstance(r, dict)]
    owner = next((r for r in refs if r.get("controller")), None)
    if owner and owner.get("kind") == KIND_JOB and str(owner.get("apiVersion", "")).startswith("batch/"):
        return (KIND_JOB, namespace, owner.get("name") or "")
    group = group_of(pod)
    if group is not None:
        return (KIND_POD_GROUP, namespace, group[1])
    return (KIND_POD, namespace, meta.get("name") or "")
