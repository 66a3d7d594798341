"""The whole system composed: a small `sim run` finishes every job with zero invariant violations, and the
`fluxqueue sim` commands work from the command line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from fluxqueue.sim.harness import Run, RunOptions, SimConfig, SimSystem
from fluxqueue.sim.report import compare_text, summarize, summary_text, write_report
from fluxqueue.sim.workload import GeneratorSpec, generate

pytestmark = pytest.mark.timeout(240)


async def test_small_sim_run_finishes_every_job_without_violations(tmp_path):
    config = SimConfig(nodes=8, cpus=16, memory="64Gi", racks=2, time_scale=120.0, strategy="easy")
    items = generate(
        GeneratorSpec(
            jobs=20,
            seed=7,
            nodes=8,
            cpus=16,
            memory_bytes=64 * 2**30,
            mean_interarrival=5.0,
            median_duration=120.0,
            max_duration=600.0,
        )
    )
    async with SimSystem(config) as system:
        # The chart's CRD and webhook are registered, and the webhook points at the controller.
        from fluxqueue.sim.apiserver import resources as R

        crd = await system.api.client.get(R.CRDS, "fluxjobs.fluxqueue.io")
        assert crd["spec"]["names"]["shortNames"] == ["fj"]
        report = await Run(system, items, RunOptions(timeout=120, progress=False)).execute()
    text = summary_text(report)
    assert report["units"] == {"submitted": 20, "finished": 20, "failed": 0, "lost": 0}, text
    assert report["violation_count"] == 0, text
    assert report["pods"]["bound"] == sum(i.pods for i in items)
    assert report["throughput"]["pods_bound_per_s"] > 0
    assert report["utilisation"]["cpu_mean"] > 0
    files = write_report(report, tmp_path / "report")
    assert json.loads(files[0].read_text())["units"]["finished"] == 20
    assert "invariants: OK" in text


def test_sim_compare_command_prints_side_by_side(tmp_path):
    from test_report import run_clean  # the hand-made run of the report tests

    a = summarize(run_clean(), run={"strategy": "fcfs"})
    b = json.loads(json.dumps(a))
    b["run"]["strategy"] = "easy"
    b["makespan_s"] = a["makespan_s"] * 0.8
    write_report(a, tmp_path / "fcfs")
    write_report(b, tmp_path / "easy")
    out = subprocess.run(
        [sys.executable, "-m", "fluxqueue", "sim", "compare", str(tmp_path / "fcfs"), str(tmp_path / "easy")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == compare_text(a, b, "fcfs", "easy").strip()
    assert "0.80 +" in out


def test_sim_run_rejects_a_bad_trace_with_the_line_number(tmp_path):
    trace = tmp_path / "bad.swf"
    trace.write_text("; header\n1 0 0 10 4 -1 -1 4 60 -1 1 1 1 -1 1 -1 -1\n")
    proc = subprocess.run(
        [sys.executable, "-m", "fluxqueue", "sim", "run", "--workload", str(trace)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "bad.swf line 2: expected 18 whitespace-separated fields, found 17" in proc.stderr


async def test_sim_up_serves_kubectl_and_stops_cleanly_on_ctrl_c(tmp_path, tools):
    import asyncio
    import signal

    kubeconfig = tmp_path / "sim.kubeconfig"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fluxqueue",
        "sim",
        "up",
        "--nodes",
        "4",
        "--cpus",
        "8",
        "--memory",
        "32Gi",
        "--racks",
        "2",
        "--kubeconfig",
        str(kubeconfig),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    lines = []
    try:
        async with asyncio.timeout(120):
            while True:
                line = (await proc.stdout.readline()).decode()
                assert line, "sim up exited: " + (await proc.stderr.read()).decode()[-2000:]
                lines.append(line)
                if "Press Ctrl-C" in line:
                    break
        text = "".join(lines)
        assert f"kubectl --kubeconfig {kubeconfig}" in text
        assert "psql -h 127.0.0.1 -p" in text and "Fluxion:" in text
        code, out, err = await kubectl(tools, kubeconfig, "get", "nodes", "-o", "name")
        assert code == 0 and len(out.split()) == 4, err
        code, out, err = await kubectl(tools, kubeconfig, "get", "fj", "-A")
        assert code == 0, err
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(60):
            rest = (await proc.stdout.read()).decode()
            code = await proc.wait()
        assert code == 0, (await proc.stderr.read()).decode()[-2000:]
        assert "stopped." in rest
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def kubectl(tools, kubeconfig, *args):
    import asyncio

    p = await asyncio.create_subprocess_exec(
        str(tools.kubectl),
        "--kubeconfig",
        str(kubeconfig),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await p.communicate()
    return p.returncode, out.decode(), err.decode()
