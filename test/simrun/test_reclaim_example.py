"""Issue 16: examples/reclaim.yaml in `fluxqueue sim run`: team-a reclaims its quota from team-b's Jobs, the
two most recently started are requeued (not failed) and every Job completes; the report says so."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from fluxqueue.sim.harness import Run, RunOptions, SimConfig, SimSystem
from fluxqueue.sim.report import summary_text
from fluxqueue.sim.workload.manifests import load_manifests

pytestmark = pytest.mark.timeout(240)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "reclaim.yaml"


async def test_the_reclaim_example_requeues_the_borrowers_jobs_and_everything_completes():
    items = load_manifests(EXAMPLE)
    config = SimConfig(nodes=4, cpus=4, memory="16Gi", racks=1, time_scale=60.0, strategy="easy")
    async with SimSystem(config) as system:
        report = await Run(system, items, RunOptions(timeout=90, progress=False)).execute()
        conn = await asyncpg.connect(system.dsn)
        try:
            rows = {r["name"]: dict(r) for r in await conn.fetch("SELECT * FROM fluxqueue.units")}
        finally:
            await conn.close()
    text = summary_text(report)
    assert report["units"] == {"submitted": 6, "finished": 6, "failed": 0, "lost": 0}, text
    assert report["violation_count"] == 0, text
    assert report["preemptions"] == {"count": 2, "by_cause": {"reclaim": 2}, "deleted": 0, "requeued": 2}
    assert "preemptions" in text and "2 requeued" in text
    assert {n for n, r in rows.items() if r["requeues"]} == {"train-2-job", "train-3-job"}
    assert all(r["state"] == "Succeeded" for r in rows.values()), rows
