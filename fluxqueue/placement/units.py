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
* A pod group's members may differ (a launcher and workers): members with equal requests and placement rules
  share a pod set (:mod:`fluxqueue.placement.podsets`), so each pod is placed where its own request fits.
* Group labels of the ecosystem are read as ours: Kueue's plain-pod groups (label
  ``kueue.x-k8s.io/pod-group-name``, annotation ``kueue.x-k8s.io/pod-group-total-count``) and coscheduling's
  (label ``scheduling.x-k8s.io/pod-group``; its size is the PodGroup's ``spec.minMember``, looked up by the
  controller, else ``fluxqueue.io/group-size``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fluxqueue.dependencies.spec import Dependency, DependencyError, parse_dependency
from fluxqueue.kube import names
from fluxqueue.placement.podsets import MAIN, PodSet, add_member, pod_set_of, set_name_for_member
from fluxqueue.placement.resources import Resources

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
    kind: str  # the workload adapter's kind (fluxqueue.workloads): "Job", "Pod", "PodGroup", "JobSet", ...
    namespace: str
    name: str  # object name, or the group name for a PodGroup
    uid: str  # the wrapped object's uid ("" for a PodGroup, which has no object of its own)
    size: int  # pods placed together (a pod group: the size it waits for)
    pod_sets: tuple[PodSet, ...]
    duration: int  # seconds
    priority: int = 0
    exclusive: bool = False
    queue: str = DEFAULT_QUEUE
    group_name: str | None = None
    group_size: int | None = None
    indexed: bool = False  # Indexed Job: bind pods by completion index
    members: tuple[str, ...] = ()  # pod names of a PodGroup seen so far
    dependency: Dependency | None = None  # fluxqueue.io/dependency: held until it holds

    @property
    def placeable(self) -> bool:
        return self.size > 0

    @property
    def per_pod(self) -> Resources:
        """The per-resource maximum over the pod sets (a summary; placement reads each set)."""
        out = self.pod_sets[0].per_pod if self.pod_sets else Resources()
        for s in self.pod_sets[1:]:
            out = out.max(s.per_pod)
        return out

    @property
    def total(self) -> Resources:
        total = Resources(0, 0, 0, 0)
        for s in self.pod_sets:
            total = total + s.total
        return total

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.kind}/{self.name}"


def single_set_unit(
    *,
    per_pod: Resources,
    size: int,
    node_selector: dict[str, str] | None = None,
    node_affinity_terms: list[dict[str, Any]] | None = None,
    tolerations: list[dict[str, Any]] | None = None,
    **fields: Any,
) -> SchedulingUnit:
    """A unit of one pod set of ``size`` alike pods (what most workloads are)."""
    pod_set = PodSet(MAIN, size, per_pod, node_selector or {}, node_affinity_terms or [], tolerations or [])
    return SchedulingUnit(size=size, pod_sets=(pod_set,), **fields)


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
    size_from_podgroup: bool = False  # coscheduling's label without a size: its PodGroup's minMember
    dependency: Dependency | None = None


def _label(sources: list[dict[str, Any] | None], key: str) -> str | None:
    for meta in sources:
        value = ((meta or {}).get("labels") or {}).get(key)
        if value is not None:
            return str(value)
    return None


