"""Report statistics from hand-made event sequences: waits, utilisation, throughput and invariant checks."""

from __future__ import annotations

import io
import json

import pytest

from fluxqueue.kube import names
from fluxqueue.placement.resources import Resources
from fluxqueue.sim.report import (
    Progress,
    Recorder,
    compare_text,
    histogram_quantiles,
    load_report,
    percentile,
    summarize,
    summary_text,
    write_report,
)
from fluxqueue.sim.workload import KIND_GROUP, KIND_JOB, KIND_POD, WorkloadItem

GI = 2**30


def node(cpus=4, mem=16 * GI):
    return Resources(cpus * 1000, mem, 0, 110)


def pod(name, cpu="2", node_name=None, phase="Pending", group=None, job=None, ns="default"):
    meta = {"name": name, "namespace": ns, "uid": f"uid-{name}", "labels": {}}
    if group:
        meta["labels"] = {names.LABEL_GROUP_NAME: group[0], names.LABEL_GROUP_SIZE: str(group[1])}
    if job:
        meta["ownerReferences"] = [{"kind": "Job", "name": job, "controller": True}]
    spec = {
        "schedulerName": names.SCHEDULER_NAME,
        "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": "1Gi"}}}],
    }
    if node_name:
        spec["nodeName"] = node_name
    return {"metadata": meta, "spec": spec, "status": {"phase": phase}}


def item(kind, name, pods=1):
    return WorkloadItem(kind=kind, namespace="default", name=name, submit_at=0, manifests=[], pods=pods)


def job(name, condition=None):
    status = {"conditions": [{"type": condition, "status": "True"}]} if condition else {}
    return {"metadata": {"name": name, "namespace": "default"}, "status": status}


def run_clean():
    """Two nodes; a single pod, a 2-pod group and a 2-pod Job, all scheduled and finished, no violation."""
    rec = Recorder({"n1": node(), "n2": node()}, time_scale=10.0)
    rec.start(0.0)
    rec.submitted(item(KIND_POD, "solo"), 0.0)
    rec.submitted(item(KIND_GROUP, "g", 2), 0.0)
    rec.submitted(item(KIND_JOB, "j", 2), 1.0)
    rec.pod_event("ADDED", pod("solo"), 0.0)
    rec.pod_event("ADDED", pod("g-0", group=("g", 2)), 0.0)
    rec.pod_event("ADDED", pod("g-1", group=("g", 2)), 0.0)
    rec.sample(0.5)
    rec.pod_event("MODIFIED", pod("solo", node_name="n1"), 1.0)
    rec.pod_event("MODIFIED", pod("g-0", node_name="n1", group=("g", 2)), 2.0)
    rec.pod_event("MODIFIED", pod("g-1", node_name="n2", group=("g", 2)), 2.0)
    rec.pod_event("MODIFIED", pod("solo", node_name="n1", phase="Running"), 2.0)
    rec.sample(2.5)
    rec.pod_event("MODIFIED", pod("solo", node_name="n1", phase="Succeeded"), 3.0)
    rec.pod_event("MODIFIED", pod("g-0", node_name="n1", phase="Succeeded", group=("g", 2)), 4.0)
    rec.pod_event("MODIFIED", pod("g-1", node_name="n2", phase="Succeeded", group=("g", 2)), 4.0)
    rec.pod_event("ADDED", pod("j-a", job="j"), 4.0)
    rec.pod_event("ADDED", pod("j-b", job="j"), 4.0)
    rec.pod_event("MODIFIED", pod("j-a", node_name="n1", job="j"), 5.0)
    rec.pod_event("MODIFIED", pod("j-b", node_name="n2", job="j"), 5.0)
    rec.sample(5.5)
    rec.pod_event("MODIFIED", pod("j-a", node_name="n1", job="j", phase="Succeeded"), 7.0)
    rec.pod_event("MODIFIED", pod("j-b", node_name="n2", job="j", phase="Succeeded"), 7.0)
    assert not rec.all_finished()  # a Job finishes by its condition, not by its pods
    rec.job_event("MODIFIED", job("j", "Complete"), 8.0)
    assert rec.all_finished()
    rec.finish(8.0)
    return rec


def test_clean_run_statistics():
    rec = run_clean()
    r = summarize(rec, run={"nodes": 2, "strategy": "easy"})
    assert r["units"] == {"submitted": 3, "finished": 3, "failed": 0, "lost": 0}
    assert r["violation_count"] == 0
    assert r["makespan_s"] == pytest.approx(80.0)  # 8 wall s x time scale 10
    # waits (sim s): solo 10, group 20, job 40
    assert r["wait_s"]["by_size"]["1"]["mean"] == pytest.approx(10.0)
    assert r["wait_s"]["by_size"]["2-4"]["count"] == 2
    assert r["wait_s"]["by_size"]["2-4"]["max"] == pytest.approx(40.0)
    assert r["wait_s"]["all"]["p50"] == pytest.approx(20.0)
    # CPU integral: solo 2 cores 1..3, group 4 cores 2..4, job 4 cores 5..7 = 4+8+8 = 20 core-s over 8 s x 8 cores
    assert r["utilisation"]["cpu_mean"] == pytest.approx(20 / 64)
    # 5 binds between t=1 and t=5: 4 intervals over 4 s
    assert r["throughput"]["pods_bound_per_s"] == pytest.approx(1.0)
    assert r["series"]["queue_length"] == [3, 1, 0]
    assert r["series"]["running"] == [0, 2, 1]
    assert "invariants: OK" in summary_text(r)


