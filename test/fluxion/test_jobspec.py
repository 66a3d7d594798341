import json

import pytest

from fluxqueue.fluxion.matcher.jobspec import SYSTEM_MAX_DURATION, JobspecError, parse_jobspec

from .helpers import NODE_4C_1G_16M_YAML, TWO_POD_JOB_YAML, jobspec


def test_reference_jobspecs_parse_from_yaml_and_json():
    js = parse_jobspec(TWO_POD_JOB_YAML)
    node = js.resources[0]
    assert (node.type, node.min, node.max) == ("node", 2, 2)
    slot = node.with_[0]
    assert slot.is_slot and slot.label == "job"
    assert node.need == {"core": 2}
    assert js.duration == 3600
    js2 = parse_jobspec(NODE_4C_1G_16M_YAML)
    assert js2.resources[0].exclusive is True
    assert js2.resources[0].need == {"core": 4, "gpu": 1, "memory": 16}
    assert parse_jobspec(json.dumps(jobspec(slots=16))).resources[0].min == 16


def test_duration_zero_means_the_whole_graph_window_and_fractions_round_up():
    assert parse_jobspec(jobspec(duration=0)).window == SYSTEM_MAX_DURATION
    spec = jobspec()
    spec["attributes"]["system"]["duration"] = 1.2
    assert parse_jobspec(spec).duration == 2


def test_count_ranges_pick_the_largest_allowed_count():
    spec = jobspec(nodes=1)
    spec["resources"][0]["count"] = {"min": 2, "max": 16, "operator": "*", "operand": 2}
    node = parse_jobspec(spec).resources[0]
    assert [node.best_count(a) for a in (1, 2, 3, 7, 8, 100)] == [0, 2, 2, 4, 8, 16]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s: s.pop("attributes"), "missing key(s) attributes"),
        (lambda s: s.update(extra=1), "unknown key(s) extra"),
        (lambda s: s.update(version=0), "'version' must be an integer from 1 to 9999"),
        (lambda s: s["resources"][0].pop("count"), "has no 'count'"),
        (lambda s: s["resources"][0].update(count=0), "count must be at least 1"),
        (lambda s: s["resources"][0].update(count={"min": 4, "max": 2}), "count.max must be an integer >= min"),
        (lambda s: s["resources"][0].update(count={"min": 1, "operator": "%"}), "operator must be one of"),
        (lambda s: s["resources"][0]["with"][0].pop("label"), "a slot needs a 'label'"),
        (lambda s: s["resources"][0].update(colour="red"), "unknown key(s) ['colour']"),
        (lambda s: s["resources"][0].update(type="socket", with_=None) or s["resources"][0].pop("with_"), None),
        (lambda s: s["tasks"][0].update(slot="nope"), "does not name a slot label"),
        (lambda s: s["tasks"][0].update(count={"per_slot": 1, "total": 2}), "exactly one of per_slot or total"),
        (lambda s: s["attributes"]["system"].update(duration=-1), "must be finite and >= 0"),
        (lambda s: s["attributes"]["system"].update(constraints={"colour": ["x"]}), "unknown constraint operator"),
        (lambda s: s["resources"][0]["with"][0]["with"][0].update(exclusive=False), "conflicts with being inside a slot"),
        (lambda s: s["resources"][0]["with"].append({"type": "slot", "count": 1, "label": "b", "with": [{"type": "gpu", "count": 1}]}), "siblings request the same resource type"),
    ],
)  # fmt: skip
def test_malformed_jobspecs_are_rejected_with_a_message_that_says_where(mutate, message):
    spec = jobspec(nodes=1, cores=2)
    mutate(spec)
    if message is None:  # a valid variation (socket level instead of node) must parse
        parse_jobspec(spec)
        return
    with pytest.raises(JobspecError) as exc:
        parse_jobspec(spec)
    assert message in str(exc.value)


def test_a_jobspec_without_a_slot_is_rejected():
    spec = jobspec(nodes=1)
    spec["resources"][0]["with"] = [{"type": "core", "count": 1}]
    with pytest.raises(JobspecError, match="no 'slot'"):
        parse_jobspec(spec)


@pytest.mark.parametrize("text", ["", "   ", "version: [1", "[1, 2]", "{not json"])
def test_garbage_is_a_jobspec_error_not_a_crash(text):
    with pytest.raises(JobspecError):
        parse_jobspec(text)
