"""The Queue CustomResourceDefinition (``queues.fluxqueue.io``), as data: the chart's crds/ is written from
it by hack/gen-crd.py and the simulator registers it from here.

Shaped after Kueue's ClusterQueue (nominal quota, borrowing, fair-sharing weight, preemption policy) with
Slurm's QOS GrpTRES as the hard limit, in fewer words.
"""

from __future__ import annotations

from typing import Any

from fluxqueue.queues import QUEUE_GROUP, QUEUE_KIND, QUEUE_NAME, QUEUE_PLURAL, QUEUE_VERSION

_AMOUNTS = {
    "type": "object",
    "description": "resource name -> quantity: cpu, memory, nvidia.com/gpu",
    "additionalProperties": {"x-kubernetes-int-or-string": True},
}

_SPEC = {
    "type": "object",
    "properties": {
        "namespaces": {
            "type": "array",
            "items": {"type": "string"},
            "description": "workloads in these namespaces belong here unless their fluxqueue.io/queue label "
            "names another queue",
        },
        "quota": {**_AMOUNTS, "description": "guaranteed; lent to other queues while unused"},
        "limit": {**_AMOUNTS, "description": "hard cap on what the queue holds, borrowing included"},
        "weight": {
            "x-kubernetes-int-or-string": True,
            "description": "share of borrowed capacity, relative to other queues (default 1)",
        },
        "preemption": {
            "type": "object",
            "properties": {
                "withinQueue": {
                    "type": "string",
                    "enum": ["Never", "LowerPriority"],
                    "description": "whether a waiting unit may evict lower-priority units of its own queue",
                },
                "reclaim": {
                    "type": "boolean",
                    "description": "evict borrowed work of other queues to get this queue's quota back "
                    "(default true)",
                },
            },
        },
    },
}

_USAGE = {"type": "object", "additionalProperties": {"type": "string"}}

_STATUS = {
    "type": "object",
    "properties": {
        "usage": {**_USAGE, "description": "what the units holding an allocation ask, per resource"},
        "pending": {**_USAGE, "description": "what the waiting units ask, per resource"},
        "usageSummary": {"type": "string", "description": "usage against quota, for the printer column"},
        "runningUnits": {"type": "integer"},
        "pendingUnits": {"type": "integer"},
        "share": {
            "type": "string",
            "description": "fair-share value: dominant share of usage above quota, divided by weight "
            "(0 while within quota; lower borrows first)",
        },
        "conditions": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["type", "status"],
                "properties": {
                    "type": {"type": "string"},
                    "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
                    "reason": {"type": "string"},
                    "message": {"type": "string"},
                    "lastTransitionTime": {"type": "string", "format": "date-time"},
                },
            },
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    },
}


def queue_crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": QUEUE_NAME},
        "spec": {
            "group": QUEUE_GROUP,
            "scope": "Cluster",
            "names": {
                "plural": QUEUE_PLURAL,
                "singular": QUEUE_KIND.lower(),
                "kind": QUEUE_KIND,
                "listKind": QUEUE_KIND + "List",
                "categories": ["fluxqueue"],
            },
            "versions": [
                {
                    "name": QUEUE_VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": "Quota", "type": "string", "jsonPath": ".spec.quota"},
                        {"name": "Usage", "type": "string", "jsonPath": ".status.usageSummary"},
                        {"name": "Pending", "type": "integer", "jsonPath": ".status.pendingUnits"},
                        {"name": "Running", "type": "integer", "jsonPath": ".status.runningUnits"},
                        {"name": "Share", "type": "string", "jsonPath": ".status.share"},
                        {"name": "Weight", "type": "string", "jsonPath": ".spec.weight", "priority": 1},
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "A tenant queue: guaranteed quota, hard limit, fair-share weight.",
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
