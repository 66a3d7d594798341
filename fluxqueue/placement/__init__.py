"""Pure placement logic: what a workload asks for, what the cluster offers, and how to place one on the other.

Nothing here does I/O. The controller feeds Kubernetes objects (plain JSON dicts) in and gets scheduling
units, a cluster graph (JGF for Fluxion), jobspecs and pod-to-node assignments out.
"""
