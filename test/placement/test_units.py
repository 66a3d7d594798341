"""Scheduling units from Jobs, pods and pod groups, and the validation of the labels users set."""

import re

import pytest

from fluxqueue.placement.resources import Resources
from fluxqueue.placement.units import (
    UnitDefaults,
    UnitError,
    job_size,
    parse_duration,
    unit_from_job,
    unit_from_pod,
    unit_from_pod_group,
)

GI = 2**30


def job(spec=None, labels=None, template_labels=None, annotations=None, template_spec=None):
    template_spec = template_spec or {
        "containers": [{"name": "c", "resources": {"requests": {"cpu": "2", "memory": "1Gi"}}}]
    }
    return {
        "metadata": {
            "name": "train",
            "namespace": "ml",
            "uid": "u-1",
            "labels": labels or {},
            "annotations": annotations or {},
        },
        "spec": {
            "parallelism": 4,
            **(spec or {}),
            "template": {"metadata": {"labels": template_labels or {}}, "spec": template_spec},
        },
    }


def pod(name="p", labels=None, spec=None, annotations=None):
    return {
        "metadata": {
            "name": name,
            "namespace": "ml",
            "uid": f"uid-{name}",
            "labels": labels or {},
            "annotations": annotations or {},
        },
        "spec": spec or {"containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]},
    }


@pytest.mark.parametrize(
    "spec,size",
    [
        ({"parallelism": 4}, 4),
        ({"parallelism": 4, "completions": 2}, 2),
        ({"parallelism": 2, "completions": 10}, 2),
        ({"parallelism": 0}, 0),
        ({}, 1),
    ],
)
def test_job_size_is_parallelism_capped_by_completions(spec, size):
    j = job()
    j["spec"] = {**spec, "template": j["spec"]["template"]}
    assert job_size(j) == size


def test_a_job_unit_carries_resources_duration_priority_and_placement_rules():
    tspec = {
        "containers": [
            {"name": "c", "resources": {"requests": {"cpu": "1500m", "memory": "2Gi", "nvidia.com/gpu": "1"}}}
        ],
        "nodeSelector": {"disk": "ssd"},
        "tolerations": [{"key": "gpu", "operator": "Exists"}],
        "priorityClassName": "high",
    }
    u = unit_from_job(
        job(spec={"activeDeadlineSeconds": 600, "completionMode": "Indexed"}, template_spec=tspec),
        UnitDefaults(priority_classes={"high": 1000}),
    )
    assert (u.kind, u.namespace, u.name, u.uid, u.size) == ("Job", "ml", "train", "u-1", 4)
    assert u.per_pod == Resources(1500, 2 * GI, 1, 1)
    assert u.duration == 600 and u.priority == 1000 and u.indexed
    (main,) = u.pod_sets
    assert (main.name, main.count) == ("main", 4)
    assert main.node_selector == {"disk": "ssd"} and main.tolerations == [
        {"key": "gpu", "operator": "Exists"}
    ]
    assert u.total == Resources(6000, 8 * GI, 4, 4)


def test_duration_label_beats_active_deadline_which_beats_the_default():
    assert (
        unit_from_job(
            job(labels={"fluxqueue.io/duration": "1h30m"}, spec={"activeDeadlineSeconds": 60})
        ).duration
        == 5400
    )
    assert unit_from_job(job(spec={"activeDeadlineSeconds": 60})).duration == 60
    assert unit_from_job(job(), UnitDefaults(default_duration=123)).duration == 123
    # The template may carry the setting too (Job first, then template).
    assert unit_from_job(job(template_labels={"fluxqueue.io/duration": "90"})).duration == 90
    # ... and annotations are read after labels.
    assert unit_from_job(job(annotations={"fluxqueue.io/duration": "2m"})).duration == 120


@pytest.mark.parametrize(
    "text,seconds",
    [
        ("3600", 3600),
        ("90s", 90),
        ("30m", 1800),
        ("2h", 7200),
        ("1h30m", 5400),
        ("1d", 86400),
        ("1h0m5s", 3605),
    ],
)
def test_durations_in_seconds_or_go_style(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "-5", "1.5h", "5x", "m", "0", "0s", "h1"])
def test_bad_durations_are_refused_with_the_label_name(text):
    with pytest.raises(UnitError, match=re.escape("fluxqueue.io/duration")):
        parse_duration(text)


