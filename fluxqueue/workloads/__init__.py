"""Workload kinds, one adapter module each, behind one interface (:class:`~.base.Workload`).

Kueue's job integrations are the model (``pkg/controller/jobframework/interface.go``, ``GenericJob``): what a
kind is, how a pod finds its unit through the owner chain, the pod sets from the object's spec, how to
suspend and start it, when it is finished, which pods to gate. Nothing outside this package branches on a
kind's name.

Adding a kind (PyTorchJob, RayJob, LeaderWorkerSet...) is one new module with a :class:`~.base.Workload`
subclass and one line in :mod:`.registry`.
"""
