"""Evaluation: run a strategy over a task, store records, draw curves."""

from ponder.eval.calibration import Calibration, load_calibration
from ponder.eval.curves import (
    CurvePoint,
    PrefixOutcomes,
    point,
    prefix_outcomes,
    scaling_curve,
    wilson_interval,
)
from ponder.eval.difficulty import Bins, pass_rates, pilot_signals
from ponder.eval.efficiency import Reference, tokens_to_reach
from ponder.eval.optimize import Optimization, optimize
from ponder.eval.overthinking import RunOverthinking, overthinking
from ponder.eval.paired import Paired, paired
from ponder.eval.policy import Policy, load_policy
from ponder.eval.report import ReportPaths, RunReport, summarize_run, write_report
from ponder.eval.runner import EvalSummary, evaluate, problem_seed, run_config, run_eval
from ponder.eval.store import Record, RunStore

__all__ = [
    "Bins",
    "Calibration",
    "CurvePoint",
    "EvalSummary",
    "Optimization",
    "Paired",
    "Policy",
    "PrefixOutcomes",
    "Record",
    "Reference",
    "ReportPaths",
    "RunOverthinking",
    "RunReport",
    "RunStore",
    "evaluate",
    "load_calibration",
    "load_policy",
    "optimize",
    "overthinking",
    "paired",
    "pass_rates",
    "pilot_signals",
    "point",
    "prefix_outcomes",
    "problem_seed",
    "run_config",
    "run_eval",
    "scaling_curve",
    "summarize_run",
    "tokens_to_reach",
    "wilson_interval",
    "write_report",
]
