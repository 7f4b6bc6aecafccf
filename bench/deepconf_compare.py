"""DeepConf online against its offline form at matched tokens (issue 27, part 6).

The online run (``ponder eval --strategy deepconf -o online=true``, bench/selection.sh
step ``gsm8k-deepconf``) drew a varying number of traces per problem and cut some early.
Its offline form, ``filter[SIGNAL,KEEP]`` (keep the most confident share, then the
confidence-weighted vote), and majority voting are replayed on the bank's samples of the
same problems at every n (200 random orders per problem). The tables:

1. the online run: accuracy, tokens per problem, traces drawn, traces cut, stops;
2. offline DeepConf and majority at the n whose tokens are nearest the online run's
   (below and above), and at the bank's full N;
3. paired differences, online minus each offline row, with 95% bootstrap intervals over
   the problems (one resample moves both sides).

Tokens are the ledger's on both sides: prefilled (uncached) prompt plus generated tokens.

    python bench/deepconf_compare.py runs/selection/gsm8k-50-deepconf-online.db \\
        runs/selection/gsm8k-test-maj16.db [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ponder.analysis.selection import load_bank, parse_rule, replay
from ponder.runs.store import RunStore


def online_rows(path: Path) -> list[dict[str, Any]]:
    with RunStore(path, create=False) as store:
        records = [r for r in store.records() if r.ok]
    if not records:
        raise SystemExit(f"{path}: no finished problems yet")
    return [
        {
            "problem_id": r.problem_id,
            "correct": float(bool(r.correct)),
            "tokens": float(r.usage.total_tokens),
            "samples": int(r.meta.get("samples", len(r.candidates))),
            "cut": int(r.meta.get("stopped_early", 0)),
            "stop": str(r.meta.get("stop_reason", "")),
        }
        for r in records
    ]


def interval(diff: np.ndarray, bootstrap: int, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(diff), size=(bootstrap, len(diff)))
    low, high = np.percentile(diff[picks].mean(axis=1), [2.5, 97.5])
    return float(low), float(high)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("online", type=Path, help="the online DeepConf run's store")
    ap.add_argument("bank", type=Path, help="the bank of the same problems (with features)")
    ap.add_argument(
        "--rule",
        default="filter[lowest_group_128,0.9]",
        help="the offline form (default: the online run's window 128 and keep 0.9)",
    )
    ap.add_argument("--orderings", type=int, default=200)
    ap.add_argument("--bootstrap", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)

    online = online_rows(args.online)
    ids = [row["problem_id"] for row in online]
    bank = load_bank(args.bank).subset(ids)
    rules = [parse_rule("majority"), parse_rule(args.rule)]
    got = replay(bank, bank.features, rules, orderings=args.orderings, seed=args.seed)
    on_correct = np.array([row["correct"] for row in online])
    on_tokens = np.array([row["tokens"] for row in online])
    mean_tokens = float(on_tokens.mean())
    by_n = got.tokens.mean(axis=0)  # (N,) mean tokens per problem at each n
    n_all = len(by_n)
    below = int(np.searchsorted(by_n, mean_tokens, side="right"))  # n with tokens <= online
    ns = sorted({n for n in (below, below + 1, n_all) if 1 <= n <= n_all})

    p = len(online)
    samples = np.array([row["samples"] for row in online])
    cut = int(sum(row["cut"] for row in online))
    consensus = sum(row["stop"].startswith("consensus") for row in online)
    lines = [
        f"DeepConf online ({args.online}) against {args.rule} and majority replayed on "
        f"{args.bank} ({p} problems, {args.orderings} orders each)",
        "",
        "| run | n | accuracy | tokens per problem |",
        "|---|---|---|---|",
        f"| online | {samples.mean():.1f} drawn (min {samples.min()}, max {samples.max()}); "
        f"{cut} cut; {consensus} stopped at consensus | {on_correct.mean():.3f} | "
        f"{mean_tokens:,.0f} |",
    ]
    rows: list[dict[str, Any]] = []
    for n in ns:
        for rule in rules:
            acc = got.correct[rule.name][:, n - 1]
            diff = on_correct - acc
            low, high = interval(diff, args.bootstrap, args.seed)
            rows.append(
                {
                    "rule": rule.name,
                    "n": n,
                    "accuracy": float(acc.mean()),
                    "tokens": float(by_n[n - 1]),
                    "online_minus": float(diff.mean()),
                    "online_minus_ci": [low, high],
                }
            )
            lines.append(f"| {rule.name} | {n} | {acc.mean():.3f} | {by_n[n - 1]:,.0f} |")
    lines += ["", "| online minus | n | difference [95% CI] | token ratio (offline / online) |"]
    lines.append("|---|---|---|---|")
    for row in rows:
        low, high = row["online_minus_ci"]
        lines.append(
            f"| {row['rule']} | {row['n']} | {row['online_minus']:+.3f} [{low:+.3f}, "
            f"{high:+.3f}] | {row['tokens'] / mean_tokens:.2f}x |"
        )
    print("\n".join(lines))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "online": {
                        "store": str(args.online),
                        "problems": p,
                        "accuracy": float(on_correct.mean()),
                        "tokens": mean_tokens,
                        "samples": float(samples.mean()),
                        "cut": cut,
                        "consensus_stops": consensus,
                    },
                    "bank": str(args.bank),
                    "rows": rows,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
