"""``ponder report``: accuracy against tokens, and the tables beside it, for eval runs."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ponder.analysis.report import RunReport

__all__ = ["COMMANDS", "add_parser", "cmd_report"]


def add_parser(subparsers: Any) -> None:
    rep = subparsers.add_parser("report", help="plot accuracy versus tokens for eval runs")
    rep.add_argument("runs", nargs="+", help="one or more RUN.db files")
    rep.add_argument("--out", required=True, help="output folder")
    rep.add_argument("--bootstrap", type=int, default=1000, help="bootstrap replicates")
    rep.add_argument(
        "--bins-from",
        metavar="STORE.db",
        help="add accuracy and tokens per difficulty bin, with oracle bins (pass-rate "
        "quantiles) from this store of many samples per problem",
    )
    rep.add_argument(
        "--bins", type=int, default=5, help="difficulty bins for --bins-from (default 5)"
    )
    rep.add_argument(
        "--reference",
        metavar="STORE.db",
        help="the run whose accuracy the efficiency table asks every run to reach "
        "(default: the first majority run at its largest n)",
    )
    rep.add_argument(
        "--common",
        action="store_true",
        help="report every run on just the problems all of them finished (runs stopped "
        "at different points then compare on the same problems)",
    )
    rep.add_argument(
        "--tokenizer",
        metavar="MODEL",
        help="overthinking: count the tokens after an answer with this model's tokenizer "
        "(a bundled name or a .gguf file; loads it) instead of apportioning each "
        "candidate's generated tokens by characters",
    )
    rep.add_argument(
        "--baseline",
        metavar="STORE.db",
        help="compare every run with this one on the problems both finished: accuracy "
        "difference and tokens saved, with paired bootstrap intervals",
    )


def cmd_report(args: argparse.Namespace) -> int:
    from ponder.analysis.report import write_report

    tokenizer = None
    if args.tokenizer is not None:
        from ponder.engines.registry import tokenizer_engine

        tokenizer = tokenizer_engine(args.tokenizer)
    try:
        paths = write_report(
            [Path(r) for r in args.runs],
            Path(args.out),
            bootstrap=args.bootstrap,
            bins_from=args.bins_from,
            bins=args.bins,
            reference=args.reference,
            baseline=args.baseline,
            count_tokens=None if tokenizer is None else tokenizer.count_tokens,
            common=args.common,
        )
    finally:
        if tokenizer is not None:
            asyncio.run(tokenizer.aclose())
    for run in paths.runs:
        _print_run_notes(run)
    print(f"wrote {paths.html}\nwrote {paths.png}")
    return 0


def _print_run_notes(run: RunReport) -> None:
    """A run's failures, code isolation, overthinking and comparison with the baseline."""
    from ponder.analysis.report import isolation_text

    if run.errors or run.grading_errors:
        print(f"{run.label}: {run.failures_text()}")
    o, p = run.overthinking, run.paired
    if run.isolation:
        print(f"code isolation: {run.label}: {isolation_text(run.isolation)}")
    if o is not None and o.tokens:
        print(
            f"overthinking: {run.label}: {o.after_settled} of {o.tokens} generated tokens "
            f"({100 * o.share(o.after_settled):.1f}%) after the answer settled, "
            f"{o.after_first} ({100 * o.share(o.after_first):.1f}%) after it first "
            f"appeared; answer found in {o.found} of {o.candidates} candidates "
            f"(tokens after counted by {o.token_count})"
        )
    if p is not None and p.problems:
        lo, hi = p.accuracy_diff_ci
        slo, shi = p.tokens_saved_ci
        print(
            f"against {p.baseline}: {run.label}: accuracy {p.accuracy_diff:+.3f} "
            f"(95% CI {lo:+.3f} to {hi:+.3f}) on {p.problems} problems; "
            f"{p.tokens:.1f} tokens/problem against {p.baseline_tokens:.1f}, saved "
            f"{p.tokens_saved:.1f} (95% CI {slo:.1f} to {shi:.1f}, "
            f"{100 * p.saved_share:.1f}%); generated tokens saved {p.generated_saved:.1f}"
        )


COMMANDS = {"report": cmd_report}
