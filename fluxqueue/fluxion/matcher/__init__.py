"""A pure-Python Fluxion matcher: JGF reader -> graph model -> policies/traversal/planner -> JGF writer."""

from fluxqueue.fluxion.matcher.core import (
    ALLOCATE,
    ALLOCATE_ORELSE_RESERVE,
    SATISFIABILITY,
    Job,
    Matcher,
    MatchOutcome,
    NotInitialized,
)
from fluxqueue.fluxion.matcher.jobspec import Jobspec, JobspecError, parse_jobspec
from fluxqueue.fluxion.matcher.policy import POLICIES, PolicyError
from fluxqueue.fluxion.matcher.reader import JGFError, read_jgf

__all__ = [
    "ALLOCATE",
    "ALLOCATE_ORELSE_RESERVE",
    "POLICIES",
    "SATISFIABILITY",
    "JGFError",
    "Job",
    "Jobspec",
    "JobspecError",
    "MatchOutcome",
    "Matcher",
    "NotInitialized",
    "PolicyError",
    "parse_jobspec",
    "read_jgf",
]
