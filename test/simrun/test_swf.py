"""Standard Workload Format traces: parsing, malformed lines, mapping processors to pods."""

from __future__ import annotations

from pathlib import Path

import pytest

from fluxqueue.errors import ConfigError
from fluxqueue.kube import names
from fluxqueue.placement.units import unit_from_job
from fluxqueue.sim.workload import GeneratorSpec, load_workload, parse_swf, parse_swf_text, swf_items

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

HEADER = "; Version: 2.2\n; Computer: test\n"


def line(number, submit, run, alloc, req_procs, req_time, status=1):
    fields = [number, submit, 0, run, alloc, -1, -1, req_procs, req_time, -1, status, 1, 1, -1, 1, -1, -1, -1]
    return " ".join(str(f) for f in fields)


def test_parses_jobs_and_skips_the_ones_that_never_ran():
    text = HEADER + "\n".join(
        [
            line(1, 100, 50, 16, 16, 120),
            line(2, 130, -1, -1, 8, 60, status=5),  # cancelled in the queue
            line(3, 160, 30, -1, 4, 3600),  # allocated unknown: the request counts
        ]
    )
    trace = parse_swf_text(text, "t.swf")
    assert [j.number for j in trace.jobs] == [1, 3]
    assert trace.skipped == 1
    assert trace.jobs[1].processors == 4
    assert trace.header[0] == "Version: 2.2"


def test_processors_map_to_pods_of_cores_per_pod_and_times_to_offsets():
    trace = parse_swf_text(line(1, 100, 50, 20, 20, 120) + "\n" + line(2, 160, 90, 3, 3, 60) + "\n")
    items = swf_items(trace, cores_per_pod=8, memory_per_core=2**30)
    first, second = items
    assert first.pods == 3 and first.submit_at == 0
    assert second.pods == 1 and second.submit_at == 60
    u1 = unit_from_job(first.manifests[0])
    assert u1.size == 3 and u1.per_pod.cpu_milli == 8000 and u1.per_pod.memory == 8 * 2**30
    u2 = unit_from_job(second.manifests[0])
    assert u2.per_pod.cpu_milli == 3000
    # A run longer than the request (killed at walltime, or clock skew) never yields runtime > duration.
    assert u2.duration == 90
    tmpl = second.manifests[0]["spec"]["template"]["metadata"]["annotations"]
    assert tmpl[names.SIM_RUNTIME] == "90s"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1 2 3\n", r"t\.swf line 1: expected 18 whitespace-separated fields, found 3"),
        (
            HEADER + line(1, 0, 5, 1, 1, 10) + "\n" + line(2, 3, "abc", 1, 1, 10) + "\n",
            r"t\.swf line 4, field 4 \(run time\): 'abc' is not a number",
        ),
        (HEADER + line(1, -5, 5, 1, 1, 10) + "\n", r"t\.swf line 3, field 2 \(submit time\).*negative"),
        (line(1, 0, 5, 1, 1, "nan") + "\n", r"line 1, field 9 \(requested time\).*not finite"),
    ],
)
def test_malformed_lines_name_the_line_and_field(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_swf_text(text, "t.swf")


def test_the_example_trace_parses_and_loads_as_a_workload():
    trace = parse_swf(EXAMPLES / "sample.swf")
    assert len(trace.jobs) >= 50 and trace.skipped >= 1
    items = load_workload(str(EXAMPLES / "sample.swf"), GeneratorSpec(jobs=0, cpus=32), cores_per_pod=8)
    assert len(items) == len(trace.jobs)
    for item in items:
        unit = unit_from_job(item.manifests[0])
        assert unit.per_pod.cpu_milli <= 8000


def test_missing_trace_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read SWF trace"):
        parse_swf(tmp_path / "nope.swf")


def test_trace_jobs_wider_than_the_cluster_are_left_out(tmp_path):
    trace = tmp_path / "t.swf"
    trace.write_text(line(1, 0, 50, 64, 64, 120) + "\n" + line(2, 10, 50, 4096, 4096, 120) + "\n")
    items = load_workload(str(trace), GeneratorSpec(jobs=0, nodes=4, cpus=32), cores_per_pod=8)
    assert [i.meta["swf_job"] for i in items] == [1]
