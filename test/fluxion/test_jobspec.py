import json

import pytest

from fluxqueue.fluxion.jgf import synthetic_cluster
from fluxqueue.fluxion.matcher import Matcher
from fluxqueue.fluxion.matcher.jobspec import SYSTEM_MAX_DURATION, UNBOUNDED, JobspecError, parse_jobspec

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
        (lambda s: s["resources"][0].update(count={"min": 4, "max": 2, "operator": "+", "operand": 1}), "must be greater than or equal to min"),
        (lambda s: s["resources"][0].update(count={"min": 1, "max": 2, "operator": "%", "operand": 1}), "operator must be one of"),
        (lambda s: s["resources"][0]["with"][0].pop("label"), "a slot needs a 'label'"),
        (lambda s: s["resources"][0].update(colour="red"), "unknown key(s) ['colour']"),
        (lambda s: s["resources"][0].update(type="socket", with_=None) or s["resources"][0].pop("with_"), None),
        (lambda s: s["tasks"][0].update(slot=["task"]), "slot must be a scalar"),
        (lambda s: s["tasks"][0].update(count={"per_slot": 1, "total": 2}), "must have exactly one entry"),
        (lambda s: s["attributes"]["system"].update(duration=-1), "must be finite and >= 0"),
        (lambda s: s["attributes"]["system"].update(constraints={"colour": ["x"]}), "unknown constraint operator"),
        (lambda s: s["resources"][0]["with"][0]["with"][0].update(exclusive=False), "conflicts with being inside a slot"),
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


@pytest.mark.parametrize("text", ["", "   ", "version: [1", "[1, 2]", "{not json"])
def test_garbage_is_a_jobspec_error_not_a_crash(text):
    with pytest.raises(JobspecError):
        parse_jobspec(text)


# -- reading as flux-sched's libjobspec does (resource/libjobspec/jobspec.cpp) ---------------------------------


def _graph_matcher(nodes=4, cores=4):
    m = Matcher()
    m.init(synthetic_cluster(nodes, cores, memory_chunks=0).to_json())
    return m


