"""The report's figure: accuracy against mean tokens per problem, one curve (or point)
per run, drawn with matplotlib's object API into PNG bytes."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ponder.analysis.efficiency import Reference
from ponder.analysis.selection import Comparison
from ponder.analysis.summary import RunReport

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["plot_runs", "plot_selection"]


def plot_runs(runs: Sequence[RunReport], log_x: bool, reference: Reference | None = None) -> bytes:
    """The PNG of every run's points (its curve, else its own point with its interval),
    the ``reference`` accuracy as a dotted line, tokens on a log scale when ``log_x``
    and every token count is positive."""
    # the object API with an Agg canvas draws without touching pyplot's global backend
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, 5.0), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    xs: list[float] = []
    for i, run in enumerate(runs):
        xs.extend(_draw_run(ax, run, f"C{i % 10}"))
    if reference is not None:
        ax.axhline(
            reference.accuracy,
            color="0.4",
            linestyle=":",
            linewidth=1,
            label=f"reference accuracy ({reference.label})",
        )
    if log_x and xs and min(xs) > 0:
        _log_tokens(ax, xs)
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


def _draw_run(ax: Axes, run: RunReport, color: str) -> list[float]:
    """Draw one run's points on ``ax``: its curve with a shaded interval, else its own
    point with error bars; each labelled with its n. Its token counts."""
    pts = run.curve if run.curve else ([run.point] if run.point else [])
    if not pts:
        return []
    x = [p.tokens for p in pts]
    y = [p.accuracy for p in pts]
    lo = [p.accuracy - p.ci_low for p in pts]
    hi = [p.ci_high - p.accuracy for p in pts]
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
    return x


def _log_tokens(ax: Axes, xs: Sequence[float]) -> None:
    """Tokens on a log scale, ticked with plain numbers."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    # plain numbers, denser steps over narrow ranges, read better than 3x10^1
    decades = math.log10(max(xs) / min(xs))
    subs = (
        (1.0, 2.0, 3.0, 5.0, 7.0) if decades < 1.5 else (1.0, 2.0, 5.0) if decades < 3 else (1.0,)
    )
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=subs))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def plot_selection(curves: Mapping[str, Sequence[Comparison]], title: str) -> bytes:
    """The PNG of selection rules' accuracy against tokens, one curve per rule over n,
    each with its 95% bootstrap band (``ponder bank select --plot``)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, 5.0), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    xs: list[float] = []
    for i, (rule, rows) in enumerate(curves.items()):
        color = f"C{i % 10}"
        x = [c.tokens for c in rows]
        ax.plot(x, [c.accuracy for c in rows], marker="o", markersize=3, color=color, label=rule)
        ax.fill_between(
            x,
            [c.accuracy_ci[0] for c in rows],
            [c.accuracy_ci[1] for c in rows],
            color=color,
            alpha=0.12,
        )
        xs.extend(x)
    if xs and min(xs) > 0:
        _log_tokens(ax, xs)
    ax.set_xlabel("mean tokens per problem (prefilled prompt + generated), n = 1, 2, ...")
    ax.set_ylabel("accuracy (95% CI)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
