"""A directory (or file) of Kubernetes manifests as a workload.

Every ``*.yaml``/``*.yml``/``*.json`` file is read (multi-document YAML too), in sorted path order. Pods,
Jobs, JobSets (jobset.x-k8s.io) and MPIJobs (kubeflow.org) become units; Pods sharing a ``fluxqueue.io/group-name`` in one namespace are one pod group. When to
submit a unit comes from ``sim.fluxqueue.io/submit-at`` (``"30s"``, ``"2m"``; default 0) on the object; for a
group, the earliest of its members. Other objects (Namespaces, ConfigMaps, ...) are created first, at time 0,
and are not tracked as units.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from fluxqueue.errors import ConfigError
from fluxqueue.kube import names
from fluxqueue.placement.units import job_size
from fluxqueue.sim.workload.model import (
    KIND_GROUP,
    KIND_JOB,
    KIND_JOBSET,
    KIND_MPIJOB,
    KIND_POD,
    WorkloadItem,
    parse_sim_seconds,
)

SETUP_KIND = "Setup"
_SUFFIXES = (".yaml", ".yml", ".json")
_UNIT_KINDS = (KIND_POD, KIND_JOB, KIND_JOBSET, KIND_MPIJOB)


def _count(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else default


def jobset_size(obj: dict[str, Any]) -> int:
    """Pods a JobSet runs at once: replicas x min(parallelism, completions) of each replicated job."""
    total = 0
    for rjob in (obj.get("spec") or {}).get("replicatedJobs") or []:
        jspec = (rjob.get("template") or {}).get("spec") or {}
        parallelism = _count(jspec.get("parallelism"), 1)
        completions = _count(jspec.get("completions"), parallelism)
        total += _count(rjob.get("replicas"), 1) * min(parallelism, completions)
    return total


def mpijob_size(obj: dict[str, Any]) -> int:
    """The launcher (1 unless its replicas say otherwise) and the workers (0 by default)."""
    specs = (obj.get("spec") or {}).get("mpiReplicaSpecs") or {}
    launcher, worker = specs.get("Launcher"), specs.get("Worker")
    return (_count(launcher.get("replicas"), 1) if launcher else 0) + (
        _count(worker.get("replicas"), 0) if worker else 0
    )


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ConfigError(f"workload {path}: no such file or directory")
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in _SUFFIXES)
    if not files:
        raise ConfigError(f"workload {path}: no .yaml, .yml or .json files")
    return files


def _documents(path: Path) -> list[dict[str, Any]]:
    try:
        docs = list(yaml.safe_load_all(path.read_text()))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    out = []
    for index, doc in enumerate(docs, start=1):
        if doc is None:
            continue
        if not isinstance(doc, dict) or not doc.get("kind") or not doc.get("apiVersion"):
            raise ConfigError(f"{path} document {index}: not a Kubernetes object (needs apiVersion and kind)")
        if doc["kind"].endswith("List") and isinstance(doc.get("items"), list):
            out.extend(doc["items"])
        else:
            out.append(doc)
    return out


def _label(obj: dict[str, Any], key: str) -> str | None:
    meta = obj.get("metadata") or {}
    for attr in ("labels", "annotations"):
        value = (meta.get(attr) or {}).get(key)
        if value is not None:
            return str(value)
    return None


def _submit_at(obj: dict[str, Any], where: str) -> float:
    text = ((obj.get("metadata") or {}).get("annotations") or {}).get(names.SIM_SUBMIT_AT)
    return 0.0 if text is None else parse_sim_seconds(text, f"{where} {names.SIM_SUBMIT_AT}")


def load_manifests(path: str | Path, default_namespace: str = "default") -> list[WorkloadItem]:
    """Units (and setup objects) from ``path``, sorted by submit time (stable: file order among equals)."""
    root = Path(path)
    items: list[WorkloadItem] = []
    groups: dict[tuple[str, str], WorkloadItem] = {}
    for file in _files(root):
        for obj in _documents(file):
            meta = obj.setdefault("metadata", {})
            name = meta.get("name")
            kind = obj["kind"]
            where = f"{file}: {kind} {name or meta.get('generateName') or '?'}"
            if not name and kind in _UNIT_KINDS:
                raise ConfigError(f"{where}: needs metadata.name (the report tracks units by name)")
            if kind not in _UNIT_KINDS:
                items.append(WorkloadItem(SETUP_KIND, meta.get("namespace") or "", name or "", 0.0, [obj], 0))
                continue
            namespace = meta.setdefault("namespace", default_namespace)
            at = _submit_at(obj, where)
            exclusive = (_label(obj, names.LABEL_EXCLUSIVE) or "").lower() == "true"
            if kind == KIND_JOB:
                items.append(WorkloadItem(KIND_JOB, namespace, name, at, [obj], job_size(obj), exclusive))
                continue
            if kind in (KIND_JOBSET, KIND_MPIJOB):
                size = jobset_size(obj) if kind == KIND_JOBSET else mpijob_size(obj)
                items.append(WorkloadItem(kind, namespace, name, at, [obj], size, exclusive))
                continue
            group = _label(obj, names.LABEL_GROUP_NAME)
            if group is None:
                items.append(WorkloadItem(KIND_POD, namespace, name, at, [obj], 1, exclusive))
                continue
            size_text = _label(obj, names.LABEL_GROUP_SIZE)
            if size_text is None or not size_text.isdigit() or int(size_text) < 1:
                raise ConfigError(f"{where}: {names.LABEL_GROUP_SIZE} must be a positive integer")
            unit = groups.get((namespace, group))
            if unit is None:
                unit = WorkloadItem(KIND_GROUP, namespace, group, at, [], int(size_text), exclusive)
                groups[(namespace, group)] = unit
                items.append(unit)
            unit.manifests.append(obj)
            unit.submit_at = min(unit.submit_at, at)
    for unit in groups.values():
        if len(unit.manifests) < unit.pods:
            raise ConfigError(
                f"{root}: pod group {unit.namespace}/{unit.name} declares {names.LABEL_GROUP_SIZE}="
                f"{unit.pods} but only {len(unit.manifests)} pods are given; it could never start"
            )
    items.sort(key=lambda it: (it.kind != SETUP_KIND, it.submit_at))
    return items
