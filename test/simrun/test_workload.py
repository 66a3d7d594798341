"""Workload sources: the generated mix, manifest directories and the examples shipped with the repo."""

from __future__ import annotations

from pathlib import Path

import pytest

from fluxqueue.errors import ConfigError
from fluxqueue.kube import names
from fluxqueue.placement.units import parse_duration, unit_from_job, unit_from_pod
from fluxqueue.sim.workload import (
    KIND_GROUP,
    KIND_JOB,
    KIND_POD,
    SETUP_KIND,
    GeneratorSpec,
    generate,
    load_manifests,
    parse_sim_seconds,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _runtime(manifest: dict) -> float:
    meta = manifest["spec"]["template"]["metadata"] if manifest["kind"] == "Job" else manifest["metadata"]
    return parse_sim_seconds(meta["annotations"][names.SIM_RUNTIME], "runtime")


def test_generated_mix_is_deterministic_for_a_seed():
    a = generate(GeneratorSpec(jobs=60, seed=42))
    b = generate(GeneratorSpec(jobs=60, seed=42))
    c = generate(GeneratorSpec(jobs=60, seed=43))
    assert [(i.key, i.submit_at, i.manifests) for i in a] == [(i.key, i.submit_at, i.manifests) for i in b]
    assert [i.manifests for i in a] != [i.manifests for i in c]


def test_generated_mix_has_every_kind_and_shapes_within_bounds():
    spec = GeneratorSpec(jobs=400, seed=3, nodes=16, cpus=32, gpus=8)
    items = generate(spec)
    assert len(items) == 400
    kinds = {i.kind for i in items}
    assert kinds == {KIND_POD, KIND_JOB, KIND_GROUP}
    assert any(i.exclusive for i in items)
    assert any(i.meta["gpus"] > 0 for i in items)
    job_sizes = {i.pods for i in items if i.kind == KIND_JOB}
    assert job_sizes <= {2, 4, 8, 16} and len(job_sizes) >= 3
    times = [i.submit_at for i in items]
    assert times == sorted(times) and times[0] == 0.0
    for item in items:
        for m in item.manifests:
            unit = unit_from_job(m) if m["kind"] == "Job" else unit_from_pod(m)
            # Every unit fits the cluster it was generated for.
            assert unit.per_pod.cpu_milli <= spec.cpus * 1000
            assert unit.per_pod.memory <= spec.memory_bytes
            assert unit.per_pod.gpus <= spec.gpus
            assert unit.exclusive == item.exclusive
            # Users overestimate: the simulated runtime never exceeds the declared walltime.
            assert _runtime(m) <= unit.duration
            assert spec.min_duration <= unit.duration <= spec.max_duration + 1
        if item.kind == KIND_GROUP:
            assert len(item.manifests) == item.pods
            labels = item.manifests[0]["metadata"]["labels"]
            assert labels[names.LABEL_GROUP_NAME] == item.name
            assert labels[names.LABEL_GROUP_SIZE] == str(item.pods)
        if item.kind == KIND_JOB:
            assert item.manifests[0]["spec"]["parallelism"] == item.pods


def test_generated_mix_has_no_gpus_when_the_cluster_has_none():
    items = generate(GeneratorSpec(jobs=200, seed=5, gpus=0))
    assert all(i.meta["gpus"] == 0 for i in items)


def test_generated_arrivals_follow_the_requested_mean_interarrival():
    items = generate(GeneratorSpec(jobs=2000, seed=11, mean_interarrival=10.0))
    mean = items[-1].submit_at / (len(items) - 1)
    assert 9.0 < mean < 11.0


def test_generator_rejects_nonsense():
    with pytest.raises(ConfigError):
        generate(GeneratorSpec(jobs=-1))


def test_example_manifest_directory_loads_jobs_groups_and_setup_objects():
    items = load_manifests(EXAMPLES / "manifests")
    assert items[0].kind == SETUP_KIND  # the Namespace is created first
    units = {i.key: i for i in items if i.kind != SETUP_KIND}
    assert set(units) == {
        "Job/demo/solver",
        "Job/demo/benchmark",
        "Job/demo/wide",
        "PodGroup/demo/ring",
        "Pod/demo/quick",
    }
    assert units["PodGroup/demo/ring"].pods == 3 and len(units["PodGroup/demo/ring"].manifests) == 3
    assert units["Job/demo/wide"].submit_at == 60.0
    assert units["Job/demo/benchmark"].exclusive
    assert units["Pod/demo/quick"].submit_at == 50.0
    times = [i.submit_at for i in items if i.kind != SETUP_KIND]
    assert times == sorted(times)
    for item in units.values():
        for m in item.manifests:
            unit = unit_from_job(m) if m["kind"] == "Job" else unit_from_pod(m)
            assert _runtime(m) <= unit.duration


def test_manifest_group_missing_members_is_a_clear_error(tmp_path):
    (tmp_path / "g.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  labels:\n"
        "    fluxqueue.io/group-name: g\n    fluxqueue.io/group-size: '2'\n"
        "spec:\n  containers: [{name: c, image: x}]\n"
    )
    with pytest.raises(ConfigError, match="group-size=2 but only 1 pods"):
        load_manifests(tmp_path)


def test_manifest_bad_submit_at_names_the_object(tmp_path):
    (tmp_path / "p.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations:\n"
        "    sim.fluxqueue.io/submit-at: soon\nspec:\n  containers: [{name: c, image: x}]\n"
    )
    with pytest.raises(ConfigError, match=r"Pod p .*submit-at.*'soon'"):
        load_manifests(tmp_path)


def test_manifest_directory_without_manifests_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match=r"no \.yaml"):
        load_manifests(tmp_path)
    with pytest.raises(ConfigError, match="no such file"):
        load_manifests(tmp_path / "missing")


@pytest.mark.parametrize(
    ("text", "seconds"), [("30", 30), ("30s", 30), ("2m", 120), ("1h30m", 5400), ("1.5m", 90), (12, 12)]
)
def test_sim_durations_parse(text, seconds):
    assert parse_sim_seconds(text, "x") == seconds


def test_generated_duration_labels_are_valid_fluxqueue_durations():
    for item in generate(GeneratorSpec(jobs=50, seed=9)):
        m = item.manifests[0]
        assert parse_duration(m["metadata"]["labels"][names.LABEL_DURATION]) >= 1
