"""Evaluation: run a strategy over a task, store records, draw curves."""

from ponder.eval.curves import CurvePoint, point, scaling_curve, wilson_interval
from ponder.eval.report import ReportPaths, RunReport, summarize_run, write_report
from ponder.eval.runner import EvalSummary, evaluate, problem_seed, run_config, run_eval
from ponder.eval.store import Record, RunStore

__all__ = [
    "CurvePoint",
    "EvalSummary",
    "Record",
    "ReportPaths",
    "RunReport",
    "RunStore",
    "evaluate",
    "point",
    "problem_seed",
    "run_config",
    "run_eval",
    "scaling_curve",
    "summarize_run",
    "wilson_interval",
    "write_report",
]
