"""Admission of fluxqueue.io/dependency: a well-formed value is admitted as any object is (the controller
holds the unit), a malformed one is refused with a message naming the annotation and the bad part."""

from __future__ import annotations

import pytest
from test_mutate import admit, job, pod

DEPENDENCY = "fluxqueue.io/dependency"


def with_dependency(obj: dict, value: str) -> dict:
    obj["metadata"].setdefault("annotations", {})[DEPENDENCY] = value
    return obj


@pytest.mark.parametrize(
    "value", ["afterok:prep", "afterok:a:b,afterany:c", "after:a+5?afternotok:b", "singleton"]
)
def test_a_well_formed_dependency_is_admitted_and_the_job_suspended(value):
    resp, obj = admit(with_dependency(job(), value), kind="Job")
    assert resp["allowed"]
    assert obj["spec"]["suspend"] is True
    assert obj["metadata"]["annotations"][DEPENDENCY] == value  # left as written


def test_a_bare_pod_with_a_dependency_is_gated_as_any_other():
    resp, obj = admit(with_dependency(pod(), "afterok:prep"))
    assert resp["allowed"]
    assert {"name": "fluxqueue.io/queued"} in obj["spec"]["schedulingGates"]


@pytest.mark.parametrize(
    ("kind", "obj", "value", "bad"),
    [
        ("Job", job(), "afterok:a?afterfoo:b", "afterfoo"),
        ("Job", job(), "afterok:a,afterany:b?afterok:c", "not both"),
        ("Job", job(), "afterok:j", "itself"),  # the Job is named j
        ("Pod", pod(), "afterok:", "'afterok:'"),
        ("Pod", pod(), "afterany:ns/x", "own namespace"),
    ],
)
def test_a_malformed_dependency_is_refused_naming_the_annotation_and_the_bad_part(kind, obj, value, bad):
    resp, _ = admit(with_dependency(obj, value), kind=kind)
    assert not resp["allowed"]
    assert resp["status"]["code"] == 422
    message = resp["status"]["message"]
    assert message.startswith(f"fluxqueue: {DEPENDENCY}")
    assert bad in message


def test_a_malformed_dependency_on_a_job_template_is_refused_too():
    obj = job()
    obj["spec"]["template"]["metadata"]["annotations"] = {DEPENDENCY: "afterok"}
    resp, _ = admit(obj, kind="Job")
    assert not resp["allowed"] and "needs at least one target" in resp["status"]["message"]
