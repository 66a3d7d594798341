"""Tenant queues (``queues.fluxqueue.io``): which queue a unit belongs to, what each queue uses, whether a unit
may start within its queue's quota and limit or by borrowing, and who borrows next by fair share.

Pure logic (no network): :mod:`.spec` (Queue objects -> QueueSpec, membership), :mod:`.share` (resource
amounts, usage, decayed usage, dominant-resource share), :mod:`.admission` (one pass's quota book). The
controller's shell around it is :mod:`fluxqueue.controller.queueing`.
"""

QUEUE_GROUP = "fluxqueue.io"
QUEUE_VERSION = "v1alpha1"
QUEUE_KIND = "Queue"
QUEUE_PLURAL = "queues"
QUEUE_NAME = f"{QUEUE_PLURAL}.{QUEUE_GROUP}"
QUEUES_API = (QUEUE_GROUP, QUEUE_VERSION, QUEUE_PLURAL)  # a fluxqueue.kube.client resource key
DEFAULT_QUEUE = "default"  # where units go when no Queue lists their namespace (no quota, no limit)
