"""The numbers of a report: each run store summarised (``summarize_run``, a
``RunReport``), the runs set side by side (``summarize_runs``: the reference point,
oracle difficulty bins, the paired comparison with a baseline), their text
(``RunReport.failures_text``, ``isolation_text``) and the JSON of them
(``report_numbers``). ``ponder.analysis.report`` writes these out with the HTML page
(``ponder.analysis.page``) and the figure (``ponder.analysis.plot``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ponder._version import __version__
from ponder.analysis.curves import CurvePoint, point, scaling_curve
from ponder.analysis.difficulty import BinStats, pass_rates, stats_by_bin
from ponder.analysis.efficiency import Efficiency, Reference, efficiency
from ponder.analysis.overthinking import NOT_CHAINS, RunOverthinking, overthinking
from ponder.analysis.paired import Paired, paired
from ponder.analysis.passk import PASS_AT_K_STRATEGIES, PassAtK, pass_at_k_table
from ponder.core.errors import ConfigError
from ponder.grading.answers import extract_answer
from ponder.runs.store import Record, RunStore
from ponder.strategies.optimal.signals import DEFAULT_BINS, Bins
from ponder.strategies.voting import SAMPLING_RULES, Method

__all__ = [
    "MATH_TASKS",
    "DifficultyBins",
    "Execution",
    "ReportData",
    "RunReport",
    "common_problems",
    "execution_stats",
    "isolation_counts",
    "isolation_text",
    "oracle_bins",
    "pick_reference",
    "run_label",
    "summarize_run",
    "summarize_runs",
    "task_rows",
    "unique_labels",
]

MATH_TASKS = frozenset({"gsm8k", "math500", "aime24", "jsonl", "demo"})
"""Tasks whose answers ``extract_answer`` reads, so their chains can be parsed for
overthinking."""


@dataclass(frozen=True)
class RunReport:
    """The numbers of one run: ``point`` is None when it has no finished record;
    ``curve`` is None for strategies without one (``note`` says why when it failed).
    ``grading_errors``: finished records whose final answer's grader failed or timed
    out; ``accuracy_errors_as_wrong``: correct over finished plus error records (None
    when there are neither)."""

    path: Path
    label: str
    config: dict[str, Any]
    finished: int
    errors: int
    point: CurvePoint | None
    curve: list[CurvePoint] | None = None
    curve_method: Method | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    bins: tuple[BinStats, ...] = ()
    unbinned: int = 0
    efficiency: Efficiency | None = None
    tasks: tuple[dict[str, Any], ...] = ()  # per task of a test-time training run
    overthinking: RunOverthinking | None = None
    paired: Paired | None = None
    pass_at_k: tuple[PassAtK, ...] = ()
    execution: Execution | None = None
    isolation: dict[str, dict[str, int]] = field(default_factory=dict)
    grading_errors: int = 0
    accuracy_errors_as_wrong: float | None = None

    def failures_text(self) -> str:
        """Failed problems and grading failures in words, with the accuracy that counts
        the failed problems as wrong when there are some."""
        g = self.grading_errors
        text = (
            f"{self.finished} finished, {self.errors} error{'s' if self.errors != 1 else ''}, "
            f"{g} grading error{'s' if g != 1 else ''}/timeout{'s' if g != 1 else ''}"
        )
        if self.errors and self.accuracy_errors_as_wrong is not None:
            acc = "–" if self.point is None else f"{self.point.accuracy:.3f}"
            text += (
                f"; accuracy {acc} over the finished problems, "
                f"{self.accuracy_errors_as_wrong:.3f} with the {self.errors} failed "
                f"problem{'s' if self.errors != 1 else ''} counted wrong"
            )
        return text

    @property
    def points(self) -> list[CurvePoint]:
        """The curve when there is one, else the run's own point (or nothing)."""
        if self.curve:
            return list(self.curve)
        return [self.point] if self.point is not None else []

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "label": self.label,
            "config": self.config,
            "finished": self.finished,
            "errors": self.errors,
            "point": None if self.point is None else self.point.to_dict(),
            "curve_method": self.curve_method,
            "curve": None if self.curve is None else [p.to_dict() for p in self.curve],
            "notes": list(self.notes),
            "bins": [b.to_dict() for b in self.bins],
            "unbinned": self.unbinned,
            "efficiency": None if self.efficiency is None else self.efficiency.to_dict(),
            "tasks": list(self.tasks),
            "overthinking": None if self.overthinking is None else self.overthinking.to_dict(),
            "paired": None if self.paired is None else self.paired.to_dict(),
            "pass_at_k": [p.to_dict() for p in self.pass_at_k],
            "execution": None if self.execution is None else self.execution.to_dict(),
            "grading_errors": self.grading_errors,
            "accuracy_errors_as_wrong": self.accuracy_errors_as_wrong,
            "isolation": self.isolation,
        }


