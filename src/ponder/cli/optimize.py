"""``ponder optimize``: fit a compute-optimal policy from calibration runs."""

from __future__ import annotations

import argparse
from typing import Any

from ponder.core.errors import ConfigError

__all__ = ["COMMANDS", "add_parser", "cmd_optimize"]


DESCRIPTION = (
    "Fit a compute-optimal policy from calibration runs on the same problems\n"
    "(Snell et al. 2024): per predicted difficulty bin and token budget, the\n"
    "configuration with the best accuracy that fits. Sampling runs (majority,\n"
    "best_of_n, weighted_majority) give every n up to theirs; other runs one\n"
    "configuration each; --stop-margins and --stop-shares add stopping rules\n"
    "(weighted_stop) replayed on the pilot run. The first --pilot samples of a\n"
    "sampling run predict the bin.\n"
    "Prints the policy against the best uniform configuration on held-out problems.\n"
    "Run it with: ponder eval --strategy optimal:POLICY.json --budget TOKENS."
)

EPILOG = """example:
  ponder eval --task gsm8k --data train.jsonl --limit 200 --strategy majority --n 16 \\
      --out runs/cal-maj16.db
  ponder eval --task gsm8k --data train.jsonl --limit 200 --strategy beam_search --n 4 \\
      --out runs/cal-beam4.db
  ponder optimize runs/cal-maj16.db runs/cal-beam4.db --out runs/policy.json \\
      --budgets 300,600,1200 --pilot 4
  ponder eval --task gsm8k --data test.jsonl --limit 100 \\
      --strategy optimal:runs/policy.json --budget 600 --out runs/optimal-600.db
"""


def add_parser(subparsers: Any) -> None:
    opt = subparsers.add_parser(
        "optimize",
        help="fit a compute-optimal policy (difficulty bin x budget -> configuration)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EPILOG,
    )
    opt.add_argument("stores", nargs="+", metavar="STORE.db", help="calibration eval stores")
    opt.add_argument("--out", required=True, metavar="POLICY.json", help="policy file to write")
    opt.add_argument(
        "--budgets",
        help="comma-separated mean tokens per problem (default: 6 log-spaced from the "
        "cheapest to the dearest configuration)",
    )
    opt.add_argument("--bins", type=int, default=5, help="difficulty bins (default 5)")
    opt.add_argument(
        "--pilot", type=int, default=4, help="pilot samples that predict the bin (default 4)"
    )
    opt.add_argument(
        "--signal",
        choices=["agreement", "score"],
        default="agreement",
        help="pilot signal: share of the modal answer, or mean scorer score (default agreement)",
    )
    opt.add_argument(
        "--pilot-from",
        metavar="STORE.db",
        help="sampling run whose first samples are the pilot (default: the first fitting)",
    )
    opt.add_argument(
        "--oracle",
        metavar="STORE.db",
        help="sampling run whose pass rates give the oracle bins (default: most samples)",
    )
    opt.add_argument(
        "--heldout",
        type=float,
        default=0.3,
        help="share of problems held out to evaluate the policy (default 0.3)",
    )
    opt.add_argument("--seed", type=int, default=0, help="seed of the held-out split")
    opt.add_argument(
        "--test",
        nargs="+",
        default=[],
        metavar="STORE.db",
        help="stores of the same configurations on other problems (a test split; the "
        "pilot's first): the policy is also measured on all of them, against the "
        "best uniform configuration on train and majority over the most samples",
    )
    opt.add_argument(
        "--allocate",
        choices=["bin", "mean"],
        default="bin",
        help="bin: every bin keeps its own mean tokens within the budget (the paper's); "
        "mean: the budget bounds the mean over all problems, so settled easy bins leave "
        "tokens to hard ones (default bin)",
    )
    _add_hybrid_args(opt)
    stop = opt.add_argument_group(
        "stopping rules",
        "weighted_stop configurations replayed on the pilot run in stored order, each "
        "reusing the pilot: unweighted, and weighted by the run's scorer when its samples "
        "are scored (a bank scored by `ponder bank score`); the grid of every listed "
        "margin and share with every min-n and give-up",
    )
    stop.add_argument(
        "--stop-margins",
        nargs="+",
        type=float,
        default=[],
        metavar="M",
        help="stop once the leader's votes exceed the runner-up's by M",
    )
    stop.add_argument(
        "--stop-shares",
        nargs="+",
        type=float,
        default=[],
        metavar="TAU",
        help="stop once the leader holds TAU of the votes (in (0, 1])",
    )
    stop.add_argument(
        "--stop-min-n",
        nargs="+",
        type=int,
        default=[1],
        metavar="K",
        help="fewest samples before a stop (raised to --pilot; default 1)",
    )
    stop.add_argument(
        "--stop-give-up",
        nargs="+",
        type=float,
        default=[0.0],
        metavar="G",
        help="also give up once the leader holds less than G of the votes (0: never; default 0)",
    )
    stop.add_argument(
        "--stop-give-up-after",
        type=int,
        default=4,
        metavar="K",
        help="fewest samples before giving up (default 4)",
    )


def _add_hybrid_args(parser: Any) -> None:
    parser.add_argument(
        "--hybrid",
        nargs="*",
        type=float,
        metavar="W",
        help="add hybrid configurations (chains of thought and programs in one vote, "
        "`--strategy hybrid`) for each pal run among the stores: the pilot run's first n "
        "samples and the pal run's first m programs, one vote each, and, when the pilot "
        "run is scored, each chain weighing its score and each program W, for every W "
        "listed; they reuse the pilot's samples as their first chains",
    )


def _budgets(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        budgets = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--budgets {text!r}: give numbers separated by commas") from None
    if not budgets:
        raise ConfigError("--budgets lists no budget")
    return budgets


def _stops(args: argparse.Namespace) -> list[Any]:
    """The grid of stopping rules the options name (none without margins or shares)."""
    from ponder.analysis.calibration import StopSpec

    grid = [("margin", m) for m in args.stop_margins] + [("share", t) for t in args.stop_shares]
    return [
        StopSpec(by, tau, k, g, args.stop_give_up_after)  # type: ignore[arg-type]
        for by, tau in grid
        for k in dict.fromkeys(max(k, args.pilot) for k in args.stop_min_n)
        for g in args.stop_give_up
        if g < (tau if by == "share" else 1.0)
    ]


def cmd_optimize(args: argparse.Namespace) -> int:
    from ponder.analysis.calibration import HybridSpec
    from ponder.analysis.optimize import on_test_text, optimize, summary_text

    result = optimize(
        args.stores,
        budgets=_budgets(args.budgets),
        bins=args.bins,
        pilot=args.pilot,
        signal=args.signal,
        pilot_from=args.pilot_from,
        oracle=args.oracle,
        heldout=args.heldout,
        seed=args.seed,
        allocation=args.allocate,
        test=args.test,
        stops=_stops(args),
        hybrid=None if args.hybrid is None else HybridSpec(tuple(args.hybrid)),
    )
    path = result.policy.save(args.out)
    print(summary_text(result))
    if result.test is not None:
        print(on_test_text(result.test))
    print(f"wrote {path}")
    return 0


COMMANDS = {"optimize": cmd_optimize}