def test_overcommitted_node_is_a_violation():
    rec = Recorder({"n1": node(cpus=4)}, time_scale=1.0)
    rec.start(0.0)
    for name in ("a", "b", "c"):
        rec.submitted(item(KIND_POD, name), 0.0)
        rec.pod_event("ADDED", pod(name, cpu="2"), 0.0)
    rec.pod_event("MODIFIED", pod("a", cpu="2", node_name="n1"), 1.0)
    rec.pod_event("MODIFIED", pod("b", cpu="2", node_name="n1"), 1.0)
    rec.pod_event("MODIFIED", pod("c", cpu="2", node_name="n1"), 1.5)  # 6 cores on a 4-core node
    rec.add_rejections([{"pod": "default/c", "node": "n1", "reason": "OutOfcpu", "time": 1.6}])
    for name in ("a", "b", "c"):
        rec.pod_event("MODIFIED", pod(name, cpu="2", node_name="n1", phase="Succeeded"), 3.0)
    rec.finish(3.0)
    r = summarize(rec)
    over = r["violations"]["overcommit"]
    assert len(over) == 1
    assert over[0]["node"] == "n1" and over[0]["pod"] == "default/c" and over[0]["resources"] == ["cpu"]
    assert over[0]["requested"]["cpu_milli"] == 6000 and over[0]["allocatable"]["cpu_milli"] == 4000
    assert r["violations"]["kubelet_rejections"][0]["reason"] == "OutOfcpu"
    assert r["violation_count"] == 2
    assert "INVARIANT VIOLATIONS: 2" in summary_text(r)


def test_a_node_freed_then_refilled_is_not_overcommitted():
    rec = Recorder({"n1": node(cpus=4)})
    rec.start(0.0)
    rec.pod_event("MODIFIED", pod("a", cpu="4", node_name="n1"), 1.0)
    rec.pod_event("MODIFIED", pod("a", cpu="4", node_name="n1", phase="Failed"), 2.0)
    rec.pod_event("MODIFIED", pod("b", cpu="4", node_name="n1"), 2.0)
    rec.pod_event("DELETED", pod("b", cpu="4", node_name="n1"), 3.0)
    rec.pod_event("MODIFIED", pod("c", cpu="4", node_name="n1"), 3.0)
    rec.finish(4.0)
    assert summarize(rec)["violations"]["overcommit"] == []


def test_partial_gang_and_lost_jobs_are_violations():
    rec = Recorder({"n1": node(cpus=8), "n2": node(cpus=8)}, gang_skew=5.0)
    rec.start(0.0)
    rec.submitted(item(KIND_GROUP, "half", 3), 0.0)
    rec.submitted(item(KIND_GROUP, "slow", 2), 0.0)
    rec.submitted(item(KIND_POD, "never"), 0.0)
    for i in range(3):
        rec.pod_event("ADDED", pod(f"half-{i}", group=("half", 3)), 0.0)
    rec.pod_event("MODIFIED", pod("half-0", node_name="n1", group=("half", 3)), 1.0)
    rec.pod_event("MODIFIED", pod("half-1", node_name="n2", group=("half", 3)), 1.0)
    # "slow": both bound, but 20 s apart (two separate passes)
    rec.pod_event("MODIFIED", pod("slow-0", node_name="n1", group=("slow", 2)), 1.0)
    rec.pod_event("MODIFIED", pod("slow-1", node_name="n2", group=("slow", 2)), 21.0)
    rec.pod_event("MODIFIED", pod("slow-0", node_name="n1", group=("slow", 2), phase="Succeeded"), 22.0)
    rec.pod_event("MODIFIED", pod("slow-1", node_name="n2", group=("slow", 2), phase="Succeeded"), 22.0)
    rec.pod_event("ADDED", pod("never"), 0.0)
    rec.finish(30.0)
    r = summarize(rec)
    partial = {p["unit"]: p for p in r["violations"]["partial_gang"]}
    assert partial["PodGroup/default/half"]["bound"] == 2 and partial["PodGroup/default/half"]["size"] == 3
    assert "20.0 s apart" in partial["PodGroup/default/slow"]["reason"]
    lost = {entry["unit"]: entry for entry in r["violations"]["lost"]}
    assert set(lost) == {"PodGroup/default/half", "Pod/default/never"}
    assert lost["Pod/default/never"]["state"] == "queued"
    assert r["units"]["lost"] == 2
    stuck = {s["unit"] for s in rec.stuck()}
    assert stuck == {"PodGroup/default/half", "Pod/default/never"}