@dataclass(frozen=True)
class Execution:
    """Sandboxed executions per finished problem (mean) and their seconds (mean, and
    per execution), from each record's ``meta["execution"]``."""

    executions: float
    seconds: float

    @property
    def seconds_each(self) -> float:
        return self.seconds / self.executions if self.executions else math.nan

    def to_dict(self) -> dict[str, Any]:
        each = self.seconds_each
        return {
            "executions_per_problem": self.executions,
            "seconds_per_problem": self.seconds,
            "seconds_per_execution": None if math.isnan(each) else each,
        }


def execution_stats(records: Sequence[Record]) -> Execution | None:
    """Mean executions and execution seconds per finished record; None when no record
    ran a program."""
    ok = [r for r in records if r.ok]
    runs = [r.meta.get("execution") for r in ok]
    if not ok or not any(isinstance(x, dict) for x in runs):
        return None
    counts = [float(x.get("executions", 0)) if isinstance(x, dict) else 0.0 for x in runs]
    seconds = [float(x.get("seconds", 0.0)) if isinstance(x, dict) else 0.0 for x in runs]
    return Execution(sum(counts) / len(ok), sum(seconds) / len(ok))


def isolation_counts(records: Sequence[Record]) -> dict[str, dict[str, int]]:
    """How the finished records ran code, per sandbox isolation mode: ``executions`` by
    the strategy (``meta["execution"]["isolation"]``) and problems ``graded`` by running
    their answers (``meta["grading_isolation"]``); a part with none is left out."""
    executions: dict[str, int] = {}
    graded: dict[str, int] = {}
    for r in records:
        if not r.ok:
            continue
        run = r.meta.get("execution")
        modes = run.get("isolation") if isinstance(run, dict) else None
        if isinstance(modes, dict):
            for mode, n in modes.items():
                executions[str(mode)] = executions.get(str(mode), 0) + int(n)
        graded_in = r.meta.get("grading_isolation")
        if isinstance(graded_in, str):
            graded[graded_in] = graded.get(graded_in, 0) + 1
    parts = {"executions": dict(sorted(executions.items())), "graded": dict(sorted(graded.items()))}
    return {k: v for k, v in parts.items() if v}


def isolation_text(counts: dict[str, dict[str, int]]) -> str:
    """``isolation_counts`` in words, e.g. ``24 executions under bwrap; 20 problems
    graded under bwrap``."""
    said = [f"{n} executions under {mode}" for mode, n in counts.get("executions", {}).items()]
    said += [f"{n} problems graded under {mode}" for mode, n in counts.get("graded", {}).items()]
    return "; ".join(said)


