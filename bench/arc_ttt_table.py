"""Side-by-side table of two ARC runs of ``ponder ttt`` (bench/arc_ttt.sh): augmented
voting without training against the same vote after per-task LoRA training, on the
tasks both runs finished. Prints a markdown table (per task: size, test outputs solved
by each, held-out demonstration loss before and after training, seconds per phase,
peak memory), the totals, and how training time grows with task size (a least-squares
line of seconds per step against tokens per training sequence). ``--timed-from`` (UTC,
ISO) keeps the timing figures to tasks that started after the machine went quiet; the
others are marked * in the table (their seconds include other work's).

    python bench/arc_ttt_table.py runs/arc-ttt-30/vote.db runs/arc-ttt-30/ttt.db \
        --timed-from 2026-12-02T08:06
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

import numpy as np

from ponder.analysis.report import task_rows
from ponder.runs.store import RunStore


def rows_of(path: str) -> dict[str, dict[str, Any]]:
    """Each task's row, with ``started``: when its work began (epoch seconds)."""
    with RunStore(path, create=False) as store:
        records = [r for r in store.records() if r.ok]
    rows = {row["task"]: dict(row) for row in task_rows(records)}
    for r in records:
        row = rows[str(r.meta.get("task", r.problem_id))]
        spent = sum((r.meta.get("phase_seconds") or {}).values())
        row["started"] = min(row.get("started", r.finished_at), r.finished_at - spent)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("vote", help="store of the run without training (--no-train)")
    ap.add_argument("ttt", help="store of the run with test-time training")
    ap.add_argument(
        "--timed-from",
        help="UTC time (ISO, e.g. 2026-12-02T08:06): time tasks that started after it only",
    )
    args = ap.parse_args(argv)
    vote, ttt = rows_of(args.vote), rows_of(args.ttt)
    since = 0.0
    if args.timed_from:
        since = datetime.fromisoformat(args.timed_from).replace(tzinfo=UTC).timestamp()
    both = [t for t in ttt if t in vote]
    if not both:
        print("no task finished in both runs", file=sys.stderr)
        return 1
    both.sort(key=lambda t: (ttt[t]["cells"] or 0, t))
    print(
        "| task | cells | demos' tokens trained | solved, vote | solved, TTT | "
        "held-out loss before | after | train s | predict s (TTT) | peak MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for t in both:
        v, r = vote[t], ttt[t]
        mark = "" if r["started"] >= since else " *"
        print(
            f"| {t}{mark} | {r['cells']} | {r['trained_tokens']} | {v['solved']}/{v['tests']} | "
            f"{r['solved']}/{r['tests']} | {_f(r['loss_before'])} | {_f(r['loss_after'])} | "
            f"{r['train_seconds']:.0f} | {r['predict_seconds']:.0f} | "
            f"{_f(r['peak_memory_mb'], 0)} |"
        )
    tests = sum(ttt[t]["tests"] for t in both)
    solved_v = sum(vote[t]["solved"] for t in both)
    solved_t = sum(ttt[t]["solved"] for t in both)
    whole_v = sum(vote[t]["solved"] == vote[t]["tests"] for t in both)
    whole_t = sum(ttt[t]["solved"] == ttt[t]["tests"] for t in both)
    print()
    print(
        f"{len(both)} tasks, {tests} test outputs: pass@2 without training {solved_v}/{tests} "
        f"outputs ({whole_v}/{len(both)} tasks whole); with test-time training {solved_t}/{tests} "
        f"outputs ({whole_t}/{len(both)} tasks whole)"
    )
    before = np.array([ttt[t]["loss_before"] for t in both if ttt[t]["loss_after"] is not None])
    after = np.array([ttt[t]["loss_after"] for t in both if ttt[t]["loss_after"] is not None])
    lower = int(np.sum(after < before))
    print(
        f"held-out demonstration loss: mean {before.mean():.3f} before, {after.mean():.3f} "
        f"after; lower after training on {lower}/{len(before)} tasks"
    )
    trained = [t for t in both if ttt[t]["steps"] and ttt[t]["started"] >= since]
    if len(trained) >= 2:
        per_step = np.array([ttt[t]["train_seconds"] / ttt[t]["steps"] for t in trained])
        tokens = np.array([ttt[t]["trained_tokens"] / ttt[t]["steps"] for t in trained])
        slope, icpt = np.polyfit(tokens, per_step, 1)
        mem = np.array([ttt[t]["peak_memory_mb"] for t in trained], dtype=float)
        cells = np.array([ttt[t]["cells"] for t in trained], dtype=float)
        mslope, micpt = np.polyfit(cells, mem, 1)
        task_s = [_task_s(ttt[t]) for t in trained]
        print(
            f"seconds per training step = {icpt:.2f} + {slope * 1000:.2f} per 1000 tokens of "
            f"the step's sequence (tokens {tokens.min():.0f}-{tokens.max():.0f}, "
            f"{per_step.min():.1f}-{per_step.max():.1f} s); train + predict per task "
            f"{min(task_s):.0f}-{max(task_s):.0f} s"
        )
        print(f"timing from the {len(trained)} trained tasks not marked *")
        print(
            f"peak memory = {micpt:.0f} MB + {mslope:.2f} MB per grid cell "
            f"({mem.min():.0f}-{mem.max():.0f} MB)"
        )
    return 0


def _task_s(row: dict[str, Any]) -> float:
    return float(row["train_seconds"] + row["predict_seconds"])


def _f(x: Any, digits: int = 3) -> str:
    return "" if x is None else f"{x:.{digits}f}"


if __name__ == "__main__":
    raise SystemExit(main())
