"""Turn run stores into a figure, a self-contained HTML page and a JSON file of numbers.

For every run: its own accuracy (``curves.point``), and for runs of independent-sampling
strategies the whole scaling curve over n (``curves.scaling_curve``), plotted as accuracy
against mean tokens per problem. Two comparisons after Snell et al. 2024
(arXiv:2408.03314):

- by difficulty (``bins_from``): oracle difficulty bins from a store of many samples
  per problem (pass-rate quantiles, ``difficulty.Bins``, fitted on all its problems),
  and each run's own accuracy and mean tokens on the problems of each bin;
- efficiency (``efficiency``): the tokens each run needs to reach a reference accuracy
  (majority voting at its largest n, or a ``reference`` store), as a ratio to the
  reference's tokens.

Runs of independent samples also get pass@k (``passk``: the unbiased estimator over each
problem's graded samples), and runs that executed programs their sandbox executions and
seconds per problem, and how many ran in each isolation mode (``isolation_counts``).

And for efficient reasoning: every chain-of-thought run's overthinking (tokens generated
after its answer had settled or first appeared, per problem and in total; see
``overthinking``), and with a ``baseline`` store every run against it on the problems
both finished (accuracy difference and tokens saved, paired bootstrap intervals; see
``paired``).

The numbers are computed in ``ponder.analysis.summary``, the page is written by
``ponder.analysis.page`` and the figure drawn by ``ponder.analysis.plot``;
``write_report`` ties them together (``RunReport``, ``summarize_run``, ``run_label``,
``task_rows`` and ``isolation_text`` are importable from here too).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ponder.analysis.page import report_page
from ponder.analysis.plot import plot_runs

# the names callers have imported from here since before the split
from ponder.analysis.summary import (
    RunReport,
    isolation_text,
    run_label,
    summarize_run,
    summarize_runs,
    task_rows,
)
from ponder.strategies.optimal.signals import DEFAULT_BINS

__all__ = [
    "ReportPaths",
    "RunReport",
    "isolation_text",
    "run_label",
    "summarize_run",
    "task_rows",
    "write_report",
]


@dataclass(frozen=True)
class ReportPaths:
    """What ``write_report`` wrote, and the runs' numbers it wrote them from."""

    png: Path
    html: Path
    json: Path
    runs: tuple[RunReport, ...] = ()


def write_report(
    db_paths: Sequence[str | Path],
    out_dir: str | Path,
    bootstrap: int = 1000,
    *,
    log_x: bool = True,
    seed: int = 0,
    bins_from: str | Path | None = None,
    bins: int = DEFAULT_BINS,
    reference: str | Path | None = None,
    baseline: str | Path | None = None,
    count_tokens: Callable[[str], int] | None = None,
    common: bool = False,
) -> ReportPaths:
    """Write ``accuracy_vs_tokens.png``, ``report.html`` and ``curve.json`` into ``out_dir``.

    ``log_x`` draws tokens on a log scale (ignored when some run has zero tokens).
    ``bins_from`` adds the per-difficulty-bin table (``bins`` oracle bins from that
    store); the efficiency table compares every run with ``reference`` (a store) or,
    by default, majority voting at its largest n. ``baseline`` (a store) adds the
    paired comparison of every other run with it. Chain-of-thought runs of math tasks
    always get their overthinking table, with the tokens after an answer counted by
    ``count_tokens`` (a tokenizer) when given, else apportioned by characters.
    ``common`` reports every run on just the problems all of them finished, so runs
    stopped at different points compare on the same problems. Raises ``ConfigError``
    for a path that is not a run store, or when ``common`` leaves no problem.
    """
    if not db_paths:
        raise ValueError("write_report needs at least one run store")
    data = summarize_runs(
        db_paths,
        bootstrap=bootstrap,
        seed=seed,
        bins_from=bins_from,
        bins=bins,
        reference=reference,
        baseline=baseline,
        count_tokens=count_tokens,
        common=common,
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = ReportPaths(
        png=out / "accuracy_vs_tokens.png",
        html=out / "report.html",
        json=out / "curve.json",
        runs=data.runs,
    )
    png = plot_runs(data.runs, log_x, data.reference)
    paths.png.write_bytes(png)
    page = report_page(
        data.runs, png, data.difficulty, data.reference, data.notes, data.baseline_label
    )
    paths.html.write_text(page, encoding="utf-8")
    paths.json.write_text(json.dumps(data.to_dict(), indent=2) + "\n", encoding="utf-8")
    return paths
