"""Turn run stores into a figure, a self-contained HTML page and a JSON file of numbers.

For every run: its own accuracy (``curves.point``), and for runs of independent-sampling
strategies the whole scaling curve over n (``curves.scaling_curve``), plotted as accuracy
against mean tokens per problem.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import ponder
from ponder.eval.curves import CurvePoint, Method, point, scaling_curve
from ponder.eval.store import RunStore

# config strategy name -> the curve that replays it from its samples
CURVE_METHODS: dict[str, Method] = {
    "majority": "majority",
    "best_of_n": "best_of_n",
    "weighted_majority": "weighted",
}


@dataclass(frozen=True)
class ReportPaths:
    png: Path
    html: Path
    json: Path


@dataclass(frozen=True)
class RunReport:
    """The numbers of one run: ``point`` is None when it has no finished record;
    ``curve`` is None for strategies without one (``note`` says why when it failed)."""

    path: Path
    label: str
    config: dict[str, Any]
    finished: int
    errors: int
    point: CurvePoint | None
    curve: list[CurvePoint] | None = None
    curve_method: Method | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

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
        }


def run_label(config: dict[str, Any]) -> str:
    """``strategy n=N [scorer] · model`` from a stored configuration; a replayed run
    says so."""
    strategy = config.get("strategy") or {}
    name = str(strategy.get("name", "?")) if isinstance(strategy, dict) else "?"
    options = strategy.get("options") if isinstance(strategy, dict) else None
    options = options if isinstance(options, dict) else {}
    head = name if options.get("n") is None else f"{name} n={options['n']}"
    judge = options.get("verifier") or options.get("scorer")
    if judge and (name != "revise" or options.get("select") == "verifier"):
        kind, _, arg = str(judge).partition(":")
        # a probe's path is long; its file name tells runs apart
        head += f" {kind}:{Path(arg).name}" if kind == "probe" else f" {judge}"
    extra = config.get("extra")
    if isinstance(extra, dict) and "replay" in extra:
        head += " (replay)"
    return " · ".join([head, str(config.get("model", "?"))])


def summarize_run(path: str | Path, *, bootstrap: int = 1000, seed: int = 0) -> RunReport:
    """Read one store and compute its point and, where it applies, its scaling curve."""
    with RunStore(path, create=False) as store:
        config = store.config() or {}
        records = store.records()
    finished = [r for r in records if r.ok]
    errors = len(records) - len(finished)
    notes: list[str] = []
    own = point(finished) if finished else None
    if own is None:
        notes.append("no finished records")
    strategy = config.get("strategy")
    name = strategy.get("name") if isinstance(strategy, dict) else None
    method = CURVE_METHODS.get(str(name))
    curve = None
    if method is not None and finished:
        try:
            curve = scaling_curve(finished, method, bootstrap=bootstrap, seed=seed)
        except ValueError as e:
            notes.append(f"no scaling curve: {e}")
            method = None
    else:
        method = None
    return RunReport(
        path=Path(path),
        label=run_label(config),
        config=config,
        finished=len(finished),
        errors=errors,
        point=own,
        curve=curve,
        curve_method=method,
        notes=tuple(notes),
    )


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


def _plot(runs: Sequence[RunReport], log_x: bool) -> bytes:
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


_CSS = """
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0 1rem}
td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:right}
th{background:#f3f3f3}
pre{background:#f7f7f7;padding:.6rem;overflow-x:auto;font-size:.85rem}
img{max-width:100%}
.note{color:#a40}
"""


def _html(runs: Sequence[RunReport], png: bytes) -> str:
    e = html.escape
    generated = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    sections = []
    for run in runs:
        parts = [f"<h2>{e(run.label)}</h2>"]
        parts.append(
            f"<p>store <code>{e(str(run.path))}</code>: {run.finished} finished, "
            f"{run.errors} error{'s' if run.errors != 1 else ''}</p>"
        )
        parts.extend(f'<p class="note">{e(n)}</p>' for n in run.notes)
        if run.point is not None:
            parts.append("<h3>The strategy's own answers</h3>")
            parts.append(_table([run.point]))
        if run.curve:
            parts.append(
                f"<h3>Scaling curve ({e(str(run.curve_method))} over the first n samples)</h3>"
            )
            parts.append(_table(run.curve))
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
<p>Generated {e(generated)} by ponder {e(ponder.__version__)}.
Tokens per problem count prefilled prompt tokens plus generated tokens; on a scaling
curve, the prompt prefill a run at n would have paid plus the generated tokens of its n
samples. Curve points average over orderings of each problem's samples; intervals are
95% bootstrap percentiles (problems resampled, samples reordered). A strategy's own
accuracy carries a 95% Wilson interval.</p>
<img alt="accuracy against mean tokens per problem" src="data:image/png;base64,{image}">
{"".join(f"<section>{s}</section>" for s in sections)}
</body>
</html>
"""


def write_report(
    db_paths: Sequence[str | Path],
    out_dir: str | Path,
    bootstrap: int = 1000,
    *,
    log_x: bool = True,
    seed: int = 0,
) -> ReportPaths:
    """Write ``accuracy_vs_tokens.png``, ``report.html`` and ``curve.json`` into ``out_dir``.

    ``log_x`` draws tokens on a log scale (ignored when some run has zero tokens).
    Raises ``ConfigError`` for a path that is not a run store.
    """
    if not db_paths:
        raise ValueError("write_report needs at least one run store")
    runs = _unique_labels([summarize_run(p, bootstrap=bootstrap, seed=seed) for p in db_paths])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = ReportPaths(
        png=out / "accuracy_vs_tokens.png",
        html=out / "report.html",
        json=out / "curve.json",
    )
    png = _plot(runs, log_x)
    paths.png.write_bytes(png)
    paths.html.write_text(_html(runs, png), encoding="utf-8")
    numbers = {
        "ponder_version": ponder.__version__,
        "bootstrap": bootstrap,
        "seed": seed,
        "runs": [r.to_dict() for r in runs],
    }
    paths.json.write_text(json.dumps(numbers, indent=2) + "\n", encoding="utf-8")
    return paths
