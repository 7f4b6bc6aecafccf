"""Analysis of finished runs: accuracy-versus-compute curves, reports, difficulty bins,
fitting the compute-optimal policy, calibration, overthinking, paired comparisons and
pass@k. It reads run stores and never generates."""

from ponder.analysis.calibration import Calibration, load_calibration
from ponder.analysis.curves import CurvePoint, PrefixOutcomes, point, prefix_outcomes, scaling_curve
from ponder.analysis.difficulty import pass_rates, pilot_signals
from ponder.analysis.efficiency import Reference, tokens_to_reach
from ponder.analysis.optimize import Optimization, optimize
from ponder.analysis.overthinking import RunOverthinking, overthinking
from ponder.analysis.paired import Paired, paired
from ponder.analysis.report import ReportPaths, RunReport, summarize_run, write_report

__all__ = [
    "Calibration",
    "CurvePoint",
    "Optimization",
    "Paired",
    "PrefixOutcomes",
    "Reference",
    "ReportPaths",
    "RunOverthinking",
    "RunReport",
    "load_calibration",
    "optimize",
    "overthinking",
    "paired",
    "pass_rates",
    "pilot_signals",
    "point",
    "prefix_outcomes",
    "scaling_curve",
    "summarize_run",
    "tokens_to_reach",
    "write_report",
]