@pytest.mark.parametrize(
    "mutate",
    [
        # tasks[].slot only has to be present: it need not name a slot label.
        lambda s: s["tasks"][0].update(slot="not-a-label"),
        lambda s: s["tasks"][0].update(slot=7),
        # a task needs neither count nor per_slot/total, only 3 to 5 entries
        lambda s: s["tasks"][0].pop("count") and s["tasks"][0].update(distribution="scatter"),
        lambda s: s["tasks"][0].update(count={"per_node": "2"}),
        lambda s: s.update(tasks=[]),
        # labels need not be unique; a label on a non-slot resource is fine
        lambda s: s["resources"][0].update(label="task"),
        # siblings of one type, a slot in a slot: parsed (the traverser decides what they match)
        lambda s: s["resources"][0]["with"].append({"type": "slot", "count": 1, "label": "b", "with": [{"type": "gpu", "count": 1}]}),
        lambda s: s["resources"][0]["with"][0]["with"].append({"type": "slot", "count": 1, "label": "c", "with": [{"type": "gpu", "count": 1}]}),
        # a scalar id (string or number) is fine
        lambda s: s["resources"][0].update(id=3),
        lambda s: s["resources"][0].update(id="n3"),
        # yaml-cpp reads scalars: a numeric string is a count, "true" an exclusive flag
        lambda s: s["resources"][0].update(count="2"),
        lambda s: s["resources"][0].update(exclusive="true"),
        lambda s: s.update(version="1"),
        lambda s: s["attributes"]["system"].update(duration="10.5"),
        # unknown keys inside a count mapping are ignored
        lambda s: s["resources"][0].update(count={"min": 1, "note": "x"}),
        # attributes may be null; system keys beyond duration are kept
        lambda s: s.update(attributes=None),
        lambda s: s["attributes"]["system"].update(queue="batch", cwd="/tmp", environment={"A": "1"}, x={"y": 1}),
        lambda s: s["attributes"].update(user={"anything": [1, 2]}),
        # RFC 31: empty and/or/not/properties lists are valid
        lambda s: s["attributes"]["system"].update(constraints={"and": []}),
        lambda s: s["attributes"]["system"].update(constraints={"properties": ["^amd", "ssd=1"]}),
        lambda s: s["attributes"]["system"].update(constraints={"ranks": [3, "[0-2,5]", ""]}),
    ],
)  # fmt: skip
def test_what_libjobspec_accepts_is_accepted(mutate):
    spec = jobspec(nodes=1, cores=2)
    mutate(spec)
    parse_jobspec(spec)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        # max/operator/operand: all or none (jobspec.cpp parse_yaml_count)
        (lambda s: s["resources"][0].update(count={"min": 1, "max": 4}), "go all together or not at all"),
        (lambda s: s["resources"][0].update(count={"min": 1, "operator": "+"}), "go all together or not at all"),
        (lambda s: s["resources"][0].update(count={"min": 1, "operand": 1}), "go all together or not at all"),
        (lambda s: s["resources"][0].update(count={"max": 4, "operator": "+", "operand": 1}), "has no 'min'"),
        (lambda s: s["resources"][0].update(count={"min": 0}), "min must be greater than zero"),
        (lambda s: s["resources"][0].update(count={"min": [1]}), "count.min must be a scalar"),
        (lambda s: s["resources"][0].update(count={"min": 1.5}), "count.min must be an unsigned integer"),
        (lambda s: s["resources"][0].update(count=-1), "count must be an unsigned integer"),
        (lambda s: s["resources"][0].update(count=None), "got null"),
        # operand rules per operator, including ^ with min 1
        (lambda s: s["resources"][0].update(count={"min": 1, "max": 8, "operator": "^", "operand": 2}), "min must be greater than one for '^'"),
        (lambda s: s["resources"][0].update(count={"min": 2, "max": 8, "operator": "^", "operand": 1}), "operand must be greater than one for '^'"),
        (lambda s: s["resources"][0].update(count={"min": 2, "max": 2, "operator": "*", "operand": 1}), "operand must be greater than one for '*'"),
        (lambda s: s["resources"][0].update(count={"min": 1, "max": 2, "operator": "+", "operand": 0}), "operand must be greater than zero for '+'"),
        # every present key a scalar: id, unit, label, exclusive (null too), with a sequence
        (lambda s: s["resources"][0].update(id={"a": 1}), "id must be a scalar"),
        (lambda s: s["resources"][0].update(id=[1]), "id must be a scalar"),
        (lambda s: s["resources"][0].update(id=None), "id must be a scalar"),
        (lambda s: s["resources"][0].update(unit=["GB"]), "unit must be a scalar"),
        (lambda s: s["resources"][0]["with"][0].update(label=None), "label must be a scalar"),
        (lambda s: s["resources"][0].update(exclusive="yes"), "exclusive must be true or false"),
        (lambda s: s["resources"][0].update(type={"node": 1}), "type must be a scalar"),
        (lambda s: s["resources"][0].update(**{"with": None}), "with must be a sequence"),
        (lambda s: s["resources"][0].update(requires=[]), "unknown key(s) ['requires']"),
        # tasks
        (lambda s: s["tasks"][0].pop("slot"), "has no 'slot'"),
        (lambda s: s["tasks"][0].update(command="app"), "command must be a sequence"),
        (lambda s: s["tasks"][0].pop("count"), "has 2 entries"),
        (lambda s: s["tasks"][0].update(count=[1]), "count must be a mapping"),
        (lambda s: s.update(tasks={"command": ["a"]}), "'tasks' must be a sequence"),
        (lambda s: s.update(version=10000), "'version' must be an integer from 1 to 9999"),
        (lambda s: s.update(attributes=[]), "'attributes' must be a mapping"),
        (lambda s: s["attributes"]["system"].update(duration="soon"), "must be a number of seconds"),
        # RFC 31 (constraint.cpp, rank_constraint.cpp): one operation per mapping, property characters, idsets
        (lambda s: s["attributes"]["system"].update(constraints={"properties": ["a"], "ranks": ["1"]}), "only one operation"),
        (lambda s: s["attributes"]["system"].update(constraints={"properties": ["a|b"]}), "'a|b' is invalid"),
        (lambda s: s["attributes"]["system"].update(constraints={"properties": ["^^a"]}), "'^^a' is invalid"),
        (lambda s: s["attributes"]["system"].update(constraints={"properties": ["x(1)"]}), "is invalid"),
        (lambda s: s["attributes"]["system"].update(constraints={"properties": [3]}), "non-string property"),
        (lambda s: s["attributes"]["system"].update(constraints={"properties": "a"}), "must be a sequence"),
        (lambda s: s["attributes"]["system"].update(constraints={"ranks": ["5-5"]}), "invalid idset '5-5'"),
        (lambda s: s["attributes"]["system"].update(constraints={"ranks": ["3-1"]}), "invalid idset"),
        (lambda s: s["attributes"]["system"].update(constraints={"ranks": ["1,,2"]}), "invalid idset"),
        (lambda s: s["attributes"]["system"].update(constraints={"ranks": [[1]]}), "must be idsets"),
    ],
)  # fmt: skip
def test_what_libjobspec_refuses_is_refused(mutate, message):
    spec = jobspec(nodes=1, cores=2)
    mutate(spec)
    with pytest.raises(JobspecError) as exc:
        parse_jobspec(spec)
    assert message in str(exc.value)


