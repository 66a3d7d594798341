"""Fluxion: the graph matcher fluxqueue asks where each job fits.

* ``proto/fluxion.proto`` — the public Fluxion gRPC protocol (``FluxionService``: Init/Match/Cancel, wire-
  compatible with flux-sched's service) plus our ``FluxionAdmin`` (satisfiability, stats, node status,
  add/remove nodes, replay, partial cancel, info). Stubs in ``_proto/`` (``hack/gen-proto.sh``).
* ``matcher/`` — a pure-Python re-implementation of flux-sched's reapi semantics: JGF reader -> graph model
  (leaves pooled as bitmasks) -> policies, DFU-style traversal and a clock-less planner -> JGF writer for R.
* ``server.py`` (``FluxionServer``, ``fluxqueue fluxion serve``), ``client.py`` (``FluxionClient``),
  ``jgf.py`` (``GraphBuilder``), ``allocation.py`` (``nodes_from_allocation``).
"""
