"""The whole system on one machine (`SimSystem`) and workload runs over it (`Run`)."""

from fluxqueue.sim.harness.run import Run, RunOptions
from fluxqueue.sim.harness.system import SimConfig, SimSystem

__all__ = ["Run", "RunOptions", "SimConfig", "SimSystem"]
