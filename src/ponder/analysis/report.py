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
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import json
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

MATH_TASKS = frozenset({"gsm8k", "math500", "aime24", "jsonl", "demo"})
"""Tasks whose answers ``extract_answer`` reads, so their chains can be parsed for
overthinking."""


@dataclass(frozen=True)
class ReportPaths:
    """What ``write_report`` wrote, and the runs' numbers it wrote them from."""

    png: Path
    html: Path
    json: Path
    runs: tuple[RunReport, ...] = ()


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
    method = SAMPLING_RULES.get(str(name))
    curve = None
    if method is not None and finished:
        try:
            curve = scaling_curve(finished, method, bootstrap=bootstrap, seed=seed)
        except ValueError as e:
            notes.append(f"no scaling curve: {e}")
            method = None
    else:
        method = None
    over = None
    if finished and _parses_as_math(config) and name not in NOT_CHAINS:
        over = overthinking(finished, extract_answer, count_tokens=count_tokens)
    passes: list[PassAtK] = []
    if name in PASS_AT_K_STRATEGIES and finished:
        try:
            passes = pass_at_k_table(finished)
        except ValueError as e:
            notes.append(f"no pass@k: {e}")
    return RunReport(
        overthinking=over,
        pass_at_k=tuple(passes),
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


def _tasks_table(rows: Sequence[dict[str, Any]]) -> str:
    def num(x: Any, digits: int = 3) -> str:
        return "" if x is None else f"{x:.{digits}f}" if isinstance(x, float) else str(x)

    head = (
        "<tr><th>task</th><th>cells</th><th>solved</th><th>held-out loss before</th>"
        "<th>after</th><th>steps</th><th>tokens trained</th><th>train s</th>"
        "<th>predict s</th><th>peak MB</th></tr>"
    )
    body = "".join(
        f"<tr><td>{html.escape(str(r['task']))}</td><td>{num(r['cells'])}</td>"
        f"<td>{r['solved']}/{r['tests']}</td><td>{num(r['loss_before'])}</td>"
        f"<td>{num(r['loss_after'])}</td><td>{r['steps']}</td><td>{r['trained_tokens']}</td>"
        f"<td>{num(r['train_seconds'], 1)}</td><td>{num(r['predict_seconds'], 1)}</td>"
        f"<td>{num(r['peak_memory_mb'], 0)}</td></tr>"
        for r in rows
    )
    return f"<table><thead>{head}</thead><tbody>{body}</tbody></table>"


def _unique_labels(runs: list[RunReport]) -> list[RunReport]:
    seen: dict[str, int] = {}
    for r in runs:
        seen[r.label] = seen.get(r.label, 0) + 1
    out = []
    for r in runs:
        if seen[r.label] > 1:
            r = replace(r, label=f"{r.label} ({r.path.stem})")
        out.append(r)
    return out


def _plot(runs: Sequence[RunReport], log_x: bool, reference: Reference | None = None) -> bytes:
    # the object API with an Agg canvas draws without touching pyplot's global backend
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    fig = Figure(figsize=(8.0, 5.0), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    xs: list[float] = []
    for i, run in enumerate(runs):
        color = f"C{i % 10}"
        pts = run.curve if run.curve else ([run.point] if run.point else [])
        if not pts:
            continue
        x = [p.tokens for p in pts]
        y = [p.accuracy for p in pts]
        lo = [p.accuracy - p.ci_low for p in pts]
        hi = [p.ci_high - p.accuracy for p in pts]
        xs.extend(x)
        if run.curve:
            ax.plot(x, y, marker="o", color=color, label=run.label)
            ax.fill_between(
                x, [p.ci_low for p in pts], [p.ci_high for p in pts], color=color, alpha=0.15
            )
        else:
            ax.errorbar(x, y, yerr=[lo, hi], fmt="s", color=color, capsize=4, label=run.label)
        for p in pts:
            ax.annotate(
                f"n={p.n}",
                (p.tokens, p.accuracy),
                textcoords="offset points",
                xytext=(4, 5),
                fontsize=7,
                color=color,
            )
    if reference is not None:
        ax.axhline(
            reference.accuracy,
            color="0.4",
            linestyle=":",
            linewidth=1,
            label=f"reference accuracy ({reference.label})",
        )
    if log_x and xs and min(xs) > 0:
        ax.set_xscale("log")
        # plain numbers, denser steps over narrow ranges, read better than 3x10^1
        decades = math.log10(max(xs) / min(xs))
        subs = (
            (1.0, 2.0, 3.0, 5.0, 7.0)
            if decades < 1.5
            else (1.0, 2.0, 5.0)
            if decades < 3
            else (1.0,)
        )
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=subs))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("mean tokens per problem (prefilled prompt + generated)")
    ax.set_ylabel("accuracy (95% CI)")
    ax.set_title("Accuracy against tokens")
    ax.grid(True, which="both", alpha=0.3)
    if any(r.point for r in runs):
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _fmt(x: float, digits: int = 3) -> str:
    return "–" if math.isnan(x) else f"{x:.{digits}f}"