def test_failed_job_counts_as_finished_not_lost():
    rec = Recorder({"n1": node()})
    rec.start(0.0)
    rec.submitted(item(KIND_JOB, "bad", 1), 0.0)
    rec.job_event("MODIFIED", job("bad", "Failed"), 2.0)
    rec.finish(2.0)
    r = summarize(rec)
    assert r["units"]["failed"] == 1 and r["units"]["lost"] == 0


def test_percentiles_and_histogram_quantiles():
    assert percentile([], 50) is None
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([5], 99) == 5
    q = histogram_quantiles([(0.001, 0), (0.01, 50), (0.1, 100), (float("inf"), 100)], (50, 99))
    assert q["count"] == 100
    assert q["p50"] == pytest.approx(0.01)
    assert q["p99"] == pytest.approx(0.01 + 0.09 * 49 / 50)


def test_report_files_and_compare(tmp_path):
    a = summarize(run_clean(), run={"strategy": "fcfs", "nodes": 2})
    b = json.loads(json.dumps(a))
    b["run"]["strategy"] = "easy"
    b["makespan_s"] = a["makespan_s"] / 2
    b["utilisation"]["cpu_mean"] = a["utilisation"]["cpu_mean"] * 2
    files = write_report(a, tmp_path / "a")
    write_report(b, tmp_path / "b")
    assert {f.name for f in files} == {"report.json", "utilisation.png", "queue_length.png", "wait_times.png"}
    assert all(f.stat().st_size > 1000 for f in files)
    assert files[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = compare_text(
        load_report(tmp_path / "a"), load_report(tmp_path / "b" / "report.json"), "fcfs", "easy"
    )
    lines = {ln.split("  ")[0]: ln for ln in text.splitlines()}
    assert "0.50 +" in lines["makespan (sim s)"]  # B halves the makespan: better
    assert "2.00 +" in lines["utilisation CPU mean"]  # B doubles utilisation: better
    assert "fcfs" in lines["strategy"] and "easy" in lines["strategy"]


def test_progress_redraws_on_a_tty_and_prints_lines_otherwise():
    tty = io.StringIO()
    p = Progress(10, stream=tty, tty=True)
    p.update(3, 2, 5, 125.0)
    p.close(10, 0, 0, 600.0)
    out = tty.getvalue()
    assert out.startswith("\r[#########") and "3/10 done  2 running  5 queued  sim 0:02:05" in out
    assert out.endswith("sim 0:10:00\x1b[K\n")
    log = io.StringIO()
    p = Progress(10, stream=log, tty=False, line_interval=5.0)
    p.update(1, 0, 0, 1.0, now=100.0)
    p.update(2, 0, 0, 2.0, now=101.0)  # within the interval: not printed
    p.update(3, 0, 0, 3.0, now=106.0)
    assert log.getvalue().count("\n") == 2 and "\r" not in log.getvalue()


def test_stuck_units_carry_their_fluxjob_phase_and_reason():
    rec = Recorder({"n1": node()})
    rec.start(0.0)
    rec.submitted(item(KIND_JOB, "wide", 4), 0.0)
    rec.submitted(item(KIND_GROUP, "g", 2), 0.0)
    rec.fluxjob_event(
        "MODIFIED",
        {
            "metadata": {
                "name": "wide",
                "namespace": "default",
                "ownerReferences": [{"kind": "Job", "name": "wide"}],
            },
            "status": {"phase": "Queued", "reason": "position 1 in the queue"},
        },
        1.0,
    )
    rec.fluxjob_event(
        "MODIFIED",
        {
            "metadata": {"name": "g", "namespace": "default"},
            "spec": {"group": "g"},
            "status": {"phase": "Waiting"},
        },
        1.0,
    )
    stuck = {s["unit"]: s for s in rec.stuck()}
    assert stuck["Job/default/wide"]["fluxjob"] == "Queued: position 1 in the queue"
    assert stuck["PodGroup/default/g"]["fluxjob"] == "Waiting"


def test_a_pod_that_escaped_the_webhook_is_a_violation():
    rec = Recorder({"n1": node()})
    rec.start(0.0)
    rec.submitted(item(KIND_POD, "managed"), 0.0)
    rec.submitted(item(KIND_POD, "escaped"), 0.0)
    managed = pod("managed")
    managed["spec"]["schedulerName"] = names.SCHEDULER_NAME
    escaped = pod("escaped")
    escaped["spec"]["schedulerName"] = "default-scheduler"
    rec.pod_event("ADDED", managed, 0.0)
    rec.pod_event("ADDED", escaped, 0.0)
    rec.finish(1.0)
    r = summarize(rec)
    assert r["violations"]["unqueued"] == [{"unit": "Pod/default/escaped", "pod": "default/escaped"}]
