"""Jobspecs that flux-sched 0.54 refuses (golden/invalid.jsonl, recorded from real flux-sched; see the README of
the recorded traces): ours must refuse each of them too, with orelse_reserve false and true, on the pristine
graph and after one core is allocated, and a refusal must not use up a job id (flux-sched's reapi only
advances its job counter once a match reaches the traverser and fails with EBUSY/ENODEV)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fluxqueue.fluxion.matcher import JobspecError, Matcher
from fluxqueue.fluxion.matcher.core import ALLOCATE, ALLOCATE_ORELSE_RESERVE

CASES = [json.loads(line) for line in (Path(__file__).parent / "golden" / "invalid.jsonl").open()]


def _params() -> list:
    return [pytest.param(case, id=case["name"]) for case in CASES]


def _matcher(case) -> Matcher:
    m = Matcher()
    m.init(case["jgf"], case["options"]["matcher_policy"])
    return m


def test_the_golden_file_is_complete():
    assert len(CASES) == 10
    assert all(c["pristine"]["consumed_jobids"] == 0 for c in CASES)


@pytest.mark.parametrize("case", _params())
def test_flux_sched_refusals_are_refused_and_use_no_job_id(case):
    m = _matcher(case)
    for attempt in case["pristine"]["attempts"]:
        assert not attempt["ok"] and attempt["error"]
        op = ALLOCATE_ORELSE_RESERVE if attempt["orelse_reserve"] else ALLOCATE
        with pytest.raises(JobspecError) as exc:
            m.match(case["jobspec"], op)
        assert str(exc.value)  # our own message, saying what is wrong
    probe = m.match(case["probe_jobspec"])
    assert probe.status == "allocated"
    assert probe.jobid == case["pristine"]["probe_jobid_after"] == 1

    after = case["after_one_core_allocated"]
    m = _matcher(case)
    assert m.match(case["probe_jobspec"]).jobid == 1  # one core allocated
    if after["consumed_jobids"] == 0:
        with pytest.raises(JobspecError):
            m.match(case["jobspec"], ALLOCATE_ORELSE_RESERVE)
    else:  # refusal vs no-match can depend on state: then it is an ordinary no-match that uses an id
        out = m.match(case["jobspec"], ALLOCATE_ORELSE_RESERVE)
        assert not out.ok and out.jobid == 2
    assert m.match(case["probe_jobspec"]).jobid == after["probe_jobid_after"]
