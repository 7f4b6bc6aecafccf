"""Pick a stopping rule's settings on the calibration split, then report them on the test split.

Each run is a store name found in both folders (``TRAIN_DIR/NAME.db`` and
``TEST_DIR/NAME.db``, the same strategy replayed on each bank). On the train split the
chosen run is the one with the fewest samples per question among those whose accuracy
is at least the baseline's minus ``--tolerance`` (ties: fewer tokens). The table shows
every run on both splits, so the choice and what it gave on held-out problems are
read side by side:

    python bench/choose_stop.py runs/gsm8k-adaptive/train runs/gsm8k-adaptive \\
        ac16-beta-b1-t0.8 ac16-beta-b2-t0.95 esc16 \\
        --baseline runs/gsm8k-adaptive/train-maj16.db runs/gsm8k-adaptive/test-maj16.db
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from ponder.runs.store import Record, RunStore


@dataclass(frozen=True)
class Numbers:
    accuracy: float
    samples: float
    tokens: float


def load(path: Path) -> dict[str, Record]:
    if not path.is_file():
        raise SystemExit(f"no store at {path}: run the script's adapt step first")
    with RunStore(path, create=False) as store:
        records = {r.problem_id: r for r in store.records(include_errors=False)}
    if not records:
        raise SystemExit(f"{path} has no finished problems")
    return records


def numbers(records: dict[str, Record], ids: set[str]) -> Numbers:
    rs = [records[i] for i in ids]
    n = len(rs)
    return Numbers(
        accuracy=sum(r.correct for r in rs) / n,
        samples=sum(len(r.candidates) for r in rs) / n,
        tokens=sum(r.usage.total_tokens for r in rs) / n,
    )


def split(paths: dict[str, Path], what: str) -> dict[str, Numbers]:
    """Each store's numbers over the problems finished in all of them."""
    stores = {name: load(path) for name, path in paths.items()}
    common = set.intersection(*(set(r) for r in stores.values()))
    if not common:
        raise SystemExit(f"the {what} stores share no finished problem")
    largest = max(len(r) for r in stores.values())
    if len(common) < largest:
        print(f"{what}: {len(common)} problems finished in every store (of up to {largest})")
    return {name: numbers(records, common) for name, records in stores.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("train_dir", type=Path)
    ap.add_argument("test_dir", type=Path)
    ap.add_argument("runs", nargs="+", help="store names (without .db) in both folders")
    ap.add_argument(
        "--baseline",
        nargs=2,
        type=Path,
        required=True,
        metavar=("TRAIN_DB", "TEST_DB"),
        help="the baseline's store on each split (majority n=16)",
    )
    ap.add_argument("--tolerance", type=float, default=0.01, help="accuracy points (0.01 = 1)")
    args = ap.parse_args()
    train = split(
        {"baseline": args.baseline[0]} | {k: args.train_dir / f"{k}.db" for k in args.runs},
        "train",
    )
    test = split(
        {"baseline": args.baseline[1]} | {k: args.test_dir / f"{k}.db" for k in args.runs},
        "test",
    )
    rows = {name: (train[name], test[name]) for name in ["baseline", *args.runs]}
    base = rows["baseline"]
    floor = base[0].accuracy - args.tolerance
    eligible = [k for k in args.runs if rows[k][0].accuracy >= floor]
    chosen = min(eligible, key=lambda k: (rows[k][0].samples, rows[k][0].tokens), default=None)
    print(f"chosen on train (accuracy >= {floor:.3f}): {chosen or 'none'}")
    print("| run | train accuracy | train samples | test accuracy | test samples | "
          "test samples saved | test tokens |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for name, (tr, te) in rows.items():
        mark = " (chosen)" if name == chosen else ""
        print(f"| {name}{mark} | {tr.accuracy:.3f} | {tr.samples:.2f} | "
              f"{te.accuracy:.3f} | {te.samples:.2f} | {base[1].samples / te.samples:.2f}x | "
              f"{te.tokens:,.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