def _annotation(sources: list[dict[str, Any] | None], key: str) -> str | None:
    for meta in sources:
        value = ((meta or {}).get("annotations") or {}).get(key)
        if value is not None:
            return str(value)
    return None


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
    size_from_podgroup = False
    if group_name is None:
        # Users migrating from Kueue's plain-pod groups or from coscheduling keep their labels.
        group_name = _label(sources, names.LABEL_KUEUE_POD_GROUP)
        if group_name is not None:
            group_size_text = group_size_text or _annotation(sources, names.ANNOTATION_KUEUE_GROUP_COUNT)
            if group_size_text is None:
                raise UnitError(
                    f"{names.LABEL_KUEUE_POD_GROUP} is set ({group_name!r}) but the annotation "
                    f"{names.ANNOTATION_KUEUE_GROUP_COUNT} is not"
                )
        else:
            group_name = _label(sources, names.LABEL_COSCHEDULING_POD_GROUP)
            # coscheduling's size is its PodGroup's minMember, which only the controller can read.
            size_from_podgroup = group_name is not None and group_size_text is None
    group_size = _parse_group_size(group_size_text) if group_size_text is not None else None
    if group_name is not None and not _LABEL_VALUE.match(group_name):
        raise UnitError(
            f"{names.LABEL_GROUP_NAME} must be 1-63 letters, digits, '-', '_' or '.', starting and ending "
            f"with a letter or digit, got {group_name!r}"
        )
    if group_name is not None and group_size is None and not size_from_podgroup:
        raise UnitError(
            f"{names.LABEL_GROUP_NAME} is set ({group_name!r}) but {names.LABEL_GROUP_SIZE} is not"
        )
    if group_size is not None and group_name is None:
        raise UnitError(f"{names.LABEL_GROUP_SIZE} is set ({group_size}) but {names.LABEL_GROUP_NAME} is not")
    queue = setting(sources, names.LABEL_QUEUE)
    if queue is not None and not _LABEL_VALUE.match(queue):
        raise UnitError(f"{names.LABEL_QUEUE} must be a valid label value, got {queue!r}")
    dependency = _dependency(sources, group_name)
    return UserSettings(
        dependency=dependency,
        duration=duration,
        exclusive=exclusive,
        group_name=group_name,
        group_size=group_size,
        queue=queue or DEFAULT_QUEUE,
        skip=skip,
        size_from_podgroup=size_from_podgroup,
    )


def _dependency(sources: list[dict[str, Any] | None], group_name: str | None) -> Dependency | None:
    """fluxqueue.io/dependency, parsed. A pod group's members name the group's dependency; a ``singleton``
    is about the workload's name (its generateName when it has one: Kubernetes names are unique, and a
    recurring workload is one generateName, as a recurring Slurm job is one --job-name)."""
    text = setting(sources, names.ANNOTATION_DEPENDENCY)
    if text is None:
        return None
    meta = (sources[0] if sources else None) or {}
    own = group_name or str(meta.get("name") or "")
    singleton = group_name or str(meta.get("generateName") or "") or own
    try:
        return parse_dependency(text, own_name=own, singleton_name=singleton)
    except DependencyError as exc:
        raise UnitError(str(exc)) from None


def same_dependency(a: Dependency | None, b: Dependency | None) -> bool:
    """Whether two members of a group wait for the same thing (however each spelled it)."""
    return (a.terms, a.any_of) == (b.terms, b.any_of) if a and b else a is b


def _text(dependency: Dependency | None) -> str:
    return dependency.text if dependency else ""


def pod_priority(pod_spec: dict[str, Any], defaults: UnitDefaults) -> int:
    if isinstance(pod_spec.get("priority"), int):
        return pod_spec["priority"]
    cls = pod_spec.get("priorityClassName")
    if cls and cls in defaults.priority_classes:
        return int(defaults.priority_classes[cls])
    return defaults.default_priority


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
    return SchedulingUnit(
        kind=KIND_JOB,
        namespace=meta.get("namespace") or "default",
        name=meta.get("name") or "",
        uid=meta.get("uid") or "",
        size=size,
        pod_sets=(pod_set_of(MAIN, size, template),),
        duration=workload_duration(settings, defaults, spec.get("activeDeadlineSeconds"), pod_spec),
        priority=pod_priority(pod_spec, defaults),
        exclusive=settings.exclusive,
        queue=settings.queue,
        group_name=settings.group_name,
        group_size=settings.group_size,
        indexed=spec.get("completionMode") == "Indexed",
        dependency=settings.dependency,
    )


def workload_duration(
    settings: UserSettings, defaults: UnitDefaults, deadline: Any, pod_spec: dict[str, Any]
) -> int:
    """fluxqueue.io/duration, else the workload's activeDeadlineSeconds, else the pod's, else the default."""
    return (
        settings.duration
        or _positive(deadline)
        or _positive(pod_spec.get("activeDeadlineSeconds"))
        or defaults.default_duration
    )


