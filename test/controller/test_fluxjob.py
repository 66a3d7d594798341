"""The FluxJob a user reads: body, status and the CRD that serves it (pure)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime

from fluxqueue.controller.crd import fluxjob_crd
from fluxqueue.controller.fluxjob import fluxjob_body, fluxjob_status
from fluxqueue.queue.store import Unit

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def a_unit(**changes) -> Unit:
    unit = Unit(
        id=1,
        namespace="team",
        name="train-job",
        kind="Job",
        object_name="train",
        owner_uid="u1",
        size=4,
        exclusive=False,
        duration_s=600,
        priority=5,
        group_name=None,
        queue="default",
        state="Queued",
        submitted_at=NOW,
        queued_at=NOW,
        scheduled_at=None,
        finished_at=None,
        reason="waiting for 4 pods",
        attempts=1,
        started=False,
        placement={},
        pod_sets=[{"name": "main", "count": 4, "cpu_millis": 2500, "memory_bytes": 2**31, "gpus": 1}],
    )
    return replace(unit, **changes)


def test_the_fluxjob_is_owned_by_the_job_it_wraps_and_shows_what_each_pod_needs():
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "train", "uid": "u1"}}
    body = fluxjob_body(a_unit(), [job], {"version": 1})
    assert body["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": "train",
            "uid": "u1",
            "controller": True,
            "blockOwnerDeletion": False,
        }
    ]
    assert body["spec"]["size"] == 4
    assert body["spec"]["jobspec"].startswith("version: 1")
    assert fluxjob_status(a_unit())["podSets"] == "main 4 x 2.5 CPU, 2Gi, 1 GPU"


def test_a_unit_of_several_pod_sets_shows_each_on_its_fluxjob():
    sets = [
        {"name": "launcher", "count": 1, "cpu_millis": 8000, "memory_bytes": 0, "gpus": 0},
        {"name": "worker", "count": 2, "cpu_millis": 1000, "memory_bytes": 0, "gpus": 0},
    ]
    assert fluxjob_status(a_unit(pod_sets=sets, size=3))["podSets"] == "launcher 1 x 8 CPU, worker 2 x 1 CPU"


def test_a_waiting_unit_says_where_it_stands_and_a_scheduled_one_where_it_runs():
    waiting = fluxjob_status(a_unit(), position=3)
    assert waiting["phase"] == "Queued" and waiting["queuePosition"] == 3
    assert waiting["reason"] == "waiting for 4 pods"
    assert [c["type"] for c in waiting["conditions"]] == ["Queued"]
    placed = fluxjob_status(
        a_unit(state="Scheduled", scheduled_at=NOW, reason="Scheduled on n1,n2"),
        nodes=["n1", "n2"],
        jobid=7,
        position=3,
    )
    assert placed["nodeList"] == "n1,n2" and placed["fluxionJobID"] == 7 and "queuePosition" not in placed
    assert [c["type"] for c in placed["conditions"]] == ["Queued", "Scheduled"]


def test_an_unsatisfiable_unit_carries_the_reason_in_a_condition():
    status = fluxjob_status(a_unit(state="Unsatisfiable", finished_at=NOW, reason="asks 96 cores per pod"))
    cond = {c["type"]: c for c in status["conditions"]}
    assert cond["Unsatisfiable"]["message"] == "asks 96 cores per pod"
    assert status["finishedAt"] == "2026-01-02T03:04:05Z"


def test_the_crd_prints_phase_size_nodes_and_age_and_has_a_status_subresource():
    version = fluxjob_crd()["spec"]["versions"][0]
    columns = [c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")]
    assert columns == ["Phase", "Size", "Pod Sets", "Nodes", "Age"]
    assert version["subresources"] == {"status": {}}
    assert fluxjob_crd()["spec"]["names"]["shortNames"] == ["fj"]


def test_controller_configuration_errors_are_one_line():
    for args, expected in (
        (["--dsn", "postgresql://x/y", "--strategy", "lifo"], "unknown strategy 'lifo'"),
        (["--dsn", ""], "no database given"),
        (
            ["--dsn", "postgresql://x/y", "--fluxion-address", "nowhere"],
            "--fluxion-address must be host:port",
        ),
    ):
        out = subprocess.run(
            [sys.executable, "-m", "fluxqueue", "controller", *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 2
        assert out.stderr.strip().splitlines() == [
            f"fluxqueue: error: {out.stderr.split('error: ', 1)[1].strip()}"
        ]
        assert expected in out.stderr


def test_the_jobspec_reads_back_exactly_whatever_the_unit_is_called():
    import yaml

    from fluxqueue.controller.fluxjob import jobspec_yaml

    def spec(name: str) -> dict:
        return {
            "version": 1,
            "resources": [
                {"type": "slot", "count": 1, "label": "task", "with": [{"type": "core", "count": 2}]}
            ],
            "attributes": {"system": {"duration": 60}},
            "tasks": [{"command": ["pod", "team", name], "slot": "task", "count": {"per_slot": 1}}],
        }

    # Names YAML would read as booleans, numbers or null unless quoted; the shape is rendered once and reused.
    for name in ("train", "true", "1e3", "null", "0x1f", "a.b-c", "yes"):
        text = jobspec_yaml(spec(name))
        assert yaml.safe_load(text) == spec(name)
    assert 'command: ["pod", "team", "train"]' in jobspec_yaml(spec("train"))
