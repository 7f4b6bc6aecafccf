"""Running: a strategy over a task's problems, with records in a resumable store, an
archive format to carry stores between machines, replay banks, and the executors that
run problems locally or on Ray."""

from ponder.runs.executor import Executor, LocalExecutor
from ponder.runs.job import SolveJob
from ponder.runs.runner import EvalSummary, evaluate, problem_seed, run_config, run_eval
from ponder.runs.solve import solve_problem
from ponder.runs.store import Record, RunStore
from ponder.runs.summary import wilson_interval

__all__ = [
    "EvalSummary",
    "Executor",
    "LocalExecutor",
    "Record",
    "RunStore",
    "SolveJob",
    "evaluate",
    "problem_seed",
    "run_config",
    "run_eval",
    "solve_problem",
    "wilson_interval",
]