@pytest.mark.parametrize(
    "labels,message",
    [
        (
            {"fluxqueue.io/group-name": "g", "fluxqueue.io/group-size": "abc"},
            "group-size must be a positive integer, got 'abc'",
        ),
        (
            {"fluxqueue.io/group-name": "g", "fluxqueue.io/group-size": "0"},
            "group-size must be a positive integer, got '0'",
        ),
        ({"fluxqueue.io/group-name": "g"}, "group-size is not"),
        ({"fluxqueue.io/group-size": "3"}, "group-name is not"),
        ({"fluxqueue.io/exclusive": "yes"}, 'exclusive must be "true" or "false", got \'yes\''),
        ({"fluxqueue.io/duration": "forever"}, "duration must be a number of seconds"),
        ({"fluxqueue.io/group-name": "-bad-", "fluxqueue.io/group-size": "2"}, "group-name must be"),
    ],
)
def test_bad_labels_raise_unit_errors_users_can_read(labels, message):
    with pytest.raises(UnitError, match=re.escape(message)):
        unit_from_pod(pod(labels=labels))


def test_group_smaller_than_the_jobs_parallelism_is_refused():
    with pytest.raises(UnitError, match=r"group-size \(2\) is smaller than the Job's parallelism \(4\)"):
        unit_from_job(job(labels={"fluxqueue.io/group-name": "g", "fluxqueue.io/group-size": "2"}))
    u = unit_from_job(job(labels={"fluxqueue.io/group-name": "g", "fluxqueue.io/group-size": "6"}))
    assert (u.group_name, u.group_size) == ("g", 6)


def test_parallelism_zero_is_a_unit_of_size_zero_not_an_error():
    u = unit_from_job(job(spec={"parallelism": 0}))
    assert u.size == 0 and not u.placeable


def test_exclusive_and_queue_labels():
    u = unit_from_pod(pod(labels={"fluxqueue.io/exclusive": "true", "fluxqueue.io/queue": "gpu"}))
    assert u.exclusive and u.queue == "gpu"
    assert not unit_from_pod(pod(labels={"fluxqueue.io/exclusive": "false"})).exclusive


def test_a_bare_pod_is_a_unit_of_one_with_its_resolved_priority():
    p = pod(spec={"containers": [{"name": "c"}], "priority": 7, "activeDeadlineSeconds": 30})
    u = unit_from_pod(p)
    assert (u.kind, u.name, u.uid, u.size, u.priority, u.duration) == ("Pod", "p", "uid-p", 1, 7, 30)


def test_a_generate_name_pod_is_named_by_its_prefix_until_it_has_a_name():
    p = pod()
    p["metadata"]["name"] = ""
    p["metadata"]["generateName"] = "web-"
    assert unit_from_pod(p).name == "web-"


def test_group_members_of_different_shapes_make_one_pod_set_each():
    labels = {"fluxqueue.io/group-name": "mpi", "fluxqueue.io/group-size": "3"}
    launcher = pod(
        "launcher",
        labels=labels,
        spec={"containers": [{"name": "c", "resources": {"requests": {"cpu": "500m", "memory": "4Gi"}}}]},
    )
    worker = pod(
        "worker-0",
        labels={**labels, "fluxqueue.io/duration": "600"},
        spec={"containers": [{"name": "c", "resources": {"requests": {"cpu": "4", "memory": "1Gi"}}}]},
    )
    single = unit_from_pod(launcher)
    assert (single.kind, single.name, single.size, single.members) == ("PodGroup", "mpi", 3, ("launcher",))
    g = unit_from_pod_group([worker, launcher], UnitDefaults(default_duration=60))
    assert (g.kind, g.name, g.size, g.uid) == ("PodGroup", "mpi", 3, "")
    assert [(s.name, s.count, s.per_pod) for s in g.pod_sets] == [
        ("launcher", 1, Resources(500, 4 * GI, 0, 1)),
        ("worker", 1, Resources(4000, 1 * GI, 0, 1)),
    ]
    assert g.duration == 600 and g.members == ("launcher", "worker-0")


