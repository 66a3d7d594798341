"""The report of a simulated run: a recorder fed by watch events, statistics, terminal/JSON/PNG output."""

from fluxqueue.sim.report.output import compare_text, load_report, summary_text, write_report
from fluxqueue.sim.report.progress import Progress
from fluxqueue.sim.report.recorder import Recorder, node_allocatable, pod_unit_key
from fluxqueue.sim.report.stats import histogram_quantiles, percentile, summarize

__all__ = [
    "Progress",
    "Recorder",
    "compare_text",
    "histogram_quantiles",
    "load_report",
    "node_allocatable",
    "percentile",
    "pod_unit_key",
    "summarize",
    "summary_text",
    "write_report",
]