def _table(points: Sequence[CurvePoint]) -> str:
    rows = "".join(
        "<tr>"
        f"<td>{p.n}</td><td>{_fmt(p.accuracy)}</td>"
        f"<td>{_fmt(p.ci_low)} – {_fmt(p.ci_high)}</td>"
        f"<td>{_fmt(p.tokens, 1)}</td><td>{_fmt(p.completion_tokens, 1)}</td>"
        f"<td>{p.problems}</td>"
        "</tr>"
        for p in points
    )
    return (
        "<table><thead><tr><th>n</th><th>accuracy</th><th>95% CI</th>"
        "<th>tokens/problem</th><th>generated tokens/problem</th><th>problems</th>"
        f"</tr></thead><tbody>{rows}</tbody></table>"
    )


def _pass_table(rows: Sequence[PassAtK]) -> str:
    head = "".join(f"<th>pass@{p.k}</th>" for p in rows)
    cells = "".join(f"<td>{_fmt(p.value)}</td>" for p in rows)
    return (
        f"<table><thead><tr>{head}<th>problems</th></tr></thead>"
        f"<tbody><tr>{cells}<td>{rows[0].problems}</td></tr></tbody></table>"
    )


_CSS = """
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0 1rem}
td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:right}
th{background:#f3f3f3}
pre{background:#f7f7f7;padding:.6rem;overflow-x:auto;font-size:.85rem}
img{max-width:100%}
.note{color:#a40}
"""