def run_label(config: dict[str, Any]) -> str:
    """``strategy n=N [scorer] · model`` from a stored configuration; a replayed run
    says so."""
    strategy = config.get("strategy") or {}
    name = str(strategy.get("name", "?")) if isinstance(strategy, dict) else "?"
    options = strategy.get("options") if isinstance(strategy, dict) else None
    options = options if isinstance(options, dict) else {}
    head = name if options.get("n") is None else f"{name} n={options['n']}"
    if name == "probe_exit":
        head += f" k={options.get('chunk')} m={options.get('agree')}"
    budget = options.get("budget")
    if name == "optimal" and isinstance(budget, int | float):
        head += f" budget={budget:g}"
    judge = options.get("verifier") or options.get("scorer")
    if judge and (name != "revise" or options.get("select") == "verifier"):
        kind, _, arg = str(judge).partition(":")
        # a probe's path is long; its file name tells runs apart
        head += f" {kind}:{Path(arg).name}" if kind == "probe" else f" {judge}"
    extra = config.get("extra")
    replay = extra.get("replay") if isinstance(extra, dict) else None
    if isinstance(replay, dict):
        # an extended bank's run drew its missing samples live
        head += " (replay, extended)" if replay.get("extend") else " (replay)"
    return " · ".join([head, str(config.get("model", "?"))])


def summarize_run(
    path: str | Path,
    *,
    bootstrap: int = 1000,
    seed: int = 0,
    count_tokens: Callable[[str], int] | None = None,
    only: Collection[str] | None = None,
) -> RunReport:
    """Read one store and compute its point and, where it applies, its scaling curve and
    its overthinking (tokens after an answer counted by ``count_tokens`` when given,
    else apportioned by characters). ``only`` (problem ids) keeps just those problems'
    records."""
    with RunStore(path, create=False) as store:
        config = store.config() or {}
        records = store.records()
    if only is not None:
        records = [r for r in records if r.problem_id in only]
    finished = [r for r in records if r.ok]
    errors = len(records) - len(finished)
    correct = sum(r.correct for r in finished)
    notes: list[str] = []
    own = point(finished) if finished else None
    if own is None:
        notes.append("no finished records")
    strategy = config.get("strategy")
    name = strategy.get("name") if isinstance(strategy, dict) else None
    curve, method = _curve(finished, name, bootstrap, seed, notes)
    over = None
    if finished and _parses_as_math(config) and name not in NOT_CHAINS:
        over = overthinking(finished, extract_answer, count_tokens=count_tokens)
    passes = _pass_at_k(finished, name, notes)
    return RunReport(
        overthinking=over,
        pass_at_k=passes,
        execution=execution_stats(finished),
        isolation=isolation_counts(finished),
        tasks=task_rows(finished) if name in ("ttt", "augmented_vote") else (),
        path=Path(path),
        label=run_label(config),
        config=config,
        finished=len(finished),
        errors=errors,
        grading_errors=sum(r.grade.failed for r in finished),
        accuracy_errors_as_wrong=correct / len(records) if records else None,
        point=own,
        curve=curve,
        curve_method=method,
        notes=tuple(notes),
    )


def _curve(
    finished: Sequence[Record], name: Any, bootstrap: int, seed: int, notes: list[str]
) -> tuple[list[CurvePoint] | None, Method | None]:
    """The scaling curve of a run of independent samples and the rule it votes by;
    (None, None) for other strategies, or when it fails (said in ``notes``)."""
    method = SAMPLING_RULES.get(str(name))
    if method is None or not finished:
        return None, None
    try:
        return scaling_curve(finished, method, bootstrap=bootstrap, seed=seed), method
    except ValueError as e:
        notes.append(f"no scaling curve: {e}")
        return None, None


def _pass_at_k(finished: Sequence[Record], name: Any, notes: list[str]) -> tuple[PassAtK, ...]:
    """pass@k of a run of a sampling strategy; none for others, or when it fails (said
    in ``notes``)."""
    if name not in PASS_AT_K_STRATEGIES or not finished:
        return ()
    try:
        return tuple(pass_at_k_table(finished))
    except ValueError as e:
        notes.append(f"no pass@k: {e}")
        return ()


def _parses_as_math(config: dict[str, Any]) -> bool:
    """Whether the run's answers are read by ``extract_answer``: a math task, and not a
    jsonl file of free-form answers."""
    extra = config.get("extra")
    answers = extra.get("answers") if isinstance(extra, dict) else None
    free = isinstance(answers, dict) and answers.get("type") == "free"
    return config.get("task") in MATH_TASKS and not free


