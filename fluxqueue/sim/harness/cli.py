"""`fluxqueue sim up | run | compare`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

from fluxqueue.errors import ConfigError
from fluxqueue.kube.quantity import QuantityError, to_int_ceil

STRATEGIES = ("easy", "fcfs", "conservative")


def _add_system_flags(p: argparse.ArgumentParser, nodes: int, time_scale: float) -> None:
    g = p.add_argument_group("simulated cluster")
    g.add_argument("--nodes", type=int, default=nodes, help=f"number of nodes (default {nodes})")
    g.add_argument("--cpus", type=int, default=32, help="CPUs per node (default 32)")
    g.add_argument("--memory", default="128Gi", help="memory per node (default 128Gi)")
    g.add_argument("--gpus", type=int, default=0, help="GPUs per node (default 0)")
    g.add_argument("--racks", type=int, default=4, help="racks the nodes are spread over (default 4)")
    g.add_argument(
        "--time-scale",
        type=float,
        default=time_scale,
        help=f"simulated seconds per real second (default {time_scale:g})",
    )
    g = p.add_argument_group("scheduler")
    g.add_argument("--strategy", choices=STRATEGIES, default="easy", help="queueing strategy (default easy)")
    g.add_argument("--policy", default="first", help="Fluxion match policy (default first)")
    g.add_argument(
        "--processes",
        action="store_true",
        help="run the controller and Fluxion as separate processes (as deployed) instead of in this one",
    )


def _config(args: argparse.Namespace):
    from fluxqueue.sim.harness.system import SimConfig

    try:
        to_int_ceil(args.memory)
    except QuantityError:
        raise ConfigError(f"--memory: {args.memory!r} is not a quantity like 128Gi") from None
    return SimConfig(
        nodes=args.nodes,
        cpus=args.cpus,
        memory=args.memory,
        gpus=args.gpus,
        racks=min(args.racks, args.nodes),
        time_scale=args.time_scale,
        strategy=args.strategy,
        policy=args.policy,
        kubeconfig=Path(args.kubeconfig) if getattr(args, "kubeconfig", None) else None,
        processes=args.processes,
        log_level=args.log_level,
    )


def register(sim_subparsers: argparse._SubParsersAction) -> None:
    up = sim_subparsers.add_parser(
        "up",
        help="start the whole system on a simulated cluster and keep it running",
        description=(
            "Start an embedded PostgreSQL, the Fluxion service, the Kubernetes API emulator with simulated "
            "nodes, the chart's CRD and webhook, and the fluxqueue controller; print how to reach them; "
            "stop everything on Ctrl-C."
        ),
    )
    _add_system_flags(up, nodes=16, time_scale=1.0)
    up.add_argument("--kubeconfig", default="./sim.kubeconfig", help="where to write the kubeconfig")
    up.set_defaults(func=_up)

    run = sim_subparsers.add_parser(
        "run",
        help="run a workload through the whole system on a simulated cluster and report",
        description=(
            "Start the system, submit a workload through the Kubernetes API at its submit times (scaled), "
            "show progress, wait for every job to finish, print a summary and write the report."
        ),
    )
    _add_system_flags(run, nodes=32, time_scale=60.0)
    w = run.add_argument_group("workload")
    w.add_argument(
        "--workload",
        default="generated",
        help="'generated' (default), a directory or file of manifests, or an SWF trace (FILE.swf)",
    )
    w.add_argument("--jobs", type=int, default=150, help="jobs to generate, or the first N of a trace")
    w.add_argument("--seed", type=int, default=1, help="random seed of the generated mix")
    w.add_argument(
        "--interarrival",
        type=float,
        default=None,
        help="mean simulated seconds between generated submissions (default: sized to the cluster)",
    )
    w.add_argument(
        "--mix",
        default=None,
        help=(
            "relative weights of the generated unit kinds, e.g. pod=35,job=45,group=20,jobset=10,mpijob=10 "
            "(kinds not named get none; default pod=35,job=45,group=20); dag=10 adds fan-out/fan-in "
            "workflows of Jobs (fluxqueue.io/dependency), reported with their makespan and critical path"
        ),
    )
    w.add_argument("--cores-per-pod", type=int, default=8, help="SWF traces: processors packed per pod")
    run.add_argument("--report", default="./sim-report", help="report directory (default ./sim-report)")
    run.add_argument("--timeout", type=float, default=600.0, help="wall seconds to wait for completion")
    run.add_argument("--kubeconfig", default=None, help="also write the kubeconfig here")
    run.add_argument("--no-progress", action="store_true", help="no progress line")
    run.set_defaults(func=_run)

    cmp_ = sim_subparsers.add_parser(
        "compare",
        help="compare two run reports side by side",
        description="Print two report.json files (or report directories) side by side with ratios B/A.",
    )
    cmp_.add_argument("a", help="report.json (or its directory) A")
    cmp_.add_argument("b", help="report.json (or its directory) B")
    cmp_.set_defaults(func=_compare)


def _install_stop_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


async def _up(args: argparse.Namespace) -> int:
    from fluxqueue.sim.harness.system import SimSystem

    config = _config(args)
    stop = asyncio.Event()
    _install_stop_signals(stop)
    print("starting PostgreSQL, Fluxion, the API emulator, the cluster and the controller...", flush=True)
    async with SimSystem(config) as system:
        print(system.usage_text(), flush=True)
        await stop.wait()
        print("\nstopping...", flush=True)
    print("stopped.")
    return 0


def _generator_spec(args: argparse.Namespace):
    from fluxqueue.sim.workload import GeneratorSpec, with_mix

    memory = to_int_ceil(args.memory)
    interarrival = args.interarrival
    if interarrival is None:
        # Offer about 1.3x what the cluster can run, so a queue forms and the strategy matters without an
        # endless backlog. The generated mix averages ~3,300 core-seconds per job (3.7 pods x 3.7 cores x
        # ~240 s runtime), so full load is one job every 3,300 / cores seconds.
        capacity = args.nodes * args.cpus
        interarrival = max(0.05, 3300 / (1.3 * capacity))
    spec = GeneratorSpec(
        jobs=args.jobs,
        seed=args.seed,
        nodes=args.nodes,
        cpus=args.cpus,
        memory_bytes=memory,
        gpus=args.gpus,
        mean_interarrival=interarrival,
    )
    return with_mix(spec, getattr(args, "mix", None))


async def _run(args: argparse.Namespace) -> int:
    from fluxqueue.sim.harness.run import Run, RunOptions
    from fluxqueue.sim.harness.system import SimSystem
    from fluxqueue.sim.report import summary_text, write_report
    from fluxqueue.sim.workload import load_workload

    config = _config(args)
    if args.log_level == "info":
        # The report is the output; component logs (and the progress line) would drown it. Warnings and
        # errors still show; --log-level debug shows everything.
        logging.getLogger().setLevel(logging.WARNING)
    items = load_workload(
        args.workload,
        _generator_spec(args),
        cores_per_pod=args.cores_per_pod,
        swf_limit=args.jobs if args.workload.endswith(".swf") else None,
    )
    if not items:
        raise ConfigError(f"workload {args.workload}: no jobs")
    units = [i for i in items if i.pods > 0]
    print(
        f"workload: {len(units)} jobs, {sum(i.pods for i in units)} pods ({args.workload}); cluster: "
        f"{args.nodes} nodes x {args.cpus} CPUs; strategy {args.strategy}, time scale {args.time_scale:g}x",
        flush=True,
    )
    try:  # before the run, not after it: a report that cannot be written is known at once
        os.makedirs(args.report, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--report {args.report}: cannot create the directory: {exc.strerror}") from None
    print("starting PostgreSQL, Fluxion, the API emulator, the cluster and the controller...", flush=True)
    async with SimSystem(config) as system:
        run = Run(
            system,
            items,
            RunOptions(timeout=args.timeout, progress=not args.no_progress),
        )
        task = asyncio.create_task(run.execute())
        stop = asyncio.Event()
        _install_stop_signals(stop)
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if task not in done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            stopper.cancel()
            print("\ninterrupted; shutting down.", file=sys.stderr)
            return 130
        stopper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stopper
        report = task.result()
    print(summary_text(report))
    if report.get("timed_out"):
        print(f"timed out after {args.timeout:g} s; unfinished jobs:", file=sys.stderr)
        for s in report.get("stuck") or []:
            print(f"  {s}", file=sys.stderr)
    for err in report.get("submission_errors") or []:
        print(f"  submission error: {err}", file=sys.stderr)
    try:
        files = write_report(report, args.report)
    except OSError as exc:
        raise ConfigError(f"cannot write the report to {args.report}: {exc}") from None
    print(f"report: {files[0]} (+ {', '.join(f.name for f in files[1:])})")
    return 1 if report["violation_count"] or report.get("timed_out") else 0


def _compare(args: argparse.Namespace) -> int:
    from fluxqueue.sim.report import compare_text, load_report

    a, b = load_report(args.a), load_report(args.b)
    print(compare_text(a, b, _report_name(args.a), _report_name(args.b)))
    return 0


def _report_name(path: str) -> str:
    p = Path(path)
    return (p.parent.name or str(p)) if p.is_file() else p.name