def test_a_count_with_only_min_is_unbounded_and_takes_every_node_that_fits():
    spec = jobspec(nodes=1, cores=1)
    spec["resources"][0]["count"] = {"min": 2}
    node = parse_jobspec(spec).resources[0]
    assert (node.min, node.max, node.operator, node.operand) == (2, UNBOUNDED, "+", 1)
    assert [node.best_count(a) for a in (1, 2, 3, 1000)] == [0, 2, 3, 1000]
    m = _graph_matcher(nodes=4, cores=4)
    out = m.match(spec)
    assert out.status == "allocated" and sorted(out.nodes) == [f"node{i}" for i in range(4)]
    # with every node busy but one, min 2 no longer fits now
    m2 = _graph_matcher(nodes=3, cores=1)
    assert m2.match(jobspec(nodes=1, cores=1)).status == "allocated"
    assert m2.match(spec).status == "allocated"  # the two nodes left
    assert m2.match(spec).status == "busy"


def test_count_expressions_follow_calc_count():
    def req(lo, hi, op, operand):
        spec = jobspec(nodes=1)
        spec["resources"][0]["count"] = {"min": lo, "max": hi, "operator": op, "operand": operand}
        return parse_jobspec(spec).resources[0]

    plus = req(2, 11, "+", 3)  # 2, 5, 8, 11
    assert [plus.best_count(a) for a in (1, 2, 4, 5, 7, 10, 11, 99)] == [0, 2, 2, 5, 5, 8, 11, 11]
    power = req(2, 100, "^", 2)  # 2, 4, 16
    assert [power.best_count(a) for a in (1, 2, 3, 4, 15, 16, 99)] == [0, 2, 2, 4, 4, 16, 16]


def test_a_jobspec_without_a_slot_parses_but_is_refused_at_match_without_using_a_job_id():
    # libjobspec has no slot rule; flux-sched's traverser then fails with errno 0 ("traverser: Success"),
    # a refusal (golden invalid.jsonl: node_without_slot).
    spec = jobspec(nodes=1)
    spec["resources"][0]["with"] = [{"type": "core", "count": 1}]
    parse_jobspec(spec)
    m = _graph_matcher()
    with pytest.raises(JobspecError, match="no 'slot'"):
        m.match(spec)
    assert m.match(jobspec(cores=1)).jobid == 1


def test_a_slot_in_one_branch_is_enough():
    spec = jobspec(nodes=1, cores=1)
    spec["resources"].append({"type": "cluster", "count": 1})
    js = parse_jobspec(spec)
    assert [r.type for r in js.resources] == ["node", "cluster"]


def test_types_fluxion_does_not_know_are_refused_pre_registered_ones_are_no_match():
    m = _graph_matcher()
    widget = jobspec(cores=1)
    widget["resources"][0]["with"].append({"type": "widget", "count": 1})
    with pytest.raises(JobspecError, match="not known to fluxion"):
        m.match(widget)
    with pytest.raises(JobspecError, match="'memory' is not known"):
        m.match(jobspec(cores=1, memory=1))  # the graph has no memory vertices
    gpu = m.match(jobspec(cores=1, gpus=1))  # gpu is pre-registered: an ordinary no-match
    assert gpu.status == "unsatisfiable" and gpu.jobid == 1
    assert m.match(jobspec(cores=1)).jobid == 2


def test_top_level_siblings_of_one_type_are_a_no_match_that_uses_a_job_id():
    # dfu_impl match(): a level whose requests repeat a type fails at every vertex (EBUSY), so reapi
    # advances its job counter: not a refusal.
    spec = jobspec(cores=1)
    spec["resources"].append(
        {"type": "slot", "count": 1, "label": "b", "with": [{"type": "core", "count": 1}]}
    )
    m = _graph_matcher()
    out = m.match(spec)
    assert not out.ok and out.jobid == 1
    assert m.match(jobspec(cores=1)).jobid == 2


_YAML = """\
version: 1
resources:
  - type: node
    count: 1
    exclusive: {exclusive}
    with:
      - {{type: slot, count: 1, label: a, with: [{{type: core, count: 1}}]}}
tasks:
  - {{command: [app], slot: a, count: {{per_slot: 1}}}}
attributes:
  system:
    duration: 10
    constraints: {{properties: [{prop}]}}
"""


@pytest.mark.parametrize(
    ("exclusive", "prop", "message"),
    [
        ("true", '"amd"', None),
        ("false", "'^ssd'", None),
        (
            "yes",
            '"amd"',
            "exclusive must be true or false, got 'yes'",
        ),  # yaml-cpp reads the text, not YAML 1.1
        ("True", '"amd"', "exclusive must be true or false, got 'True'"),
        ("false", "amd", "property 'amd' must be a quoted string"),  # constraint.cpp: Tag() must be "!"
    ],
)
def test_yaml_scalars_are_read_as_yaml_cpp_reads_them(exclusive, prop, message):
    text = _YAML.format(exclusive=exclusive, prop=prop)
    if message is None:
        parse_jobspec(text)
        return
    with pytest.raises(JobspecError) as exc:
        parse_jobspec(text)
    assert message in str(exc.value)
