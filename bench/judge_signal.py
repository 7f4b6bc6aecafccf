"""The judge as a selection signal on a bank's samples (issue 27, part 3).

``ponder eval --replay BANK.db --strategy best_of_n --n N --scorer judge`` (or
``judge:step,agg=min``) serves the bank's own samples in stored order and has the
model judge each one; its store keeps every candidate's score. This script lines the
scores up with the bank's samples (refusing a run whose candidates are not the bank's),
and reports, per judge run:

- the AUC of the judge's score against the samples' grades, pooled and within problems
  (the judge needs no fitting, so every figure is out of sample);
- its cost: judge tokens (prefilled plus generated) and wall seconds per sample, from
  the run's records (a replay run's seconds count only the judging; the span from the
  first problem's start to the last one's end, as problems overlap);
- the vote weighted by the score and best-of-n by it, against majority at the bank's n
  values on the same samples (paired bootstrap over problems).

    python bench/judge_signal.py runs/selection/gsm8k-test-maj16.db \\
        runs/selection/gsm8k-test-20-judge.db runs/selection/gsm8k-test-20-judge-step.db
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ponder.analysis.selection import Bank, Rule, compare_rules, load_bank, signal_aucs
from ponder.runs.store import RunStore


def scores_of(run: Path, bank: Bank) -> tuple[Bank, np.ndarray, dict[str, Any]]:
    """The bank cut to the run's problems, the run's score of each sample (P, N), and
    its judging cost per sample."""
    with RunStore(run, create=False) as store:
        records = [r for r in store.records() if r.ok]
        config = store.config() or {}
    if not records:
        raise SystemExit(f"{run}: no finished problems yet")
    sub = bank.subset([r.problem_id for r in records])
    with RunStore(bank.path, create=False) as store:
        texts = {r.problem_id: [c.text for c in r.candidates] for r in store.records()}
    p, n = sub.shape
    scores = np.full((p, n), np.nan)
    own = judge_tokens = 0.0
    for i, r in enumerate(records):
        if [c.text for c in r.candidates[:n]] != texts[r.problem_id][:n]:
            raise SystemExit(f"{run}: {r.problem_id}'s candidates are not the bank's samples")
        for j, c in enumerate(r.candidates[:n]):
            if c.score is None:
                raise SystemExit(f"{run}: {r.problem_id} sample {j} has no score")
            scores[i, j] = c.score
        own += sum(c.usage.total_tokens for c in r.candidates)
        judge_tokens += r.usage.total_tokens - sum(c.usage.total_tokens for c in r.candidates)
    samples = sum(len(r.candidates) for r in records)
    # problems run concurrently, so their own seconds overlap: the run's span instead
    # (from the first problem's start to the last one's end; a resumed run's includes
    # the pause)
    span = max(r.finished_at for r in records) - min(r.finished_at - r.seconds for r in records)
    cost = {
        "judge_tokens_per_sample": judge_tokens / samples,
        "sample_tokens_per_sample": own / samples,
        "seconds_per_sample": span / samples,
        "scorer": str((config.get("strategy") or {}).get("options", {}).get("scorer", "")),
    }
    return sub, scores, cost


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bank", type=Path, help="the bank the runs replayed")
    ap.add_argument("runs", type=Path, nargs="+", help="the judge runs' stores")
    ap.add_argument("--n", type=int, nargs="+", default=[4, 8, 16])
    ap.add_argument("--orderings", type=int, default=200)
    ap.add_argument("--bootstrap", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)

    bank = load_bank(args.bank)
    lines = [
        f"The judge's scores of {args.bank}'s samples ({args.orderings} orders, "
        f"{args.bootstrap} paired resamples)",
        "",
        "| run (scorer) | problems | pooled AUC | within-problem AUC (problems) | judge tokens "
        "a sample | seconds a sample |",
        "|---|---|---|---|---|---|",
    ]
    found: list[dict[str, Any]] = []
    rule_lines: list[str] = []
    for run in args.runs:
        sub, scores, cost = scores_of(run, bank)
        (auc,) = signal_aucs(sub, {"judge": scores})
        lines.append(
            f"| {run.name} ({cost['scorer']}) | {sub.shape[0]} | {auc.pooled:.3f} | "
            f"{auc.within:.3f} ({auc.problems}) | {cost['judge_tokens_per_sample']:,.0f} | "
            f"{cost['seconds_per_sample']:.1f} |"
        )
        ns = [n for n in args.n if n <= sub.shape[1]]
        rules = [Rule("weighted", "judge"), Rule("best_of_n", "judge")]
        rows = compare_rules(
            sub, {"judge": scores}, rules, ns, orderings=args.orderings,
            bootstrap=args.bootstrap, seed=args.seed,
        )  # fmt: skip
        for c in rows:
            rule_lines.append(
                f"| {run.name} | {c.rule} | {c.n} | {c.majority:.3f} | {c.accuracy:.3f} | "
                f"{c.diff:+.3f} [{c.diff_ci[0]:+.3f}, {c.diff_ci[1]:+.3f}] |"
            )
        found.append(
            {"run": str(run), "auc": auc.to_dict(), **cost, "rules": [c.to_dict() for c in rows]}
        )
    lines += [
        "",
        "| run | rule | n | majority | rule's accuracy | difference [95% paired] |",
        "|---|---|---|---|---|---|",
        *rule_lines,
    ]
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps({"bank": str(args.bank), "runs": found}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
