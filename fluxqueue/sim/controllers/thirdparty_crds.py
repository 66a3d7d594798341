"""The CustomResourceDefinitions of the third-party workload kinds the simulated cluster serves: JobSet
(kubernetes-sigs/jobset, ``jobset.x-k8s.io/v1alpha2``) and the Kubeflow MPIJob (kubeflow/mpi-operator,
``kubeflow.org/v2beta1``).

Structural schemas good enough for ``kubectl apply``: the fields the simulated controllers read are typed
(with the real CRDs' schema defaults, e.g. a replicated job's ``replicas: 1`` and ``groupName: default``,
an MPIJob's ``mpiImplementation: OpenMPI``); pod and Job templates, which the real CRDs spell out over
thousands of lines, keep unknown fields (``x-kubernetes-preserve-unknown-fields``). Both have the status
subresource and the real CRDs' printer columns.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fluxqueue.sim.apiserver import APIError
from fluxqueue.sim.apiserver import resources as R

Obj = dict[str, Any]

JOBSET_GROUP, JOBSET_VERSION = "jobset.x-k8s.io", "v1alpha2"
MPIJOB_GROUP, MPIJOB_VERSION = "kubeflow.org", "v2beta1"
JOBSETS: R.Key = (JOBSET_GROUP, JOBSET_VERSION, "jobsets")
MPIJOBS: R.Key = (MPIJOB_GROUP, MPIJOB_VERSION, "mpijobs")
JOBSET_API_VERSION = f"{JOBSET_GROUP}/{JOBSET_VERSION}"
MPIJOB_API_VERSION = f"{MPIJOB_GROUP}/{MPIJOB_VERSION}"

_ANY: Obj = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
_STR: Obj = {"type": "string"}
_BOOL: Obj = {"type": "boolean"}
_INT32: Obj = {"type": "integer", "format": "int32"}
_STRINGS: Obj = {"type": "array", "items": _STR}
_CONDITIONS: Obj = {"type": "array", "items": _ANY}


def _object(properties: Obj, required: list[str] | None = None, preserve: bool = False) -> Obj:
    out: Obj = {"type": "object", "properties": properties}
    if required:
        out["required"] = required
    if preserve:
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def _root(spec: Obj, status: Obj) -> Obj:
    return _object(
        {
            "apiVersion": _STR,
            "kind": _STR,
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        }
    )


def _crd(group: str, version: str, kind: str, plural: str, schema: Obj, columns: list[Obj]) -> Obj:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": kind + "List",
                "plural": plural,
                "singular": kind.lower(),
            },
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                }
            ],
        },
    }


def jobset_crd() -> Obj:
    """jobsets.jobset.x-k8s.io, after api/jobset/v1alpha2/jobset_types.go (kubebuilder markers)."""
    replicated_job = _object(
        {
            "name": _STR,
            "groupName": {"type": "string", "default": "default"},
            "replicas": {**_INT32, "default": 1},
            "template": _ANY,  # batchv1.JobTemplateSpec
            "dependsOn": {"type": "array", "items": _ANY, "maxItems": 5},
        },
        required=["name", "template"],
    )
    spec = _object(
        {
            "replicatedJobs": {"type": "array", "items": replicated_job},
            "network": _object(
                {"enableDNSHostnames": _BOOL, "subdomain": _STR, "publishNotReadyAddresses": _BOOL}
            ),
            "successPolicy": _object(
                {"operator": {"type": "string", "enum": ["All", "Any"]}, "targetReplicatedJobs": _STRINGS},
                required=["operator"],
            ),
            "failurePolicy": _object(
                {
                    "maxRestarts": _INT32,
                    "restartStrategy": {
                        "type": "string",
                        "enum": ["Recreate", "BlockingRecreate", "InPlaceRestart"],
                        "default": "Recreate",
                    },
                    "rules": {"type": "array", "items": _ANY},
                }
            ),
            "startupPolicy": _object(
                {"startupPolicyOrder": {"type": "string", "enum": ["AnyOrder", "InOrder"]}},
                required=["startupPolicyOrder"],
            ),
            "suspend": _BOOL,
            "coordinator": _ANY,
            "managedBy": _STR,
            "ttlSecondsAfterFinished": {**_INT32, "minimum": 0},
            "volumeClaimPolicies": {"type": "array", "items": _ANY},
        },
        preserve=True,  # fields of later JobSet releases pass through
    )
    status = _object(
        {
            "conditions": _CONDITIONS,
            "restarts": _INT32,
            "restartsCountTowardsMax": _INT32,
            "terminalState": _STR,
            "replicatedJobsStatus": {"type": "array", "items": _ANY},
        },
        preserve=True,
    )
    columns = [
        {"name": "TerminalState", "type": "string", "jsonPath": ".status.terminalState"},
        {"name": "Restarts", "type": "string", "jsonPath": ".status.restarts"},
        {
            "name": "Completed",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Completed")].status',
        },
        {"name": "Suspended", "type": "string", "jsonPath": ".spec.suspend"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    return _crd(JOBSET_GROUP, JOBSET_VERSION, "JobSet", "jobsets", _root(spec, status), columns)


def mpijob_crd() -> Obj:
    """mpijobs.kubeflow.org, after manifests/base/kubeflow.org_mpijobs.yaml and pkg/apis/kubeflow/v2beta1."""
    replica_spec = _object(
        {"replicas": _INT32, "restartPolicy": _STR, "template": _ANY},  # template: corev1.PodTemplateSpec
    )
    run_policy = _object(
        {
            "cleanPodPolicy": {"type": "string", "enum": ["None", "Running", "All"]},
            "ttlSecondsAfterFinished": _INT32,
            "activeDeadlineSeconds": {"type": "integer", "format": "int64"},
            "backoffLimit": _INT32,
            "schedulingPolicy": _ANY,
            "suspend": _BOOL,
            "managedBy": _STR,
        },
        preserve=True,
    )
    spec = _object(
        {
            "mpiImplementation": {
                "type": "string",
                "enum": ["OpenMPI", "Intel", "MPICH"],
                "default": "OpenMPI",
            },
            "mpiReplicaSpecs": {"type": "object", "additionalProperties": replica_spec},
            "runPolicy": run_policy,
            "slotsPerWorker": _INT32,
            "sshAuthMountPath": _STR,
            "launcherCreationPolicy": {"type": "string", "enum": ["AtStartup", "WaitForWorkersReady"]},
            "runLauncherAsWorker": _BOOL,
        },
        required=["mpiReplicaSpecs"],
        preserve=True,
    )
    status = _object(
        {
            "conditions": _CONDITIONS,
            "replicaStatuses": {"type": "object", "additionalProperties": _ANY},
            "startTime": _STR,
            "completionTime": _STR,
            "lastReconcileTime": _STR,
        },
        preserve=True,
    )
    columns = [{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]
    return _crd(MPIJOB_GROUP, MPIJOB_VERSION, "MPIJob", "mpijobs", _root(spec, status), columns)


def thirdparty_crds() -> list[Obj]:
    return [jobset_crd(), mpijob_crd()]


async def install(client: Any) -> None:
    """Create both CRDs (an existing one is left as it is: a user may have installed the real one)."""

    async def one(crd: Obj) -> None:
        try:
            await client.create(R.CRDS, crd)
        except APIError as exc:
            if exc.code != 409:
                raise

    await asyncio.gather(*(one(c) for c in thirdparty_crds()))
