"""Does the hidden-state probe want more training data? (issue 27, part 3: "grow it")

The joint probe (final-layer hidden states and token-confidence features, L2 logistic
regression with its strength chosen by grouped cross-validation) is fitted on random
subsets of the train bank's problems, K problems at a time (``--repeats`` draws per K,
seeded; all of them once at the bank's size), and each fit is measured on the test
bank: pooled and within-problem AUC, and the vote weighted by it against majority at
n = 4 and 8 (``--orderings`` orders a problem). A curve still rising at the full train
bank says a larger bank would pay; a flat one says it would not.

    python bench/probe_learning_curve.py runs/selection/gsm8k-train-maj16.db \\
        runs/selection/gsm8k-test-maj16.db --sizes 8 16 32 48 64
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ponder.analysis.selection import (
    JOINT,
    compare_rules,
    fit_probe_on_banks,
    load_bank,
    parse_rule,
    signal_aucs,
)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("train", type=Path, help="the train bank (hidden states and features)")
    ap.add_argument("test", type=Path, help="the test bank")
    ap.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 32, 48, 64])
    ap.add_argument("--repeats", type=int, default=5, help="random subsets per size")
    ap.add_argument("--n", type=int, nargs="+", default=[4, 8])
    ap.add_argument("--orderings", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)

    train, test = load_bank(args.train), load_bank(args.test)
    p = train.shape[0]
    sizes = sorted({min(k, p) for k in args.sizes})
    rng = np.random.default_rng(args.seed)
    rule = parse_rule(f"weighted[{JOINT}]")
    rows: list[dict[str, Any]] = []
    for k in sizes:
        draws = 1 if k == p else args.repeats
        for r in range(draws):
            picked = sorted(rng.choice(p, size=k, replace=False).tolist())
            sub = train.subset([train.problem_ids[i] for i in picked])
            start = time.perf_counter()
            probe = fit_probe_on_banks([sub], JOINT, seed=args.seed)
            scores = probe.probabilities(test.signal_matrix(JOINT)).reshape(test.shape)
            seconds = time.perf_counter() - start
            (auc,) = signal_aucs(test, {JOINT: scores})
            diffs = compare_rules(
                test, {JOINT: scores}, [rule], args.n, orderings=args.orderings, bootstrap=200,
                seed=args.seed,
            )  # fmt: skip
            rows.append(
                {
                    "problems": k,
                    "samples": int(sub.right.size),
                    "draw": r,
                    "pooled_auc": auc.pooled,
                    "within_auc": auc.within,
                    "diff": {str(c.n): c.diff for c in diffs},
                    "C": probe.trained_on.get("C"),
                    "fit_seconds": seconds,
                }
            )
            print(
                f"K={k:3d} draw {r}: AUC {auc.pooled:.3f} / {auc.within:.3f}; "
                + ", ".join(f"n={c.n} {c.diff:+.3f}" for c in diffs),
                file=sys.stderr,
            )
    head = " | ".join(f"weighted[joint] - majority, n = {n}" for n in args.n)
    lines = [
        f"Joint probe fitted on K of {args.train}'s {p} problems ({train.shape[1]} samples "
        f"each), measured on {args.test} ({test.shape[0]} problems); mean (min, max) over "
        f"the draws",
        "",
        f"| K problems (samples) | draws | pooled AUC | within-problem AUC | {head} |",
        "|---|---|---|---|" + "---|" * len(args.n),
    ]

    def cell(values: list[float], signed: bool = False) -> str:
        f = "{:+.3f}" if signed else "{:.3f}"
        lo, hi = f.format(min(values)), f.format(max(values))
        return f"{f.format(float(np.mean(values)))} ({lo}, {hi})"

    for k in sizes:
        mine = [r for r in rows if r["problems"] == k]
        cells = [cell([r["diff"][str(n)] for r in mine], signed=True) for n in args.n]
        lines.append(
            f"| {k} ({mine[0]['samples']}) | {len(mine)} | {cell([r['pooled_auc'] for r in mine])} "
            f"| {cell([r['within_auc'] for r in mine])} | " + " | ".join(cells) + " |"
        )
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps({"train": str(args.train), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
