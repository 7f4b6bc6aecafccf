"""Live runs against rules replayed on a bank at matched tokens (issue 27, parts 6 and 7).

A live run (DeepConf online, beam search, DVTS, MCTS, lookahead...) spends a varying
number of tokens per problem. Each rule (majority, DeepConf's offline filter, a vote
weighted by a verifier, best-of-n...) is replayed on the bank's samples of the same
problems at every n (200 random orders per problem, the same orders for every rule),
and read at the two n whose tokens bracket the run's mean, and at the bank's full N.
For each run, two tables:

1. the run (accuracy, tokens per problem, and from its records' meta where present:
   samples drawn, traces cut, consensus stops) and each rule at those n;
2. the paired differences, run minus rule, with 95% bootstrap intervals over the
   problems (one resample moves both sides), and the token ratio.

Tokens are the ledger's on both sides: prefilled (uncached) prompt plus generated
tokens, the verifier's included. A rule by ``combined``, ``probe`` or ``joint`` reads a
verifier fitted on the ``--train`` banks (cross-fitted on the bank without one), as
``ponder bank select`` does.

    python bench/matched_tokens.py runs/selection/gsm8k-test-maj16.db \\
        runs/selection/gsm8k-50-deepconf-online.db \\
        --rules majority 'filter[lowest_group_128,0.9]' [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ponder.analysis.selection import Bank, Rule, bank_signals, load_bank, parse_rule, replay
from ponder.runs.store import RunStore
from ponder.verifiers.features import FEATURE_NAMES


def run_rows(path: Path) -> list[dict[str, Any]]:
    with RunStore(path, create=False) as store:
        records = [r for r in store.records() if r.ok]
    if not records:
        raise SystemExit(f"{path}: no finished problems yet")
    return [
        {
            "problem_id": r.problem_id,
            "correct": float(bool(r.correct)),
            "tokens": float(r.usage.total_tokens),
            "samples": r.meta.get("samples"),
            "cut": r.meta.get("stopped_early"),
            "stop": str(r.meta.get("stop_reason", "")),
        }
        for r in records
    ]


def interval(diff: np.ndarray, bootstrap: int, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(diff), size=(bootstrap, len(diff)))
    low, high = np.percentile(diff[picks].mean(axis=1), [2.5, 97.5])
    return float(low), float(high)


def describe(rows: Sequence[Mapping[str, Any]]) -> str:
    """What the run's meta says about its samples, where it says it."""
    parts = []
    samples = [r["samples"] for r in rows if isinstance(r["samples"], int)]
    if len(samples) == len(rows):
        parts.append(f"{np.mean(samples):.1f} samples (min {min(samples)}, max {max(samples)})")
    cut = [r["cut"] for r in rows if isinstance(r["cut"], int)]
    if len(cut) == len(rows):
        parts.append(f"{sum(cut)} cut")
    consensus = sum(r["stop"].startswith("consensus") for r in rows)
    if consensus:
        parts.append(f"{consensus} stopped at consensus")
    return "; ".join(parts)


def compare(
    name: str,
    rows: Sequence[Mapping[str, Any]],
    bank: Bank,
    signals: Mapping[str, np.ndarray],
    rules: Sequence[Rule],
    args: argparse.Namespace,
) -> tuple[list[str], dict[str, Any]]:
    ids = [row["problem_id"] for row in rows]
    try:
        picked = bank.rows(ids)
    except KeyError as e:
        raise SystemExit(f"{name}: {e.args[0]}") from None
    got = replay(
        bank.subset(ids),
        {k: v[picked] for k, v in signals.items()},
        rules,
        orderings=args.orderings,
        seed=args.seed,
    )
    correct = np.array([row["correct"] for row in rows])
    tokens = float(np.mean([row["tokens"] for row in rows]))
    by_n = got.tokens.mean(axis=0)
    n_all = len(by_n)
    below = int(np.searchsorted(by_n, tokens, side="right"))  # the n with tokens <= the run's
    ns = sorted({n for n in (below, below + 1, n_all) if 1 <= n <= n_all})
    lines = [
        f"### {name}: {len(rows)} problems",
        "",
        "| run | n | accuracy | tokens per problem |",
        "|---|---|---|---|",
        f"| {name} | {describe(rows)} | {correct.mean():.3f} | {tokens:,.0f} |",
    ]
    out: list[dict[str, Any]] = []
    for n in ns:
        for rule in got.correct:
            acc = got.correct[rule][:, n - 1]
            low, high = interval(correct - acc, args.bootstrap, args.seed)
            out.append(
                {
                    "rule": rule,
                    "n": n,
                    "accuracy": float(acc.mean()),
                    "tokens": float(by_n[n - 1]),
                    "run_minus": float((correct - acc).mean()),
                    "run_minus_ci": [low, high],
                }
            )
            lines.append(f"| {rule} | {n} | {acc.mean():.3f} | {by_n[n - 1]:,.0f} |")
    lines += ["", "| run minus | n | difference [95% CI] | token ratio (rule / run) |"]
    lines.append("|---|---|---|---|")
    for row in out:
        low, high = row["run_minus_ci"]
        lines.append(
            f"| {row['rule']} | {row['n']} | {row['run_minus']:+.3f} [{low:+.3f}, "
            f"{high:+.3f}] | {row['tokens'] / tokens:.2f}x |"
        )
    summary = {
        "store": name,
        "problems": len(rows),
        "accuracy": float(correct.mean()),
        "tokens": tokens,
        "samples": describe(rows),
        "rows": out,
    }
    return lines, summary


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bank", type=Path, help="the bank of the runs' problems")
    ap.add_argument("runs", type=Path, nargs="+", help="the live runs' stores")
    ap.add_argument("--rules", nargs="+", default=["majority"], help="rules to replay")
    ap.add_argument("--train", type=Path, nargs="*", default=[], help="banks to fit on")
    ap.add_argument("--orderings", type=int, default=200)
    ap.add_argument("--bootstrap", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)

    rules = [parse_rule(r) for r in args.rules]  # a bad rule fails before any work
    bank = load_bank(args.bank)
    if all(r.signal is None or r.signal in FEATURE_NAMES for r in rules):
        signals: Mapping[str, np.ndarray] = bank.features
        source = "features only"
    else:
        train = [load_bank(p) for p in args.train]
        signals, _, source = bank_signals(bank, train, seed=args.seed)
    print(
        f"Runs against rules replayed on {args.bank} ({args.orderings} orders a problem; "
        f"verifier signals: {source})\n"
    )
    found = []
    for path in args.runs:
        lines, summary = compare(str(path), run_rows(path), bank, signals, rules, args)
        print("\n".join(lines) + "\n")
        found.append(summary)
    if args.json:
        args.json.write_text(json.dumps({"bank": str(args.bank), "runs": found}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
