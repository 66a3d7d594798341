"""The FluxJob CustomResourceDefinition, as data. The single source: the chart renders this same document.

``python -c 'from fluxqueue.controller.crd import crd_yaml; print(crd_yaml())'`` prints it.
"""

from __future__ import annotations

from typing import Any

import yaml

from fluxqueue.kube import names

PHASES = [
    "Waiting",
    "Held",
    "Queued",
    "Reserved",
    "Scheduled",
    "Running",
    "Preempted",
    "Succeeded",
    "Failed",
    "Unsatisfiable",
    "Cancelled",
]

_RESOURCES = {
    "type": "object",
    "properties": {
        "cpu": {"type": "string", "description": "CPU per pod (cores are granted rounded up)"},
        "memory": {"type": "string"},
        "gpus": {"type": "integer"},
    },
}

_SPEC = {
    "type": "object",
    "description": "What is queued: the wrapped object and what each of its pods needs.",
    "properties": {
        "wrapped": {
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string", "description": "Job, Pod, PodGroup, JobSet, MPIJob"},
                "name": {"type": "string"},
                "uid": {"type": "string"},
            },
        },
        "size": {"type": "integer", "description": "pods placed together (all or nothing)"},
        "resources": _RESOURCES,
        "duration": {"type": "integer", "description": "walltime in seconds (drives backfill)"},
        "priority": {"type": "integer"},
        "exclusive": {"type": "boolean"},
        "group": {"type": "string"},
        "queue": {"type": "string"},
        "dependency": {
            "type": "string",
            "description": "fluxqueue.io/dependency as written (sbatch --dependency syntax): held until it holds",
        },
        "jobspec": {"type": "string", "description": "the Fluxion jobspec (YAML)"},
    },
}

_CONDITION = {
    "type": "object",
    "required": ["type", "status"],
    "properties": {
        "type": {"type": "string"},
        "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
        "reason": {"type": "string"},
        "message": {"type": "string"},
        "lastTransitionTime": {"type": "string", "format": "date-time"},
    },
}

_STATUS = {
    "type": "object",
    "properties": {
        "phase": {"type": "string", "enum": PHASES},
        "reason": {"type": "string", "description": "why the unit is where it is, in plain words"},
        "podSets": {
            "type": "string",
            "description": "the unit's pod sets, e.g. 'launcher 1 x 8 CPU, worker 2 x 1 CPU'",
        },
        "nodes": {"type": "array", "items": {"type": "string"}},
        "nodeList": {"type": "string", "description": "nodes joined by commas (for the printer column)"},
        "fluxionJobID": {"type": "integer"},
        "queuePosition": {"type": "integer"},
        "reservedStart": {"type": "string", "format": "date-time"},
        "members": {"type": "integer", "description": "pod group members present"},
        "requeues": {"type": "integer", "description": "times preempted and requeued (Slurm: Restarts)"},
        "queuedAt": {"type": "string", "format": "date-time"},
        "scheduledAt": {"type": "string", "format": "date-time"},
        "finishedAt": {"type": "string", "format": "date-time"},
        "conditions": {
            "type": "array",
            "items": _CONDITION,
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    },
}


def fluxjob_crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": names.CRD_NAME},
        "spec": {
            "group": names.CRD_GROUP,
            "scope": "Namespaced",
            "names": {
                "plural": names.CRD_PLURAL,
                "singular": names.CRD_KIND.lower(),
                "kind": names.CRD_KIND,
                "listKind": names.CRD_KIND + "List",
                "shortNames": [names.CRD_SHORT_NAME],
                "categories": ["all", "fluxqueue"],
            },
            "versions": [
                {
                    "name": names.CRD_VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                        {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                        {"name": "Pod Sets", "type": "string", "jsonPath": ".status.podSets"},
                        {"name": "Nodes", "type": "string", "jsonPath": ".status.nodeList"},
                        {"name": "Reason", "type": "string", "jsonPath": ".status.reason", "priority": 1},
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "A unit fluxqueue schedules: a Job, a bare pod or a pod group.",
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": _SPEC,
                                "status": _STATUS,
                            },
                        }
                    },
                }
            ],
        },
    }


def crd_yaml() -> str:
    return yaml.safe_dump(fluxjob_crd(), sort_keys=False)