def task_rows(records: Sequence[Record]) -> tuple[dict[str, Any], ...]:
    """One row per task of a test-time training run (``ponder ttt``): its size, test
    inputs solved, held-out loss before and after training, tokens trained, seconds
    per phase and peak memory, smallest task first."""
    rows: dict[str, dict[str, Any]] = {}
    for r in records:
        meta = r.meta
        task = str(meta.get("task", r.problem_id))
        train = meta.get("train") or {}
        phases = meta.get("phase_seconds") or {}
        row = rows.setdefault(
            task,
            {
                "task": task,
                "cells": meta.get("cells"),
                "tests": 0,
                "solved": 0,
                "loss_before": meta.get("loss_before"),
                "loss_after": meta.get("loss_after"),
                "steps": len(train.get("losses") or []),
                "trained_tokens": train.get("tokens", 0),
                "train_seconds": phases.get("train", 0.0),
                "predict_seconds": phases.get("predict", 0.0),
                "peak_memory_mb": meta.get("peak_memory_mb"),
            },
        )
        row["tests"] += 1
        row["solved"] += int(r.correct)
    return tuple(sorted(rows.values(), key=lambda row: (row["cells"] or 0, row["task"])))


def unique_labels(runs: list[RunReport]) -> list[RunReport]:
    """The runs, a label two runs share told apart by each store's file name."""
    seen: dict[str, int] = {}
    for r in runs:
        seen[r.label] = seen.get(r.label, 0) + 1
    out = []
    for r in runs:
        if seen[r.label] > 1:
            r = replace(r, label=f"{r.label} ({r.path.stem})")
        out.append(r)
    return out


@dataclass(frozen=True)
class DifficultyBins:
    """Oracle difficulty bins read from a store: ``bin_of`` maps its problems to bins."""

    source: Path
    bins: Bins
    bin_of: dict[str, int]

    @property
    def sizes(self) -> list[int]:
        counts = [0] * self.bins.count
        for b in self.bin_of.values():
            counts[b - 1] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {"source": str(self.source), **self.bins.to_dict(), "problems": self.sizes}


def oracle_bins(path: str | Path, count: int = DEFAULT_BINS) -> DifficultyBins:
    """Pass-rate quantile bins over every finished problem of the store at ``path``."""
    with RunStore(path, create=False) as store:
        records = store.records(include_errors=False)
    if not records:
        raise ConfigError(f"the bins store {path} has no finished records")
    rates = pass_rates(records)
    bins = Bins.fit(list(rates.values()), count)
    return DifficultyBins(Path(path), bins, {p: bins.assign(v) for p, v in rates.items()})


def pick_reference(runs: Sequence[RunReport], reference: RunReport | None) -> Reference | None:
    """The reference point: the given run's last curve point (or its own point), else
    the last point of the first majority curve; None when there is neither."""
    if reference is None:
        reference = next((r for r in runs if r.curve_method == "majority" and r.curve), None)
        if reference is None:
            return None
    pts = reference.points
    if not pts:
        raise ConfigError(f"the reference run {reference.path} has no finished records")
    last = pts[-1]
    return Reference(reference.label, last.accuracy, last.tokens, last.n)


def _with_bins(run: RunReport, bins: DifficultyBins) -> RunReport:
    with RunStore(run.path, create=False) as store:
        records = store.records(include_errors=False)
    rows, unbinned = stats_by_bin(records, bins.bin_of, bins.bins.count)
    return replace(run, bins=tuple(rows), unbinned=unbinned)


def _with_paired(
    run: RunReport, base_records: Sequence[Record], base_label: str, bootstrap: int, seed: int
) -> RunReport:
    with RunStore(run.path, create=False) as store:
        records = store.records(include_errors=False)
    comparison = paired(
        run.label, records, base_label, base_records, bootstrap=max(bootstrap, 1), seed=seed
    )
    return replace(run, paired=comparison)


