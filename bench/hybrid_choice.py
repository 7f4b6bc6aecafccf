"""Chain-of-thought and program votes, the mix chosen on train from several PAL banks.

``ponder bank hybrid --train`` chooses a cell per CoT majority n from one PAL bank. This
runs that choice for each PAL bank given (for example one greedy program per problem,
and four programs at temperature 0.7), keeps for each n the family whose chosen cell is
more accurate on train (then the cheaper), and measures only that cell on test,
against CoT majority at matched tokens, paired. Every choice is made on train.

    python bench/hybrid_choice.py TRAIN_COT.db TEST_COT.db \
        --pal pal1 TRAIN_PAL1.db TEST_PAL1.db --pal pal4 TRAIN_PAL4.db TEST_PAL4.db \
        --pal-weights 0.5 1 2 --at 4 8 16 --json out.json

With scored CoT banks (``ponder bank score``; the train bank's scores cross-fitted, the
test bank's from a scorer fitted on train) the grid also holds the weighted cells: each
CoT sample weighs its score and each program the weight W.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ponder.analysis.hybrid import (
    Cell,
    HybridRow,
    cheapest_reaching,
    choose,
    grid,
    hybrid_table,
    load_pair,
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("train_cot", metavar="TRAIN_COT.db")
    ap.add_argument("test_cot", metavar="TEST_COT.db")
    ap.add_argument(
        "--pal",
        nargs=3,
        action="append",
        required=True,
        metavar=("NAME", "TRAIN_PAL.db", "TEST_PAL.db"),
        help="a PAL family: its banks on the train and the test problems (repeat)",
    )
    ap.add_argument("--pal-weights", nargs="*", type=float, default=[], metavar="W")
    ap.add_argument("--at", nargs="+", type=int, default=[4, 8, 16], metavar="N")
    ap.add_argument(
        "--reach",
        type=int,
        default=16,
        metavar="N",
        help="also keep the cheapest cell whose train accuracy reaches CoT majority-N's "
        "there, and measure its tokens and accuracy against majority-N on test "
        "(0: not)",
    )
    ap.add_argument("--orderings", type=int, default=200)
    ap.add_argument("--bootstrap", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    trains = {name: load_pair(args.train_cot, train_pal) for name, train_pal, _ in args.pal}
    shared = next(iter(trains.values())).problem_ids
    for (_name, train_pal, _), train in zip(args.pal, trains.values(), strict=True):
        if train.problem_ids != shared:
            ap.error(f"{train_pal} finished other train problems than the first PAL bank")
    picks: dict[int, tuple[str, HybridRow]] = {}
    train_rows: dict[str, dict[int, HybridRow]] = {}
    for name, train in trains.items():
        chosen = choose(
            train, grid(train, args.pal_weights), args.at, orderings=args.orderings, seed=args.seed
        )
        train_rows[name] = chosen
        for n, row in chosen.items():
            best = picks.get(n)
            if best is None or (row.accuracy, -row.tokens) > (best[1].accuracy, -best[1].tokens):
                picks[n] = (name, row)
    names = [name for name, *_ in args.pal]
    print("chosen on train, per CoT majority n: each family's best cell within its tokens\n")
    heads = [f"{name} (train, {len(shared)} problems)" for name in names]
    print("| n | " + " | ".join(heads) + " | kept |")
    print("|---|" + "---|" * (len(names) + 1))
    for n in args.at:
        rows = [train_rows[name][n] for name in names]
        cells = [f"{r.name} {r.accuracy:.3f} at {r.tokens:,.0f}" for r in rows]
        print(f"| {n} | " + " | ".join(cells) + f" | {picks[n][0]} |")

    tests = {name: test_pal for name, _, test_pal in args.pal}
    out: list[dict[str, Any]] = []
    print("\nthe kept cells on test, against CoT majority at matched tokens (paired)\n")
    print(
        "| n | rule | PAL bank | test accuracy | tokens | CoT majority at >= tokens | "
        "its accuracy | difference [95% paired] |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for n in args.at:
        name, pick = picks[n]
        row = _on_test(args, tests[name], pick)
        if row.majority_n is None:
            maj = "none spends as much | |"
        else:
            maj = f"n = {row.majority_n} ({row.majority_tokens:,.0f}) | {row.majority_accuracy:.3f}"
        low, high = row.diff_ci
        print(
            f"| {n} | {row.name} | {name} | {row.accuracy:.3f} | {row.tokens:,.0f} | {maj} | "
            f"{row.diff:+.3f} [{low:+.3f}, {high:+.3f}] |"
        )
        out.append({"n": n, "family": name, "train": pick.to_dict(), "test": row.to_dict()})
    data: dict[str, Any] = {"train_cot": args.train_cot, "test_cot": args.test_cot}
    data.update(pal=args.pal, chosen=out)
    if args.reach:
        data["reach"] = _reach(args, trains, tests)
    if args.json:
        args.json.write_text(json.dumps(data, indent=2) + "\n")
    return 0


def _on_test(
    args: argparse.Namespace, test_pal: str, pick: HybridRow, against: int | None = None
) -> HybridRow:
    """The cell picked on train, measured on the test banks."""
    (row,) = hybrid_table(
        load_pair(args.test_cot, test_pal),
        [Cell(pick.cot, pick.pal, pick.pal_weight)],
        orderings=args.orderings,
        bootstrap=args.bootstrap,
        seed=args.seed,
        against=against,
    )
    return row


def _reach(
    args: argparse.Namespace, trains: Mapping[str, Any], tests: Mapping[str, str]
) -> dict[str, Any] | None:
    """The cheapest cell reaching CoT majority-N's train accuracy, across the families,
    on test against majority-N: accuracy (paired) and how many times fewer tokens."""
    n = args.reach
    best: tuple[str, HybridRow] | None = None
    print(f"\nthe cheapest cell reaching CoT majority-{n}'s train accuracy\n")
    print("| PAL bank | majority on train | cheapest cell reaching it on train |")
    print("|---|---|---|")
    for name, train in trains.items():
        majority, row = cheapest_reaching(
            train, grid(train, args.pal_weights), n, orderings=args.orderings, seed=args.seed
        )
        got = "none" if row is None else f"{row.name} {row.accuracy:.3f} at {row.tokens:,.0f}"
        print(f"| {name} | {majority.accuracy:.3f} at {majority.tokens:,.0f} | {got} |")
        if row is not None and (best is None or row.tokens < best[1].tokens):
            best = (name, row)
    if best is None:
        print(f"\nno cell reaches majority-{n}'s train accuracy")
        return None
    name, pick = best
    row = _on_test(args, tests[name], pick, against=n)
    ratio = row.majority_tokens / row.tokens
    low, high = row.diff_ci
    print(
        f"\non test: {row.name} ({name}) {row.accuracy:.3f} at {row.tokens:,.0f} tokens; "
        f"CoT majority-{n} {row.majority_accuracy:.3f} at {row.majority_tokens:,.0f}: "
        f"{ratio:.2f}x fewer tokens, {row.diff:+.3f} [{low:+.3f}, {high:+.3f}] (paired)"
    )
    return {"n": n, "family": name, "train": pick.to_dict(), "test": row.to_dict(),
            "token_ratio": ratio}  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
