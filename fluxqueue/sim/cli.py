"""`fluxqueue sim ...`: the simulated cluster (apiserver) and the whole system on one machine (up/run/compare).

Sub-subcommands are contributed by the modules below, each with ``register(sim_subparsers)``.
"""

from __future__ import annotations

import argparse
import importlib

SIM_SUBCOMMAND_MODULES = (
    "fluxqueue.sim.apiserver.cli",  # sim apiserver
    "fluxqueue.sim.harness.cli",  # sim up | run | compare
)


def register(subparsers: argparse._SubParsersAction) -> None:
    sim = subparsers.add_parser(
        "sim",
        help="run fluxqueue against a simulated Kubernetes cluster on this machine",
        description=(
            "Simulation: an in-process Kubernetes API emulator with simulated nodes, kubelets and a Job "
            "controller, an embedded PostgreSQL, the Fluxion service and the real fluxqueue controller."
        ),
    )
    sim_sub = sim.add_subparsers(dest="sim_command", metavar="SIM_COMMAND")
    sim.set_defaults(func=lambda args: (sim.print_help(), 2)[1])
    for module_name in SIM_SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name not in (module_name, module_name.rsplit(".", 1)[0]):
                raise
            continue
        module.register(sim_sub)
