"""The HTML page of a report: one self-contained file with the figure inlined, the
comparison tables (efficiency, baseline, overthinking, difficulty bins) and a section
per run. Every table goes through ``html_table``; the numbers come from
``ponder.analysis.summary``.
"""

from __future__ import annotations

import base64
import datetime
import html
import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

from ponder._version import __version__
from ponder.analysis.curves import CurvePoint
from ponder.analysis.efficiency import Reference
from ponder.analysis.overthinking import RunOverthinking
from ponder.analysis.paired import Paired
from ponder.analysis.passk import PassAtK
from ponder.analysis.summary import DifficultyBins, RunReport, isolation_text

__all__ = ["html_table", "report_page"]

_CSS = """
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0 1rem}
td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:right}
th{background:#f3f3f3}
pre{background:#f7f7f7;padding:.6rem;overflow-x:auto;font-size:.85rem}
img{max-width:100%}
.note{color:#a40}
"""

_e = html.escape


def html_table(head: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A table with one header row: ``head`` the header cells, each of ``rows`` a body
    row. Cells are HTML as given, so text in them must be escaped by the caller."""
    ths = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{ths}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(x: float, digits: int = 3) -> str:
    return "–" if math.isnan(x) else f"{x:.{digits}f}"


def _share(x: float) -> str:
    return "–" if math.isnan(x) else f"{100 * x:.1f}%"


def _num(x: Any, digits: int = 3) -> str:
    return "" if x is None else f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def _tasks_table(rows: Sequence[dict[str, Any]]) -> str:
    head = (
        "task",
        "cells",
        "solved",
        "held-out loss before",
        "after",
        "steps",
        "tokens trained",
        "train s",
        "predict s",
        "peak MB",
    )
    return html_table(
        head,
        (
            (
                _e(str(r["task"])),
                _num(r["cells"]),
                f"{r['solved']}/{r['tests']}",
                _num(r["loss_before"]),
                _num(r["loss_after"]),
                str(r["steps"]),
                str(r["trained_tokens"]),
                _num(r["train_seconds"], 1),
                _num(r["predict_seconds"], 1),
                _num(r["peak_memory_mb"], 0),
            )
            for r in rows
        ),
    )


def _points_table(points: Sequence[CurvePoint]) -> str:
    head = ("n", "accuracy", "95% CI", "tokens/problem", "generated tokens/problem", "problems")
    return html_table(
        head,
        (
            (
                str(p.n),
                _fmt(p.accuracy),
                f"{_fmt(p.ci_low)} – {_fmt(p.ci_high)}",
                _fmt(p.tokens, 1),
                _fmt(p.completion_tokens, 1),
                str(p.problems),
            )
            for p in points
        ),
    )


def _pass_table(rows: Sequence[PassAtK]) -> str:
    head = [f"pass@{p.k}" for p in rows] + ["problems"]
    return html_table(head, [[_fmt(p.value) for p in rows] + [str(rows[0].problems)]])


def _bins_table(runs: Sequence[RunReport], bins: DifficultyBins) -> str:
    head = ["run"]
    for i in range(1, bins.bins.count + 1):
        head += [f"bin {i} acc.", f"bin {i} tokens"]
    rows = []
    for run in runs:
        cells = [_e(run.label)]
        for b in run.bins:
            cells += [f"{_fmt(b.accuracy)} ({b.problems})", _fmt(b.tokens, 1)]
        rows.append([*cells, str(run.unbinned)])
    sizes = ", ".join(f"bin {b}: {n}" for b, n in enumerate(bins.sizes, start=1))
    thresholds = ", ".join(f"{t:.3f}" for t in bins.bins.thresholds) or "none"
    return (
        "<h2>Accuracy by difficulty bin</h2>"
        f"<p>Oracle bins from <code>{_e(str(bins.source))}</code>: a problem's pass rate is "
        "the share of its samples graded correct there; bins are pass-rate quantiles over "
        f"its {sum(bins.sizes)} problems, bin 1 the easiest (pass-rate thresholds "
        f"{thresholds}; problems {sizes}), after Snell et al. 2024. Each cell is the "
        "run's own accuracy (problems) and mean tokens on the bin's problems.</p>"
        + html_table([*head, "unbinned"], rows)
    )


def _efficiency_table(runs: Sequence[RunReport], reference: Reference) -> str:
    rows = []
    for run in runs:
        eff = run.efficiency
        if eff is None:
            continue
        tokens = "not reached" if eff.tokens is None else f"{eff.tokens:.1f}"
        ratio = "not reached" if eff.ratio is None else f"{eff.ratio:.3f}"
        rows.append((_e(run.label), tokens, ratio))
    return (
        "<h2>Tokens to reach the reference accuracy</h2>"
        f"<p>Reference: {_e(reference.label)} at n={reference.n}, accuracy "
        f"{_fmt(reference.accuracy)} for {_fmt(reference.tokens, 1)} tokens per problem. "
        "Tokens are interpolated linearly along each curve between the last point below "
        "the reference accuracy and the first at or above it; the ratio divides them by "
        "the reference's tokens (below 1 is cheaper).</p>"
        + html_table(("run", "tokens/problem", "ratio"), rows)
    )


_OVERTHINKING_TEXT = (
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
)


def _overthinking_table(runs: Sequence[RunReport]) -> str:
    rows = []
    for run in runs:
        o = run.overthinking
        if o is None:
            continue
        problems = len(o.problems)
        per = o.after_settled / problems if problems else math.nan
        methods = ", ".join(f"{k} {v}" for k, v in o.by_method.items())
        rows.append(
            (
                _e(run.label),
                str(o.candidates),
                str(o.found),
                str(o.tokens),
                f"{o.after_settled} ({_share(o.share(o.after_settled))})",
                f"{o.after_first} ({_share(o.share(o.after_first))})",
                _fmt(per, 1),
                f"{_e(methods)}; {_e(o.token_count)}",
            )
        )
    head = (
        "run",
        "candidates",
        "answer found",
        "generated tokens",
        "after settled",
        "after first",
        "after settled / problem",
        "method; tokens after counted by",
    )
    return _OVERTHINKING_TEXT + html_table(head, rows)


def _overthinking_problems(o: RunOverthinking) -> str:
    head = (
        "problem",
        "correct",
        "candidates",
        "answer found",
        "generated tokens",
        "after settled",
        "after first",
    )
    rows = (
        (
            _e(p.problem_id),
            "yes" if p.correct else "no",
            str(p.candidates),
            str(p.found),
            str(p.tokens),
            str(p.after_settled),
            str(p.after_first),
        )
        for p in o.problems
    )
    return (
        "<details><summary>overthinking per problem</summary>"
        + html_table(head, rows)
        + "</details>"
    )


def _paired_row(label: str, p: Paired) -> tuple[str, ...]:
    lo, hi = p.accuracy_diff_ci
    slo, shi = p.tokens_saved_ci
    rlo, rhi = p.saved_share_ci
    glo, ghi = p.generated_saved_ci
    return (
        _e(label),
        str(p.problems),
        _fmt(p.accuracy),
        _fmt(p.baseline_accuracy),
        f"{p.accuracy_diff:+.3f} ({_fmt(lo)} – {_fmt(hi)})",
        f"{p.wins} / {p.losses}",
        _fmt(p.tokens, 1),
        _fmt(p.baseline_tokens, 1),
        f"{_fmt(p.tokens_saved, 1)} ({_fmt(slo, 1)} – {_fmt(shi, 1)})",
        f"{_share(p.saved_share)} ({_share(rlo)} – {_share(rhi)})",
        f"{_fmt(p.generated_saved, 1)} ({_fmt(glo, 1)} – {_fmt(ghi, 1)})",
    )


def _paired_table(runs: Sequence[RunReport], baseline: str) -> str:
    rows = [_paired_row(run.label, run.paired) for run in runs if run.paired is not None]
    head = (
        "run",
        "problems",
        "accuracy",
        "baseline",
        "difference (95% CI)",
        "only run / only baseline",
        "tokens/problem",
        "baseline",
        "saved (95% CI)",
        "saved share (95% CI)",
        "generated saved (95% CI)",
    )
    return (
        f"<h2>Against the baseline: {_e(baseline)}</h2>"
        "<p>On the problems both runs finished, paired by problem: the accuracy "
        "difference (run minus baseline), the problems only the run got right / only the "
        "baseline got right, and the tokens per problem (prefilled plus generated) the run "
        "saved against the baseline, and the generated tokens saved (what decoding time "
        "follows), with 95% intervals from a paired bootstrap over problems.</p>"
        + html_table(head, rows)
    )


def _run_section(run: RunReport) -> str:
    """One run's section: its store and failures, notes, own point, executions,
    pass@k, scaling curve, per-task rows, overthinking per problem, configuration."""
    parts = [f"<h2>{_e(run.label)}</h2>"]
    parts.append(f"<p>store <code>{_e(str(run.path))}</code>: {_e(run.failures_text())}</p>")
    parts.extend(f'<p class="note">{_e(n)}</p>' for n in run.notes)
    if run.point is not None:
        parts.append("<h3>The strategy's own answers</h3>")
        parts.append(_points_table([run.point]))
    if run.execution is not None:
        ex = run.execution
        parts.append(
            f"<p>sandboxed executions per problem: {_fmt(ex.executions, 2)}, "
            f"{_fmt(ex.seconds, 3)} s per problem ({_fmt(ex.seconds_each, 3)} s each)</p>"
        )
    if run.isolation:
        parts.append(f"<p>code isolation: {_e(isolation_text(run.isolation))}</p>")
    if run.pass_at_k:
        parts.append(
            "<h3>pass@k (unbiased estimator, Chen et al. 2021, over each problem's samples)</h3>"
        )
        parts.append(_pass_table(run.pass_at_k))
    if run.curve:
        parts.append(
            f"<h3>Scaling curve ({_e(str(run.curve_method))} over the first n samples)</h3>"
        )
        parts.append(_points_table(run.curve))
    if run.tasks:
        parts.append("<h3>Per task (test-time training)</h3>")
        parts.append(_tasks_table(run.tasks))
    if run.overthinking is not None and run.overthinking.problems:
        parts.append(_overthinking_problems(run.overthinking))
    config = json.dumps(run.config, indent=2, sort_keys=True)
    parts.append(f"<details><summary>run configuration</summary><pre>{_e(config)}</pre>")
    parts.append("</details>")
    return "\n".join(parts)


def _comparisons(
    runs: Sequence[RunReport],
    bins: DifficultyBins | None,
    reference: Reference | None,
    notes: Sequence[str],
    baseline: str | None,
) -> str:
    """The report's notes and the tables that set the runs side by side."""
    extra = "".join(f'<p class="note">{_e(n)}</p>' for n in notes)
    if reference is not None:
        extra += f"<section>{_efficiency_table(runs, reference)}</section>"
    if baseline is not None:
        extra += f"<section>{_paired_table(runs, baseline)}</section>"
    if any(r.overthinking is not None for r in runs):
        extra += f"<section>{_overthinking_table(runs)}</section>"
    if bins is not None:
        extra += f"<section>{_bins_table(runs, bins)}</section>"
    return extra


def report_page(
    runs: Sequence[RunReport],
    png: bytes,
    bins: DifficultyBins | None = None,
    reference: Reference | None = None,
    notes: Sequence[str] = (),
    baseline: str | None = None,
) -> str:
    """The whole page: ``png`` inlined, the comparisons (``reference`` for efficiency,
    ``baseline`` the label of the paired baseline, oracle ``bins``), then every run."""
    generated = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    extra = _comparisons(runs, bins, reference, notes, baseline)
    sections = [_run_section(run) for run in runs]
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
<p>Generated {_e(generated)} by ponder {_e(__version__)}.
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