def common_problems(db_paths: Sequence[str | Path]) -> frozenset[str]:
    """The ids of the problems every store finished (an error record does not count).
    Raises ``ConfigError`` when there is none."""
    shared: set[str] | None = None
    for path in db_paths:
        with RunStore(path, create=False) as store:
            done = {r.problem_id for r in store.records(include_errors=False)}
        shared = done if shared is None else shared & done
    if not shared:
        raise ConfigError(
            "--common: no problem is finished in every run: " + ", ".join(str(p) for p in db_paths)
        )
    return frozenset(shared)


@dataclass(frozen=True)
class ReportData:
    """The runs of a report, each with its comparisons filled in, and what they were
    compared with: the reference point of the efficiency table, the oracle difficulty
    bins, the baseline store (as given) and its label; ``notes`` say what the report
    left out or how it chose its problems."""

    runs: tuple[RunReport, ...]
    bootstrap: int
    seed: int
    reference: Reference | None = None
    difficulty: DifficultyBins | None = None
    baseline: str | Path | None = None
    baseline_label: str | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The numbers ``curve.json`` holds."""
        baseline = None
        if self.baseline is not None:
            baseline = {"path": str(self.baseline), "label": self.baseline_label}
        return {
            "ponder_version": __version__,
            "bootstrap": self.bootstrap,
            "seed": self.seed,
            "runs": [r.to_dict() for r in self.runs],
            "reference": None if self.reference is None else self.reference.to_dict(),
            "difficulty_bins": None if self.difficulty is None else self.difficulty.to_dict(),
            "baseline": baseline,
            "notes": list(self.notes),
        }


def summarize_runs(
    db_paths: Sequence[str | Path],
    *,
    bootstrap: int = 1000,
    seed: int = 0,
    bins_from: str | Path | None = None,
    bins: int = DEFAULT_BINS,
    reference: str | Path | None = None,
    baseline: str | Path | None = None,
    count_tokens: Callable[[str], int] | None = None,
    common: bool = False,
) -> ReportData:
    """Summarise every store and compare the runs, as ``write_report`` describes: the
    efficiency of each against the reference point, its accuracy per oracle difficulty
    bin (``bins_from``), and the paired comparison with ``baseline``; ``common`` keeps
    just the problems every store finished."""
    notes: list[str] = []
    only = None
    if common:
        only = common_problems(db_paths)
        notes.append(f"every run on the {len(only)} problems all of them finished (--common)")
    runs = unique_labels(
        [
            summarize_run(p, bootstrap=bootstrap, seed=seed, count_tokens=count_tokens, only=only)
            for p in db_paths
        ]
    )
    ref_run = None
    if reference is not None:
        ref_run = summarize_run(reference, bootstrap=bootstrap, seed=seed, only=only)
    ref = pick_reference(runs, ref_run)
    if ref is None:
        notes.append(
            "no efficiency table: no majority run with a curve to take the reference "
            "accuracy from (pass --reference STORE.db)"
        )
    else:
        runs = [replace(r, efficiency=efficiency(r.label, r.points, ref)) for r in runs]
    difficulty = None if bins_from is None else oracle_bins(bins_from, bins)
    if difficulty is not None:
        runs = [_with_bins(r, difficulty) for r in runs]
    baseline_label = None
    if baseline is not None:
        runs, baseline_label = _against_baseline(runs, baseline, bootstrap, seed)
    return ReportData(
        tuple(runs), bootstrap, seed, ref, difficulty, baseline, baseline_label, tuple(notes)
    )


def _against_baseline(
    runs: list[RunReport], baseline: str | Path, bootstrap: int, seed: int
) -> tuple[list[RunReport], str]:
    """Every run but the baseline paired with the baseline store; the baseline's label
    (as the report shows it when it is one of the runs)."""
    with RunStore(baseline, create=False) as store:
        base_records = store.records(include_errors=False)
        baseline_label = run_label(store.config() or {})
    base_path = Path(baseline).resolve()
    for r in runs:
        if Path(r.path).resolve() == base_path:
            baseline_label = r.label
    runs = [
        r
        if Path(r.path).resolve() == base_path
        else _with_paired(r, base_records, baseline_label, bootstrap, seed)
        for r in runs
    ]
    return runs, baseline_label
