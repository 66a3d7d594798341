"""Issue 17: the four workflow shapes of examples/workflows/ run to completion in `fluxqueue sim`, each step
after what it waits for, with zero invariant violations."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from fluxqueue.sim.harness import Run, RunOptions, SimConfig, SimSystem
from fluxqueue.sim.report import summary_text
from fluxqueue.sim.workload.manifests import load_manifests

pytestmark = pytest.mark.timeout(240)

WORKFLOWS = Path(__file__).resolve().parents[2] / "examples" / "workflows"

# (dependent FluxJob, what it waited for): each started only after its targets ended.
AFTER = [
    ("process-a-job", ["fetch-a-job"]),
    ("process-a-retry-job", ["process-a-job"]),
    ("publish-a-job", ["process-a-retry-job"]),
    ("publish-b-job", ["process-b-job"]),
    ("shard-0-job", ["prepare-job"]),
    ("shard-2-group", ["prepare-job"]),
    ("merge-job", ["shard-0-job", "shard-1-job", "shard-2-group"]),
    ("node0-step3-job", ["node0-step2-job"]),
    ("node1-step2-job", ["node1-step1-job"]),
    ("postprocess-job", ["infer-gpu-job"]),
]


async def test_the_workflow_examples_run_to_completion_in_the_simulator():
    items = load_manifests(WORKFLOWS)
    config = SimConfig(nodes=4, cpus=8, memory="32Gi", gpus=1, racks=1, time_scale=120.0, strategy="easy")
    async with SimSystem(config) as system:
        report = await Run(system, items, RunOptions(timeout=90, progress=False)).execute()
        conn = await asyncpg.connect(system.dsn)
        try:
            rows = {r["name"]: r for r in await conn.fetch("SELECT * FROM fluxqueue.units")}
        finally:
            await conn.close()
    text = summary_text(report)
    n = len(items)
    # Failed: process-a (on purpose) and process-b-retry (its step succeeded: DependencyNeverSatisfied).
    assert report["units"] == {"submitted": n, "finished": n, "failed": 2, "lost": 0}, text
    assert report["violation_count"] == 0, text
    assert rows["process-a-job"]["state"] == "Failed"
    assert rows["process-b-retry-job"]["state"] == "Cancelled"
    assert rows["process-b-retry-job"]["reason"].startswith("DependencyNeverSatisfied")
    assert rows["process-b-retry-job"]["scheduled_at"] is None
    dags = {tuple(d["critical_path"]): d for d in report["dags"]}
    # Each DAG's critical path, the shortest it could have been on an empty cluster (sim seconds).
    assert dags[("fetch-a", "process-a", "process-a-retry", "publish-a")]["critical_path_s"] == 330
    assert dags[("fetch-b", "process-b", "publish-b")]["units"] == 4  # its retry never ran
    assert dags[("prepare", "shard-0", "merge")]["critical_path_s"] == 300
    assert dags[("infer-gpu", "postprocess")]["critical_path_s"] == 300
    assert len(dags) == 6
    for d in dags.values():
        assert d["makespan_s"] >= d["critical_path_s"] * 0.9  # (the sim clock is sampled, not exact)
    assert "workflows (fluxqueue.io/dependency DAGs" in text
    for dependent, targets in AFTER:
        if dependent != "process-a-job":  # (fails on purpose)
            assert rows[dependent]["state"] == "Succeeded", (dependent, rows[dependent]["reason"])
        for target in targets:
            assert rows[dependent]["scheduled_at"] >= rows[target]["finished_at"], (dependent, target)


async def test_generated_dags_run_to_completion_and_are_reported():
    from fluxqueue.sim.workload import GeneratorSpec, generate, with_mix

    items = generate(
        with_mix(
            GeneratorSpec(jobs=8, seed=11, nodes=4, cpus=8, memory_bytes=32 * 2**30, median_duration=120.0),
            "job=1,dag=1",
        )
    )
    config = SimConfig(nodes=4, cpus=8, memory="32Gi", racks=1, time_scale=120.0, strategy="easy")
    async with SimSystem(config) as system:
        report = await Run(system, items, RunOptions(timeout=90, progress=False)).execute()
    text = summary_text(report)
    n = len(items)
    assert report["units"] == {"submitted": n, "finished": n, "failed": 0, "lost": 0}, text
    assert report["violation_count"] == 0, text
    drawn = {i.meta["dag"] for i in items if "dag" in i.meta}
    assert len(report["dags"]) == len(drawn) > 0
    for d in report["dags"]:
        assert d["critical_path"][0].endswith("-head") and d["critical_path"][-1].endswith("-tail")
        assert d["makespan_s"] >= d["critical_path_s"] * 0.9