def _bins_table(runs: Sequence[RunReport], bins: DifficultyBins) -> str:
    e = html.escape
    head = "".join(
        f"<th>bin {b} acc.</th><th>bin {b} tokens</th>" for b in range(1, bins.bins.count + 1)
    )
    rows = []
    for run in runs:
        cells = "".join(
            f"<td>{_fmt(b.accuracy)} ({b.problems})</td><td>{_fmt(b.tokens, 1)}</td>"
            for b in run.bins
        )
        rows.append(f"<tr><td>{e(run.label)}</td>{cells}<td>{run.unbinned}</td></tr>")
    sizes = ", ".join(f"bin {b}: {n}" for b, n in enumerate(bins.sizes, start=1))
    thresholds = ", ".join(f"{t:.3f}" for t in bins.bins.thresholds) or "none"
    return (
        "<h2>Accuracy by difficulty bin</h2>"
        f"<p>Oracle bins from <code>{e(str(bins.source))}</code>: a problem's pass rate is "
        "the share of its samples graded correct there; bins are pass-rate quantiles over "
        f"its {sum(bins.sizes)} problems, bin 1 the easiest (pass-rate thresholds "
        f"{thresholds}; problems {sizes}), after Snell et al. 2024. Each cell is the "
        "run's own accuracy (problems) and mean tokens on the bin's problems.</p>"
        f"<table><thead><tr><th>run</th>{head}<th>unbinned</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _efficiency_table(runs: Sequence[RunReport], reference: Reference) -> str:
    e = html.escape
    rows = []
    for run in runs:
        eff = run.efficiency
        if eff is None:
            continue
        tokens = "not reached" if eff.tokens is None else f"{eff.tokens:.1f}"
        ratio = "not reached" if eff.ratio is None else f"{eff.ratio:.3f}"
        rows.append(f"<tr><td>{e(run.label)}</td><td>{tokens}</td><td>{ratio}</td></tr>")
    return (
        "<h2>Tokens to reach the reference accuracy</h2>"
        f"<p>Reference: {e(reference.label)} at n={reference.n}, accuracy "
        f"{_fmt(reference.accuracy)} for {_fmt(reference.tokens, 1)} tokens per problem. "
        "Tokens are interpolated linearly along each curve between the last point below "
        "the reference accuracy and the first at or above it; the ratio divides them by "
        "the reference's tokens (below 1 is cheaper).</p>"
        "<table><thead><tr><th>run</th><th>tokens/problem</th><th>ratio</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _share(x: float) -> str:
    return "–" if math.isnan(x) else f"{100 * x:.1f}%"


def _overthinking_table(runs: Sequence[RunReport]) -> str:
    e = html.escape
    rows = []
    for run in runs:
        o = run.overthinking
        if o is None:
            continue
        problems = len(o.problems)
        per = o.after_settled / problems if problems else math.nan
        rows.append(
            f"<tr><td>{e(run.label)}</td><td>{o.candidates}</td><td>{o.found}</td>"
            f"<td>{o.tokens}</td><td>{o.after_settled} ({_share(o.share(o.after_settled))})</td>"
            f"<td>{o.after_first} ({_share(o.share(o.after_first))})</td>"
            f"<td>{_fmt(per, 1)}</td>"
            f"<td>{e(', '.join(f'{k} {v}' for k, v in o.by_method.items()))}; "
            f"{e(o.token_count)}</td></tr>"
        )
    return (
        "<h2>Overthinking: tokens generated after the answer was there</h2>"
        "<p>For each candidate with an answer: the generated tokens after the point from "
        "which the answer read from the text so far stays the final answer "
        "(<em>settled</em>: overthinking for certain), and after the point where it "
        "first appears (<em>first</em>: an upper bound, which also counts checking that "
        "wandered and came back, or a number restated from the question). "
        "<em>parse</em>: the chain is cut after each line and sentence and the task's "
        "extractor reads every prefix; tokens after a cut are the candidate's recorded "
        "generated tokens apportioned by characters (<em>characters</em>, an "
        "approximation) or the text after the cut counted by a tokenizer "
        "(<em>tokenizer</em>, <code>ponder report --tokenizer MODEL</code>). "
        "<em>probe</em>: a "
        "<code>probe_exit</code> run's recorded probes, exact in tokens at probe "
        "resolution. A candidate whose prefixes never give its answer is not found and "
        "counts no tokens after. Program-aided runs (<code>pal</code>) are not chains and "
        "are left out.</p>"
        "<table><thead><tr><th>run</th><th>candidates</th><th>answer found</th>"
        "<th>generated tokens</th><th>after settled</th><th>after first</th>"
        "<th>after settled / problem</th><th>method; tokens after counted by</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _overthinking_problems(o: RunOverthinking) -> str:
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(p.problem_id)}</td><td>{'yes' if p.correct else 'no'}</td>"
        f"<td>{p.candidates}</td><td>{p.found}</td><td>{p.tokens}</td>"
        f"<td>{p.after_settled}</td><td>{p.after_first}</td></tr>"
        for p in o.problems
    )
    return (
        "<details><summary>overthinking per problem</summary>"
        "<table><thead><tr><th>problem</th><th>correct</th><th>candidates</th>"
        "<th>answer found</th><th>generated tokens</th><th>after settled</th>"
        "<th>after first</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></details>"
    )


def _paired_table(runs: Sequence[RunReport], baseline: str) -> str:
    e = html.escape
    rows = []
    for run in runs:
        p = run.paired
        if p is None:
            continue
        lo, hi = p.accuracy_diff_ci
        slo, shi = p.tokens_saved_ci
        rlo, rhi = p.saved_share_ci
        glo, ghi = p.generated_saved_ci
        rows.append(
            f"<tr><td>{e(run.label)}</td><td>{p.problems}</td><td>{_fmt(p.accuracy)}</td>"
            f"<td>{_fmt(p.baseline_accuracy)}</td>"
            f"<td>{p.accuracy_diff:+.3f} ({_fmt(lo)} – {_fmt(hi)})</td>"
            f"<td>{p.wins} / {p.losses}</td><td>{_fmt(p.tokens, 1)}</td>"
            f"<td>{_fmt(p.baseline_tokens, 1)}</td>"
            f"<td>{_fmt(p.tokens_saved, 1)} ({_fmt(slo, 1)} – {_fmt(shi, 1)})</td>"
            f"<td>{_share(p.saved_share)} ({_share(rlo)} – {_share(rhi)})</td>"
            f"<td>{_fmt(p.generated_saved, 1)} ({_fmt(glo, 1)} – {_fmt(ghi, 1)})</td></tr>"
        )
    return (
        f"<h2>Against the baseline: {e(baseline)}</h2>"
        "<p>On the problems both runs finished, paired by problem: the accuracy "
        "difference (run minus baseline), the problems only the run got right / only the "
        "baseline got right, and the tokens per problem (prefilled plus generated) the run "
        "saved against the baseline, and the generated tokens saved (what decoding time "
        "follows), with 95% intervals from a paired bootstrap over problems.</p>"
        "<table><thead><tr><th>run</th><th>problems</th><th>accuracy</th>"
        "<th>baseline</th><th>difference (95% CI)</th><th>only run / only baseline</th>"
        "<th>tokens/problem</th><th>baseline</th><th>saved (95% CI)</th>"
        "<th>saved share (95% CI)</th><th>generated saved (95% CI)</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _html(
    runs: Sequence[RunReport],
    png: bytes,
    bins: DifficultyBins | None = None,
    reference: Reference | None = None,
    notes: Sequence[str] = (),
    baseline: str | None = None,
) -> str:
    e = html.escape
    generated = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    extra = "".join(f'<p class="note">{e(n)}</p>' for n in notes)
    if reference is not None:
        extra += f"<section>{_efficiency_table(runs, reference)}</section>"
    if baseline is not None:
        extra += f"<section>{_paired_table(runs, baseline)}</section>"
    if any(r.overthinking is not None for r in runs):
        extra += f"<section>{_overthinking_table(runs)}</section>"
    if bins is not None:
        extra += f"<section>{_bins_table(runs, bins)}</section>"
    sections = []
    for run in runs:
        parts = [f"<h2>{e(run.label)}</h2>"]
        parts.append(f"<p>store <code>{e(str(run.path))}</code>: {e(run.failures_text())}</p>")
        parts.extend(f'<p class="note">{e(n)}</p>' for n in run.notes)
        if run.point is not None:
            parts.append("<h3>The strategy's own answers</h3>")
            parts.append(_table([run.point]))
        if run.execution is not None:
            ex = run.execution
            parts.append(
                f"<p>sandboxed executions per problem: {_fmt(ex.executions, 2)}, "
                f"{_fmt(ex.seconds, 3)} s per problem ({_fmt(ex.seconds_each, 3)} s each)</p>"
            )
        if run.isolation:
            parts.append(f"<p>code isolation: {e(isolation_text(run.isolation))}</p>")
        if run.pass_at_k:
            parts.append(
                "<h3>pass@k (unbiased estimator, Chen et al. 2021, over each problem's "
                "samples)</h3>"
            )
            parts.append(_pass_table(run.pass_at_k))
        if run.curve:
            parts.append(
                f"<h3>Scaling curve ({e(str(run.curve_method))} over the first n samples)</h3>"
            )
            parts.append(_table(run.curve))
        if run.tasks:
            parts.append("<h3>Per task (test-time training)</h3>")
            parts.append(_tasks_table(run.tasks))
        if run.overthinking is not None and run.overthinking.problems:
            parts.append(_overthinking_problems(run.overthinking))
        config = json.dumps(run.config, indent=2, sort_keys=True)
        parts.append(f"<details><summary>run configuration</summary><pre>{e(config)}</pre>")
        parts.append("</details>")
        sections.append("\n".join(parts))
    image = base64.b64encode(png).decode("ascii")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>ponder report</title>
<style>{_CSS}</style>
</head>
<body>
<h1>ponder report</h1>
<p>Generated {e(generated)} by ponder {e(__version__)}.
Tokens per problem count prefilled prompt tokens plus generated tokens; on a scaling
curve, the prompt prefill a run at n would have paid plus the generated tokens of its n
samples. Curve points average over orderings of each problem's samples; intervals are
95% bootstrap percentiles (problems resampled, samples reordered). A strategy's own
accuracy carries a 95% Wilson interval.</p>
<img alt="accuracy against mean tokens per problem" src="data:image/png;base64,{image}">
{extra}
{"".join(f"<section>{s}</section>" for s in sections)}
</body>
</html>
"""


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
    notes: list[str] = []
    only = None
    if common:
        only = common_problems(db_paths)
        notes.append(f"every run on the {len(only)} problems all of them finished (--common)")
    runs = _unique_labels(
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
        with RunStore(baseline, create=False) as store:
            base_records = store.records(include_errors=False)
            baseline_label = run_label(store.config() or {})
        base_path = Path(baseline).resolve()
        # the baseline's label as the report shows it, when it is one of the runs
        for r in runs:
            if Path(r.path).resolve() == base_path:
                baseline_label = r.label
        runs = [
            r
            if Path(r.path).resolve() == base_path
            else _with_paired(r, base_records, baseline_label, bootstrap, seed)
            for r in runs
        ]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = ReportPaths(
        png=out / "accuracy_vs_tokens.png",
        html=out / "report.html",
        json=out / "curve.json",
        runs=tuple(runs),
    )
    png = _plot(runs, log_x, ref)
    paths.png.write_bytes(png)
    page = _html(runs, png, difficulty, ref, notes, baseline_label)
    paths.html.write_text(page, encoding="utf-8")
    numbers = {
        "ponder_version": __version__,
        "bootstrap": bootstrap,
        "seed": seed,
        "runs": [r.to_dict() for r in runs],
        "reference": None if ref is None else ref.to_dict(),
        "difficulty_bins": None if difficulty is None else difficulty.to_dict(),
        "baseline": None if baseline is None else {"path": str(baseline), "label": baseline_label},
        "notes": notes,
    }
    paths.json.write_text(json.dumps(numbers, indent=2) + "\n", encoding="utf-8")
    return paths
