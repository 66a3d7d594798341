"""The fluxqueue.io/dependency annotation: sbatch(1)'s --dependency syntax, and the messages a malformed value
is refused with."""

from __future__ import annotations

import pytest

from fluxqueue.dependencies.spec import DependencyError, Term, parse_dependency
from fluxqueue.placement.units import UnitError, read_settings, unit_from_job, unit_from_pod


def test_afterok_of_several_targets_is_one_term_per_target_all_required():
    dep = parse_dependency("afterok:prep:fetch")
    assert dep.terms == (Term("afterok", "prep"), Term("afterok", "fetch"))
    assert not dep.any_of
    assert dep.targets == {"prep", "fetch"}


def test_commas_join_conditions_that_must_all_hold():
    dep = parse_dependency("afterok:a,afterany:b,afternotok:c,after:d+5")
    assert [str(t) for t in dep.terms] == ["afterok:a", "afterany:b", "afternotok:c", "after:d+5"]
    assert dep.terms[3].delay_s == 300
    assert dep.joined == "all"


def test_question_marks_join_conditions_of_which_any_is_enough():
    dep = parse_dependency("afterok:a:b?afterany:c")
    assert dep.any_of and dep.joined == "any"
    assert [t.target for t in dep.terms] == ["a", "b", "c"]


def test_singleton_is_about_the_workloads_own_name():
    dep = parse_dependency("singleton", own_name="nightly-x7", singleton_name="nightly-")
    assert dep.terms == (Term("singleton", "nightly-"),)
    assert dep.targets == set()


def test_rows_round_trip():
    dep = parse_dependency("after:a+2?afterok:b")
    back = type(dep).from_rows(dep.text, dep.rows())
    assert back == dep


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("", "is empty"),
        ("afterok", "needs at least one target"),
        ("afterok:", "needs at least one target"),
        ("afterok:a,afterany:b?afterok:c", "not both"),
        ("afterok:a,,afterok:b", "empty condition"),
        ("afterfoo:a", "unknown condition 'afterfoo'"),
        ("aftercorr:a", "not supported 'aftercorr'"),
        ("afterok:other/prep", "own namespace"),
        ("afterok:Bad Name", "not a workload name"),
        ("afterok:a+5", "only for after"),
        ("after:a+x", "not a number of minutes"),
        ("singleton:a", "singleton takes no targets"),
        ("afterok:me", "this workload itself"),
        ("afterok:a::b", "an empty target"),
    ],
)
def test_a_malformed_value_is_refused_naming_the_annotation_and_the_bad_part(value, says):
    with pytest.raises(DependencyError) as exc:
        parse_dependency(value, own_name="me")
    assert "fluxqueue.io/dependency" in str(exc.value)
    assert says in str(exc.value)


def test_read_settings_refuses_a_malformed_dependency_as_a_user_error():
    with pytest.raises(UnitError, match=r"fluxqueue\.io/dependency.*'afterok:'"):
        read_settings([{"name": "b", "annotations": {"fluxqueue.io/dependency": "afterok:"}}])


def _job(annotations: dict, template_annotations: dict | None = None) -> dict:
    return {
        "metadata": {"name": "train", "namespace": "default", "uid": "u1", "annotations": annotations},
        "spec": {
            "template": {
                "metadata": {"annotations": template_annotations or {}},
                "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]},
            }
        },
    }


def test_a_job_carries_its_dependency_from_the_job_or_its_template():
    assert unit_from_job(_job({"fluxqueue.io/dependency": "afterok:prep"})).dependency.targets == {"prep"}
    unit = unit_from_job(_job({}, {"fluxqueue.io/dependency": "afterany:prep"}))
    assert unit.dependency.terms == (Term("afterany", "prep"),)
    assert unit_from_job(_job({})).dependency is None


def test_a_pod_group_members_singleton_is_the_groups_name():
    pod = {
        "metadata": {
            "name": "w-0",
            "namespace": "default",
            "labels": {"fluxqueue.io/group-name": "gang", "fluxqueue.io/group-size": "2"},
            "annotations": {"fluxqueue.io/dependency": "singleton,afterok:prep"},
        },
        "spec": {"containers": [{"name": "c"}]},
    }
    unit = unit_from_pod(pod)
    assert unit.dependency.terms == (Term("singleton", "gang"), Term("afterok", "prep"))


def test_a_pod_group_may_not_wait_for_itself():
    pod = {
        "metadata": {
            "name": "w-0",
            "labels": {"fluxqueue.io/group-name": "gang", "fluxqueue.io/group-size": "2"},
            "annotations": {"fluxqueue.io/dependency": "afterok:gang"},
        },
        "spec": {"containers": [{"name": "c"}]},
    }
    with pytest.raises(UnitError, match="itself"):
        unit_from_pod(pod)
