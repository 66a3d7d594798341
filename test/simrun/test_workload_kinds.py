"""JobSets and MPIJobs in `sim run` workloads: off in the default mix, on with --mix; the manifests a
generated unit submits are accepted by the emulator's CRDs; manifest files count their pods; the report maps
their pods to them."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from fluxqueue.errors import ConfigError
from fluxqueue.sim.report.recorder import pod_unit_key
from fluxqueue.sim.workload import (
    KIND_JOBSET,
    KIND_MPIJOB,
    GeneratorSpec,
    generate,
    load_manifests,
    parse_mix,
    with_mix,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_the_default_mix_has_no_jobsets_or_mpijobs():
    kinds = Counter(i.kind for i in generate(GeneratorSpec(jobs=300, seed=4)))
    assert kinds[KIND_JOBSET] == 0 and kinds[KIND_MPIJOB] == 0


def test_a_mix_of_only_jobsets_and_mpijobs_sizes_each_to_half_the_cluster_at_most():
    spec = with_mix(GeneratorSpec(jobs=200, seed=7, nodes=4, cpus=8), "jobset=1,mpijob=1")
    items = generate(spec)
    assert set(Counter(i.kind for i in items)) == {KIND_JOBSET, KIND_MPIJOB}
    for item in items:
        (manifest,) = item.manifests
        if item.kind == KIND_JOBSET:
            leader, workers = manifest["spec"]["replicatedJobs"]
            assert (leader["name"], workers["name"]) == ("leader", "workers")
            assert item.pods == 1 + workers["template"]["spec"]["parallelism"]
            head = leader["template"]["spec"]["template"]["spec"]["containers"][0]
        else:
            specs = manifest["spec"]["mpiReplicaSpecs"]
            assert manifest["spec"]["runPolicy"]["cleanPodPolicy"] == "Running"
            assert item.pods == 1 + specs["Worker"]["replicas"]
            head = specs["Launcher"]["template"]["spec"]["containers"][0]
        head_cores = int(head["resources"]["requests"]["cpu"].rstrip("m")) // 1000
        assert head_cores == item.meta["head_cores"]
        assert head_cores + (item.pods - 1) * item.meta["cores"] <= 4 * 8 // 2 or item.pods == 2


def test_parse_mix_names_weights_and_refuses_unknown_kinds():
    assert parse_mix("pod=35, job=45,group=20,jobset=10")["share_jobsets"] == 10.0
    assert parse_mix("jobset=1")["share_pods"] == 0.0
    with pytest.raises(ConfigError, match="KIND=WEIGHT"):
        parse_mix("rayjob=3")
    with pytest.raises(ConfigError, match=">= 0"):
        parse_mix("pod=-1")
    with pytest.raises(ConfigError, match="not all 0"):
        generate(with_mix(GeneratorSpec(jobs=3), "pod=0"))


def test_the_examples_are_units_with_their_pod_counts():
    (jobset,) = load_manifests(EXAMPLES / "jobset.yaml")
    (mpijob,) = load_manifests(EXAMPLES / "mpijob.yaml")
    assert (jobset.kind, jobset.name, jobset.pods) == (KIND_JOBSET, "train", 5)
    assert (mpijob.kind, mpijob.name, mpijob.pods) == (KIND_MPIJOB, "pi", 5)


def test_the_report_counts_a_jobset_or_mpijob_pod_to_its_unit():
    jobset_pod = {
        "metadata": {
            "name": "train-workers-0-1-abcde",
            "namespace": "ns",
            "labels": {"jobset.sigs.k8s.io/jobset-name": "train"},
            "ownerReferences": [{"kind": "Job", "name": "train-workers-0", "controller": True}],
        }
    }
    launcher_pod = {
        "metadata": {
            "name": "pi-launcher-xyz",
            "namespace": "ns",
            "labels": {
                "training.kubeflow.org/operator-name": "mpi-operator",
                "training.kubeflow.org/job-name": "pi",
            },
            "ownerReferences": [{"kind": "Job", "name": "pi-launcher", "controller": True}],
        }
    }
    assert pod_unit_key(jobset_pod) == "JobSet/ns/train"
    assert pod_unit_key(launcher_pod) == "MPIJob/ns/pi"


async def test_generated_manifests_are_accepted_by_the_emulator():
    from fluxqueue.sim.apiserver import APIServer
    from fluxqueue.sim.controllers import thirdparty_crds
    from fluxqueue.sim.harness.run import resource_for

    api = APIServer()
    try:
        await thirdparty_crds.install(api.client)
        items = generate(with_mix(GeneratorSpec(jobs=6, seed=3, nodes=4, cpus=8), "jobset=1,mpijob=1"))
        for item in items:
            (manifest,) = item.manifests
            out = await api.client.create(resource_for(manifest), manifest, namespace="default")
            assert _within(manifest["spec"], out["spec"]), "pruned or changed"
    finally:
        await api.stop()


def _within(want, got) -> bool:
    """Every field of ``want`` is in ``got`` with the same value (``got`` may add defaults)."""
    if isinstance(want, dict):
        return isinstance(got, dict) and all(k in got and _within(v, got[k]) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(got, list) and len(want) == len(got) and all(map(_within, want, got))
    return want == got