def _positive(value: Any) -> int | None:
    v = _int_or_none(value)
    return v if v is not None and v > 0 else None


def group_of(pod: dict[str, Any]) -> tuple[str, str, int | None] | None:
    """``(namespace, group name, group size)`` when the pod is a pod-group member (labels validated; the size
    is None when it is a coscheduling PodGroup's, read by the controller)."""
    settings = read_settings([pod.get("metadata")])
    if settings.group_name is None:
        return None
    return (pod.get("metadata", {}).get("namespace") or "default", settings.group_name, settings.group_size)


def unit_from_pod(
    pod: dict[str, Any], defaults: UnitDefaults | None = None, *, group_size: int | None = None
) -> SchedulingUnit:
    """A bare pod (or a ReplicaSet/StatefulSet pod): kind Pod, or PodGroup when it carries group labels.

    ``group_size``: the size of the pod's group when its labels do not say (a coscheduling PodGroup's).
    """
    defaults = defaults or UnitDefaults()
    meta = pod.get("metadata") or {}
    pod_spec = pod.get("spec") or {}
    settings = read_settings([meta])
    name = meta.get("name") or meta.get("generateName") or ""
    grouped = settings.group_name is not None
    size = (settings.group_size or group_size or 0) if grouped else 1
    if grouped and size <= 0:
        raise UnitError(
            f"pod group {settings.group_name!r} has no size: set {names.LABEL_GROUP_SIZE}, or create its "
            "coscheduling PodGroup (spec.minMember) first"
        )
    return SchedulingUnit(
        kind=KIND_POD_GROUP if grouped else KIND_POD,
        namespace=meta.get("namespace") or "default",
        name=settings.group_name if grouped else name,
        uid="" if grouped else (meta.get("uid") or ""),
        size=size,
        pod_sets=(pod_set_of(set_name_for_member(name), 1, pod),),
        duration=workload_duration(settings, defaults, None, pod_spec),
        priority=pod_priority(pod_spec, defaults),
        exclusive=settings.exclusive,
        queue=settings.queue,
        group_name=settings.group_name,
        group_size=size if grouped else None,
        members=(name,) if grouped else (),
        dependency=settings.dependency,
    )


def unit_from_pod_group(pods: list[dict[str, Any]], defaults: UnitDefaults | None = None) -> SchedulingUnit:
    """One PodGroup unit from the members seen so far (all must name the same group).

    Members of equal requests and placement rules share a pod set; duration and priority are the maximum;
    exclusive if any member asks. Pods are taken by name, so the result does not depend on arrival order.
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
    sets: tuple[PodSet, ...] = ()
    for u in units:
        if (u.namespace, u.group_name) != (first.namespace, first.group_name):
            raise ValueError(f"pods of different groups: {first.group_name!r} and {u.group_name!r}")
        if u.group_size != first.group_size:
            raise UnitError(
                f"members of pod group {first.group_name!r} disagree on {names.LABEL_GROUP_SIZE}: "
                f"{first.group_size} and {u.group_size}"
            )
        if not same_dependency(u.dependency, first.dependency):
            raise UnitError(
                f"members of pod group {first.group_name!r} disagree on {names.ANNOTATION_DEPENDENCY}: "
                f"{_text(first.dependency)!r} and {_text(u.dependency)!r}"
            )
        sets = add_member(sets, u.pod_sets[0])
    return SchedulingUnit(
        kind=KIND_POD_GROUP,
        namespace=first.namespace,
        name=first.name,
        uid="",
        size=first.size,
        pod_sets=sets,
        duration=max(u.duration for u in units),
        priority=max(u.priority for u in units),
        exclusive=any(u.exclusive for u in units),
        queue=first.queue,
        group_name=first.group_name,
        group_size=first.group_size,
        members=tuple(m for u in units for m in u.members),
        dependency=first.dependency,
    )
