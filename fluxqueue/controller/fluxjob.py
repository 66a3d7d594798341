"""The FluxJob object: its body at creation and its status from the queue row (pure functions)."""

from __future__ import annotations

from datetime import datetime

import orjson
import yaml

from fluxqueue.kube import names
from fluxqueue.kube.watch import metadata_only
from fluxqueue.placement.podsets import describe_pod_sets, pod_sets_from_json
from fluxqueue.queue.store import (
    CANCELLED,
    FAILED,
    HELD,
    PREEMPTED,
    QUEUED,
    RESERVED,
    RUNNING,
    SCHEDULED,
    SUCCEEDED,
    UNSATISFIABLE,
    WAITING,
    Unit,
)
from fluxqueue.workloads.registry import workload

API_VERSION = f"{names.CRD_GROUP}/{names.CRD_VERSION}"
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml when present: 20x faster
_YAML_CACHE: dict[str, str] = {}  # jobspec JSON -> its YAML: a flood of like units renders each shape once
_YAML_CACHE_SIZE = 1024
_COMMAND = "__fluxqueue_task_command__"  # stands for the tasks' command (names the unit) in a cached shape


def jobspec_yaml(jobspec: dict) -> str:
    """The jobspec as YAML for people to read. Its tasks' command names the unit, so the shape is rendered
    (and cached) with a placeholder and the command goes in as a flow sequence of JSON strings (valid YAML)."""
    tasks = jobspec.get("tasks")
    commands = [t.get("command") for t in tasks] if isinstance(tasks, list) else []
    if (
        len(commands) != 1
        or not isinstance(commands[0], list)
        or not all(isinstance(p, str) for p in commands[0])
    ):
        return yaml.dump(jobspec, Dumper=_DUMPER, sort_keys=False)
    shape = {**jobspec, "tasks": [{**tasks[0], "command": _COMMAND}]}
    key = orjson.dumps(shape).decode()
    text = _YAML_CACHE.get(key)
    if text is None:
        if len(_YAML_CACHE) >= _YAML_CACHE_SIZE:
            _YAML_CACHE.clear()
        text = _YAML_CACHE[key] = yaml.dump(shape, Dumper=_DUMPER, sort_keys=False)
    flow = "[" + ", ".join(orjson.dumps(part).decode() for part in commands[0]) + "]"
    return text.replace(_COMMAND, flow, 1)


def rfc3339(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def owner_reference(obj: dict, *, controller: bool = True) -> dict:
    meta = obj["metadata"]
    return {
        "apiVersion": obj.get("apiVersion") or ("batch/v1" if obj.get("kind") == "Job" else "v1"),
        "kind": obj.get("kind") or "Pod",
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": controller,
        "blockOwnerDeletion": False,
    }


def fluxjob_body(unit: Unit, owners: list[dict], jobspec: dict | None = None) -> dict:
    """A FluxJob for ``unit``, owned by the wrapped object(s) so the garbage collector deletes it with them.

    A pod group is owned by every member (no controller owner): it goes once the last member is gone. Its
    pod sets grow as members join, so they are shown in the status (``status.podSets``), not the spec.
    """
    by_members = workload(unit.kind).owned_by_members
    refs = [owner_reference(o, controller=not by_members) for o in owners]
    wrapped = {"kind": unit.kind, "name": unit.object_name}
    if owners and not by_members:
        wrapped["apiVersion"] = refs[0]["apiVersion"]
        wrapped["uid"] = owners[0]["metadata"]["uid"]
    spec = {
        "wrapped": wrapped,
        "size": unit.size,
        "duration": unit.duration_s,
        "priority": unit.priority,
        "exclusive": unit.exclusive,
        "queue": unit.queue,
    }
    if jobspec is not None:
        spec["jobspec"] = jobspec_yaml(jobspec)
    if unit.group_name:
        spec["group"] = unit.group_name
    if unit.dependency:
        spec["dependency"] = unit.dependency
    return {
        "apiVersion": API_VERSION,
        "kind": names.CRD_KIND,
        "metadata": {
            "name": unit.name,
            "namespace": unit.namespace,
            "labels": {names.LABEL_MANAGED: "true"},
            "ownerReferences": refs,
        },
        "spec": spec,
    }


_CONDITION_OF = {
    QUEUED: ("Queued", "True"),
    RESERVED: ("Queued", "True"),
    SCHEDULED: ("Scheduled", "True"),
    RUNNING: ("Scheduled", "True"),
}


def fluxjob_status(
    unit: Unit,
    *,
    nodes: list[str] | None = None,
    jobid: int | None = None,
    position: int | None = None,
    reserved_start: datetime | None = None,
    members: int | None = None,
) -> dict:
    """The status subresource for a unit as the queue has it."""
    status: dict = {"phase": unit.state, "reason": unit.reason}
    if unit.pod_sets:
        status["podSets"] = describe_pod_sets(pod_sets_from_json(unit.pod_sets))
    if nodes:
        status["nodes"] = nodes
        status["nodeList"] = ",".join(nodes)
    if jobid is not None and unit.state in (SCHEDULED, RUNNING, SUCCEEDED, FAILED, CANCELLED):
        status["fluxionJobID"] = jobid
    if position is not None and unit.state in (QUEUED, RESERVED):
        status["queuePosition"] = position
    if reserved_start is not None and unit.state == RESERVED:
        status["reservedStart"] = rfc3339(reserved_start)
    if members is not None and unit.state == WAITING:
        status["members"] = members
    if unit.requeues:
        status["requeues"] = unit.requeues
    for key, value in (
        ("queuedAt", unit.queued_at),
        ("scheduledAt", unit.scheduled_at),
        ("finishedAt", unit.finished_at),
    ):
        if value:
            status[key] = rfc3339(value)
    conditions = []
    if unit.state == HELD:
        # Slurm's pending reason Dependency: what it waits for, in words.
        conditions.append(_cond("Held", "True", "Dependency", unit.reason, unit.submitted_at))
    if unit.queued_at:
        conditions.append(_cond("Queued", "True", "Queued", "in the queue", unit.queued_at))
    if unit.scheduled_at:
        conditions.append(
            _cond(
                "Scheduled",
                "True",
                "Scheduled",
                unit.reason if unit.state == SCHEDULED else "placed by Fluxion",
                unit.scheduled_at,
            )
        )
    if unit.state == PREEMPTED:
        conditions.append(_cond("Preempted", "True", "Preempted", unit.reason, None))
    elif unit.requeues:
        runs = "once" if unit.requeues == 1 else f"{unit.requeues} times"
        conditions.append(_cond("Preempted", "False", "Requeued", f"preempted and requeued {runs}", None))
    if unit.finished_at:
        conditions.append(_cond("Finished", "True", unit.state, unit.reason, unit.finished_at))
    if unit.state == UNSATISFIABLE:
        conditions.append(_cond("Unsatisfiable", "True", "Unsatisfiable", unit.reason, unit.finished_at))
    status["conditions"] = conditions
    return status


def _cond(type_: str, status: str, reason: str, message: str, when: datetime | None) -> dict:
    cond = {"type": type_, "status": status, "reason": reason, "message": message or ""}
    if when:
        cond["lastTransitionTime"] = rfc3339(when)
    return cond


def fluxjob_summary(obj: dict) -> dict:
    """What the controller caches of a FluxJob: that it exists and who owns it (``metadata_only``), and its
    phase, so that the sweep finds a status a crash left behind (an ended unit still shown running)."""
    out = metadata_only(obj)
    phase = (obj.get("status") or {}).get("phase")
    if phase:
        out["status"] = {"phase": phase}
    return out
