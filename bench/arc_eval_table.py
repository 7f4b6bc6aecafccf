"""The tables of bench/arc_eval.sh (issue 29): test-time training on ARC evaluation tasks.

Reads the stores in OUT (any that are missing are left out, and said so) and prints
markdown:

1. the four-way table (base or fine-tuned model x augmented vote or per-task LoRA):
   pass@2 per test output and per task, each with its Wilson interval, and the paired
   differences (exact McNemar test over the test outputs);
2. the ablations, one change at a time from BEST-ttt: the inference ones derived from
   BEST-ttt's stored predictions (identity only: the identity transform's prediction
   alone; flat vote: one vote over all predictions, which with one prediction per
   symmetry cannot differ from the two levels), a live identity-only run where there is
   one, 4 colour maps per symmetry (two-level and flat vote on the same predictions),
   and the training ones from their own stores; attempts by augmented likelihood,
   against the vote on the same predictions;
3. per task: size, solved in each run, held-out loss before and after training,
   seconds, peak memory;
4. ARC-AGI-2 (arc2-vote.db, arc2-ttt.db), per task as in 3 plus tokens per training step;
5. the cost model: seconds, tokens and peak memory per task against grid cells (least
   squares), projected over the whole 400-task evaluation set on this machine, and on
   one GPU under a stated assumption (``--gpu-tflops``, ``--gpu-utilisation``), and
   checked against the larger ARC-AGI-2 tasks, which the lines were not fitted to.

    python bench/arc_eval_table.py runs/arc-eval-30 --best ft
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from ponder.analysis.summary import task_rows
from ponder.runs.store import Record, RunStore
from ponder.runs.summary import wilson_interval
from ponder.ttt.infer import Prediction, vote

FOUR = {
    ("base", "vote"): "base-vote",
    ("base", "ttt"): "base-ttt",
    ("ft", "vote"): "ft-vote",
    ("ft", "ttt"): "ft-ttt",
}
TRAINING_ABLATIONS = {
    "noaug": "training without augmentations (identity frame, original order)",
    "pairs": "training on the plain demonstrations, not leave-one-out tasks",
    "rank32": "LoRA rank 32 (alpha 64) instead of 8 (alpha 16)",
}
PARAMS = 494e6  # qwen2.5-coder-0.5b's parameters (the model card: 0.49B)


def load(path: Path) -> list[Record] | None:
    if not path.is_file():
        return None
    with RunStore(path, create=False) as store:
        return [r for r in store.records() if r.ok]


def outcome(records: Sequence[Record]) -> dict[str, bool]:
    return {r.problem_id: bool(r.correct) for r in records}


def revoted(
    records: Sequence[Record], *, identity: bool = False, flat: bool = False
) -> dict[str, bool]:
    """Each test output solved or not, voting again on the stored predictions: only the
    identity transform's (one answer, as a run under the identity alone gives), or all
    of them in one flat vote."""
    out = {}
    for r in records:
        preds = [Prediction(**p) for p in r.meta.get("predictions") or []]
        if identity:
            preds = [p for p in preds if p.transform == "identity"]
        attempts = [a for a, _ in vote(preds, flat=flat or identity)]
        out[r.problem_id] = r.reference is not None and r.reference in attempts
    return out


def task_of(pid: str) -> str:
    return pid.split("/")[0]


def cell(solved: dict[str, bool]) -> str:
    """pass@2 over test outputs and over whole tasks, with Wilson intervals."""
    n, k = len(solved), sum(solved.values())
    tasks: dict[str, list[bool]] = {}
    for pid, ok in solved.items():
        tasks.setdefault(task_of(pid), []).append(ok)
    whole = sum(all(v) for v in tasks.values())
    lo, hi = wilson_interval(k, n)
    tlo, thi = wilson_interval(whole, len(tasks))
    return (
        f"{k}/{n} outputs ({k / n:.3f}, {lo:.2f}-{hi:.2f}); "
        f"{whole}/{len(tasks)} tasks ({tlo:.2f}-{thi:.2f})"
    )


def paired(a: dict[str, bool], b: dict[str, bool]) -> str:
    """b against a on the outputs both have: gained, lost, exact McNemar p."""
    common = sorted(set(a) & set(b))
    gained = sum(b[p] and not a[p] for p in common)
    lost = sum(a[p] and not b[p] for p in common)
    p = stats.binomtest(gained, gained + lost).pvalue if gained + lost else 1.0
    return f"+{gained}/-{lost} (McNemar p = {p:.3g})"


def four_way(runs: dict[str, list[Record]]) -> None:
    print("## The four-way table (pass@2)\n")
    print("| model | augmented vote, no training | per-task LoRA (TTT) | TTT against vote |")
    print("|---|---|---|---|")
    for model, name in (("base", "base (qwen2.5-coder-0.5b)"), ("ft", "fine-tuned (stage 1)")):
        v, t = runs.get(FOUR[model, "vote"]), runs.get(FOUR[model, "ttt"])
        vs = "" if v is None or t is None else paired(outcome(v), outcome(t))
        print(
            f"| {name} | {cell(outcome(v)) if v else 'not run'} | "
            f"{cell(outcome(t)) if t else 'not run'} | {vs} |"
        )
    for how in ("vote", "ttt"):
        b, f = runs.get(FOUR["base", how]), runs.get(FOUR["ft", how])
        if b and f:
            print(f"\nfine-tuned against base, {how}: {paired(outcome(b), outcome(f))}")
    print()


def ablations(runs: dict[str, list[Record]], best: str) -> None:
    full = runs.get(f"{best}-ttt")
    if full is None:
        print(f"## Ablations\n\n{best}-ttt.db is not there yet\n")
        return
    base = outcome(full)
    rows: list[tuple[str, dict[str, bool], str]] = [
        ("the full recipe", base, ""),
        ("inference under the identity only (from the stored predictions)",
         revoted(full, identity=True), ""),
        ("flat vote instead of two levels (from the stored predictions)",
         revoted(full, flat=True), ""),
    ]  # fmt: skip
    live = runs.get(f"{best}-ttt-identity")
    if live is not None:
        rows.append(
            ("inference under the identity only (live, the saved adapters)", outcome(live), "")
        )
    colours = runs.get(f"{best}-ttt-colours4")
    if colours is not None:
        rows.append(
            (
                "4 colour maps per symmetry, two-level vote (the saved adapters)",
                outcome(colours),
                "",
            )
        )
        rows.append(
            ("4 colour maps per symmetry, flat vote (the same predictions)",
             revoted(colours, flat=True), "")
        )  # fmt: skip
    scored = runs.get(f"{best}-ttt-likelihood")
    if scored is not None:
        rows.append(
            (
                "attempts by augmented likelihood, not votes (the saved adapters)",
                outcome(scored),
                "",
            )
        )
    for key, what in TRAINING_ABLATIONS.items():
        recs = runs.get(f"{best}-ttt-{key}")
        if recs is not None:
            rows.append((what, outcome(recs), _mean_loss_after(recs)))
    print(f"## Ablations, one change at a time from {best}-ttt (pass@2)\n")
    print("| change | solved | against the full recipe | held-out loss after training |")
    print("|---|---|---|---|")
    for what, solved, loss in rows:
        against = "" if solved is base else paired(base, solved)
        loss = loss or (_mean_loss_after(full) if solved is base else "")
        print(f"| {what} | {cell(solved)} | {against} | {loss} |")
    if scored is not None:
        voted = {
            r.problem_id: r.reference is not None and r.reference in r.meta.get("voted", [])
            for r in scored
        }
        print(
            f"\naugmented likelihood against the vote on the same predictions: "
            f"vote {cell(voted)}; likelihood {paired(voted, outcome(scored))}"
        )
    missing = [k for k in TRAINING_ABLATIONS if f"{best}-ttt-{k}" not in runs]
    if missing:
        print(f"\nnot run yet: {', '.join(missing)}")
    print()


def _mean_loss_after(records: Sequence[Record]) -> str:
    rows = task_rows(records)
    after = [r["loss_after"] for r in rows if r["loss_after"] is not None]
    before = [r["loss_before"] for r in rows if r["loss_before"] is not None]
    if not after:
        return ""
    return f"{np.mean(after):.3f} (before {np.mean(before):.3f})"


def per_task(runs: dict[str, list[Record]]) -> None:
    names = [n for n in FOUR.values() if n in runs]
    rows = {n: {r["task"]: r for r in task_rows(runs[n])} for n in names}
    tasks = sorted({t for n in names for t in rows[n]}, key=lambda t: (_cells(rows, t), t))
    trained = [n for n in names if n.endswith("ttt")]
    print("## Per task\n")
    head = [
        "task",
        "cells",
        *(f"solved, {n}" for n in names),
        *(f"loss before, after ({n})" for n in trained),
        *(f"train s, predict s ({n})" for n in trained),
        "peak MB",
    ]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for t in tasks:
        peaks = [rows[n][t]["peak_memory_mb"] for n in names if t in rows[n]]
        peak = max((p for p in peaks if p is not None), default=None)
        cells = [
            t,
            str(_cells(rows, t)),
            *(_solved(rows[n].get(t)) for n in names),
            *(_losses(rows[n].get(t)) for n in trained),
            *(_seconds(rows[n].get(t)) for n in trained),
            _f(peak, 0),
        ]
        print("| " + " | ".join(cells) + " |")
    print()


def _cells(rows: dict[str, dict[str, dict[str, Any]]], task: str) -> int:
    return next(int(r[task]["cells"] or 0) for r in rows.values() if task in r)


def _solved(row: dict[str, Any] | None) -> str:
    return "" if row is None else f"{row['solved']}/{row['tests']}"


def _losses(row: dict[str, Any] | None) -> str:
    return "" if row is None else f"{_f(row['loss_before'])}, {_f(row['loss_after'])}"


def _seconds(row: dict[str, Any] | None) -> str:
    return "" if row is None else f"{row['train_seconds']:.0f}, {row['predict_seconds']:.0f}"


def _f(x: Any, digits: int = 3) -> str:
    return "" if x is None else f"{x:.{digits}f}"


def arc2(runs: dict[str, list[Record]]) -> None:
    v, t = runs.get("arc2-vote"), runs.get("arc2-ttt")
    if v is None and t is None:
        return
    print("## ARC-AGI-2 evaluation, smallest tasks (pass@2)\n")
    print(f"- vote only: {cell(outcome(v)) if v else 'not run'}")
    print(f"- per-task LoRA: {cell(outcome(t)) if t else 'not run'}")
    if t:
        print(f"- held-out loss after training: {_mean_loss_after(t)}")
    if v and t:
        print(f"- TTT against vote: {paired(outcome(v), outcome(t))}")
    print()
    voted = {r["task"]: r for r in task_rows(v or [])}
    trained = {r["task"]: r for r in task_rows(t or [])}
    rows = [*trained.values(), *(r for k, r in voted.items() if k not in trained)]
    head = ["task", "cells", "solved, vote", "solved, TTT", "loss before, after",
            "train s, predict s", "tokens per step", "peak MB"]  # fmt: skip
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in sorted(rows, key=lambda r: (r["cells"] or 0, r["task"])):
        k, tr = row["task"], trained.get(row["task"])
        per_step = tr["trained_tokens"] / tr["steps"] if tr and tr["steps"] else None
        cells = [k, str(row["cells"]), _solved(voted.get(k)), _solved(tr), _losses(tr),
                 _seconds(tr), _f(per_step, 0), _f(row["peak_memory_mb"], 0)]  # fmt: skip
        print("| " + " | ".join(cells) + " |")
    print()


def _task_cost(records: Sequence[Record]) -> list[dict[str, float]]:
    """Per task: cells, training steps, seconds training and in all, tokens trained and
    of inference, peak MB, and when it started (epoch seconds)."""
    out: dict[str, dict[str, float]] = {}
    for r in records:
        task = str(r.meta.get("task", task_of(r.problem_id)))
        phases = r.meta.get("phase_seconds") or {}
        spent = float(sum(phases.values()))
        train = r.meta.get("train") or {}
        row = out.setdefault(
            task,
            {
                "cells": float(r.meta.get("cells") or 0),
                "steps": float(len(train.get("losses") or [])),
                "train": float(phases.get("train", 0.0)),
                "seconds": spent,
                "trained": float(train.get("tokens", 0)),
                "inferred": 0.0,
                "decoded": 0.0,
                "peak": float(r.meta.get("peak_memory_mb") or 0),
                "threads": float(r.meta.get("threads") or 0),  # 0: not recorded
                "started": r.finished_at - spent,
            },
        )
        row["inferred"] += r.usage.prompt_tokens + r.usage.completion_tokens
        row["decoded"] += r.usage.completion_tokens
    return list(out.values())


def _threads_text(trained: Sequence[dict[str, float]]) -> str:
    """The torch threads the timed tasks computed with, as the records give them."""
    threads = sorted({int(t["threads"]) for t in trained if t["threads"]})
    unknown = sum(1 for t in trained if not t["threads"])
    if not threads:
        return "torch threads not recorded"
    named = " or ".join(f"{n} torch thread{'s' if n > 1 else ''}" for n in threads)
    return named + (f"; {unknown} tasks unrecorded" if unknown else "")


def cost_model(
    runs: dict[str, list[Record]],
    since: float,
    all_cells: Sequence[int],
    tflops: float,
    mfu: float,
    step_ms: float,
    token_ms: float,
    max_length: int = 2048,
) -> None:
    """Training: seconds per step against tokens per step, and tokens per step against
    cells, capped at ``max_length`` (longer sequences lose demonstrations); the rest of
    a task's time (losses, inference) and its inference tokens against cells; peak
    memory against tokens per step. Projected over ``all_cells``."""
    trained = [
        t for n in ("base-ttt", "ft-ttt") for t in _task_cost(runs.get(n) or [])
        if t["steps"] and t["started"] >= since
    ]  # fmt: skip
    print("## Cost model\n")
    if len(trained) < 3:
        print("fewer than 3 timed TTT tasks so far\n")
        return
    cells = np.array([t["cells"] for t in trained])
    steps = np.array([t["steps"] for t in trained])
    per_step = np.array([t["trained"] for t in trained]) / steps
    step_s = stats.linregress(per_step, np.array([t["train"] for t in trained]) / steps)
    length = stats.linregress(cells, per_step)
    rest = stats.linregress(cells, np.array([t["seconds"] - t["train"] for t in trained]))
    inferred = stats.linregress(cells, np.array([t["inferred"] for t in trained]))
    memory = stats.linregress(per_step, np.array([t["peak"] for t in trained]))
    decoded = stats.linregress(cells, np.array([t["decoded"] for t in trained]))

    total = np.array(all_cells, dtype=float)
    n_steps = float(np.median(steps))
    tokens = np.minimum(max_length, length.intercept + length.slope * total)
    seconds = n_steps * (step_s.intercept + step_s.slope * tokens)
    seconds += rest.intercept + rest.slope * total
    infer_tokens = inferred.intercept + inferred.slope * total
    peak = memory.intercept + memory.slope * tokens
    train_flops = 6 * PARAMS * float(np.sum(n_steps * tokens))
    infer_flops = 2 * PARAMS * float(np.sum(infer_tokens))
    gpu_hours = (train_flops + infer_flops) / (tflops * 1e12 * mfu) / 3600
    n_decoded = float(np.sum(decoded.intercept + decoded.slope * total))
    latency_hours = (n_steps * len(total) * step_ms + n_decoded * token_ms) / 1000 / 3600
    print(
        f"From {len(trained)} timed TTT tasks ({cells.min():.0f}-{cells.max():.0f} "
        f"cells, {per_step.min():.0f}-{per_step.max():.0f} tokens per training sequence), "
        "least squares:\n"
    )
    print(
        f"- seconds per training step = {step_s.intercept:.2f} + {step_s.slope * 1000:.2f} "
        f"per 1,000 tokens (r^2 {step_s.rvalue**2:.2f})"
    )
    print(
        f"- tokens per training sequence = {length.intercept:.0f} + {length.slope:.2f} x "
        f"cells (r^2 {length.rvalue**2:.2f}), at most {max_length}"
    )
    print(
        f"- seconds outside training (held-out losses, inference) = {rest.intercept:.0f} + "
        f"{rest.slope:.3f} x cells (r^2 {rest.rvalue**2:.2f}); tokens of inference = "
        f"{inferred.intercept:.0f} + {inferred.slope:.1f} x cells"
    )
    print(
        f"- peak MB = {memory.intercept:.0f} + {memory.slope:.2f} x tokens per training "
        f"sequence (r^2 {memory.rvalue**2:.2f})"
    )
    print(
        f"\nThe whole evaluation set ({len(total)} tasks, {total.min():.0f}-{total.max():.0f} "
        f"cells, median {np.median(total):.0f}) at {n_steps:.0f} steps a task, by the same "
        f"lines (an extrapolation past {cells.max():.0f} cells):\n"
    )
    print(
        f"- this machine ({_threads_text(trained)}): {float(np.sum(seconds)) / 3600:.0f} hours "
        f"({float(np.median(seconds)) / 60:.0f} minutes for the median task); peak memory "
        f"up to {float(peak.max()) / 1024:.1f} GB"
    )
    print(
        f"- one GPU: {gpu_hours * 60:.0f} minutes of compute, assuming {tflops:.0f} TFLOP/s "
        f"peak at {mfu:.0%} utilisation, 6 FLOPs per parameter per trained token and 2 per "
        f"token of inference ({PARAMS / 1e6:.0f}M parameters; "
        f"{float(np.sum(n_steps * tokens) + np.sum(infer_tokens)) / 1e6:.1f}M tokens). "
        f"Batches of one sequence rarely reach that utilisation, and the "
        f"{n_steps * len(total):,.0f} optimiser steps run one after another per task, so "
        "this is a lower bound"
    )
    print(
        f"- one GPU, one pass at a time: {latency_hours * 60:.0f} minutes, assuming "
        f"{step_ms:.0f} ms per optimiser step and {token_ms:.0f} ms per decoded token "
        f"({n_steps * len(total):,.0f} steps, {n_decoded / 1e6:.2f}M tokens decoded one "
        "after another). These two are assumptions, not measurements: a 0.5B model's "
        "passes with batch one are bound by kernel launches, not FLOPs"
    )
    print()
    check = [t for t in _task_cost(runs.get("arc2-ttt") or []) if t["steps"]]
    if check:
        print(
            f"Out of sample: the {len(check)} ARC-AGI-2 tasks with TTT "
            f"({min(t['cells'] for t in check):.0f}-{max(t['cells'] for t in check):.0f} "
            f"cells, {_threads_text(check)}), measured against the lines above:\n"
        )
        print("| cells | tokens per step (line) | s per step (line, 1 thread) | peak MB (line) |")
        print("|---|---|---|---|")
        for t in sorted(check, key=lambda t: t["cells"]):
            n = t["trained"] / t["steps"]
            fit_n = min(max_length, length.intercept + length.slope * t["cells"])
            print(
                f"| {t['cells']:.0f} | {n:.0f} ({fit_n:.0f}) | "
                f"{t['train'] / t['steps']:.1f} ({step_s.intercept + step_s.slope * n:.1f}) | "
                f"{t['peak']:.0f} ({memory.intercept + memory.slope * n:.0f}) |"
            )
        print()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="the folder of bench/arc_eval.sh's stores")
    ap.add_argument("--best", default="ft", help="the configuration ablated: ft or base")
    ap.add_argument(
        "--timed-from", help="UTC time (ISO): time only the tasks that started after it"
    )
    ap.add_argument(
        "--gpu-tflops", type=float, default=989.0,
        help="the GPU's peak dense bf16 TFLOP/s (default 989: NVIDIA's H100 SXM datasheet)",
    )  # fmt: skip
    ap.add_argument("--gpu-utilisation", type=float, default=0.3, help="of that peak (0.3)")
    ap.add_argument(
        "--gpu-step-ms", type=float, default=50.0,
        help="assumed ms per training step on the GPU, launch-bound (50)",
    )  # fmt: skip
    ap.add_argument(
        "--gpu-token-ms", type=float, default=15.0,
        help="assumed ms per decoded token on the GPU, batch one (15)",
    )  # fmt: skip
    args = ap.parse_args(argv)
    names = [
        *FOUR.values(),
        *(
            f"{args.best}-ttt-{k}"
            for k in [*TRAINING_ABLATIONS, "identity", "likelihood", "colours4"]
        ),
    ]
    names += ["arc2-vote", "arc2-ttt"]
    found = {n: recs for n in names if (recs := load(args.out / f"{n}.db")) is not None}
    runs = {n: recs for n, recs in found.items() if recs}  # a store with no task done yet
    if not runs:
        print(f"no stores with records in {args.out}", file=sys.stderr)
        return 1
    print(f"stores: {', '.join(sorted(runs))}\n")
    if empty := sorted(set(found) - set(runs)):
        print(f"no record yet in: {', '.join(empty)}\n")
    since = 0.0
    if args.timed_from:
        since = datetime.fromisoformat(args.timed_from).replace(tzinfo=UTC).timestamp()
    four_way(runs)
    ablations(runs, args.best)
    per_task(runs)
    arc2(runs)
    cost_model(
        runs,
        since,
        _eval_cells(),
        args.gpu_tflops,
        args.gpu_utilisation,
        args.gpu_step_ms,
        args.gpu_token_ms,
    )
    return 0


def _eval_cells() -> list[int]:
    from ponder.tasks.arc import load_fewshot

    return [t.cells for t in load_fewshot("arc-eval")]


if __name__ == "__main__":
    raise SystemExit(main())
