"""The ReplicationController controller (pkg/controller/replication): the ReplicaSet controller's logic for
core/v1 ReplicationControllers (kube-controller-manager runs the same code, adapting the type), so a
ReplicationController keeps ``spec.replicas`` pods and reports their counts in its status."""

from __future__ import annotations

from fluxqueue.sim.apiserver import resources as R

from .replicaset import ReplicaSetController


class ReplicationControllerController(ReplicaSetController):
    name = "replication-controller"
    owner_resource = R.REPLICATIONCONTROLLERS