def test_alike_group_members_share_a_pod_set_whatever_order_they_arrive_in():
    labels = {"fluxqueue.io/group-name": "mpi", "fluxqueue.io/group-size": "3"}

    def member(name, cpu):
        return pod(
            name, labels=labels, spec={"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]}
        )

    pods = [member("mpi-worker-0", "1"), member("mpi-worker-1", "1"), member("mpi-launcher", "8")]
    for order in (pods, pods[::-1]):
        g = unit_from_pod_group(order)
        assert sorted((s.name, s.count, s.per_pod.cpu_milli) for s in g.pod_sets) == [
            ("mpi-launcher", 1, 8000),
            ("mpi-worker", 2, 1000),
        ]


def test_kueue_and_coscheduling_group_labels_are_read_as_ours():
    kueue = pod(
        "k0",
        labels={"kueue.x-k8s.io/pod-group-name": "kg"},
        annotations={"kueue.x-k8s.io/pod-group-total-count": "2"},
    )
    u = unit_from_pod(kueue)
    assert (u.kind, u.name, u.size) == ("PodGroup", "kg", 2)
    with pytest.raises(UnitError, match="pod-group-total-count"):
        unit_from_pod(pod("k1", labels={"kueue.x-k8s.io/pod-group-name": "kg"}))
    cosched = pod("c0", labels={"scheduling.x-k8s.io/pod-group": "cg"})
    assert unit_from_pod(cosched, group_size=4).size == 4  # the PodGroup's minMember
    with pytest.raises(UnitError, match="minMember"):
        unit_from_pod(cosched)  # no PodGroup and no fluxqueue.io/group-size: a clear error
    sized = pod("c1", labels={"scheduling.x-k8s.io/pod-group": "cg", "fluxqueue.io/group-size": "3"})
    assert unit_from_pod(sized).size == 3


def test_group_members_must_agree_on_the_size():
    a = pod("a", labels={"fluxqueue.io/group-name": "g", "fluxqueue.io/group-size": "2"})
    b = pod("b", labels={"fluxqueue.io/group-name": "g", "fluxqueue.io/group-size": "3"})
    with pytest.raises(UnitError, match="disagree"):
        unit_from_pod_group([a, b])


def test_unit_of_pod_follows_the_webhook_rules():
    from fluxqueue.workloads.registry import unit_of_pod

    def ours(p, **meta):
        p["spec"]["schedulerName"] = "fluxqueue"
        p["metadata"].update(meta)
        return p

    def ref(p):
        r = unit_of_pod(p)
        return (r.kind, r.namespace, r.name, r.owner_key) if r else None

    job_owner = [{"apiVersion": "batch/v1", "kind": "Job", "name": "train", "uid": "x", "controller": True}]
    assert ref(ours(pod("train-0"), ownerReferences=job_owner)) == ("Job", "ml", "train", "x")
    grouped = ours(pod("m0", labels={"fluxqueue.io/group-name": "mpi", "fluxqueue.io/group-size": "2"}))
    assert ref(grouped) == ("PodGroup", "ml", "mpi", "group:ml/mpi")
    rs_owner = [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "y", "controller": True}
    ]
    assert ref(ours(pod("web-abc"), uid="p1", ownerReferences=rs_owner)) == ("Pod", "ml", "web-abc", "p1")
    assert unit_of_pod(pod("other")) is None
    # A JobSet's pod: its owner is a child Job; the webhook marked the child Job's template with the JobSet.
    child_job = [{"apiVersion": "batch/v1", "kind": "Job", "name": "js-w-0", "uid": "j", "controller": True}]
    jobset_pod = ours(
        pod("js-w-0-abc"),
        ownerReferences=child_job,
        annotations={"fluxqueue.io/workload": "JobSet/js/js-uid"},
    )
    assert ref(jobset_pod) == ("JobSet", "ml", "js", "js-uid")
    # An MPIJob's worker is owned by the MPIJob itself.
    mpi_owner = [
        {"apiVersion": "kubeflow.org/v2beta1", "kind": "MPIJob", "name": "pi", "uid": "m", "controller": True}
    ]
    assert ref(ours(pod("pi-worker-0"), ownerReferences=mpi_owner)) == ("MPIJob", "ml", "pi", "m")
