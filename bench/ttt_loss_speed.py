"""Seconds per TTT training step with the vocabulary projection over every position (the
model's own ``labels=`` loss) against over the labelled positions only
(``ponder.ttt.train.labelled_loss``), side by side in one process on the same real
training sequences: the first leave-one-out example of each chosen ARC task, LoRA rank
8 on all linear modules, forward and backward alternating between the two paths.

    python bench/ttt_loss_speed.py --tasks arc-eval --order cells --pick 0 14 29 --steps 3
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any


def main(argv: list[str] | None = None) -> int:
    import torch
    from peft import LoraConfig, get_peft_model

    from ponder.ttt.data import training_examples
    from ponder.ttt.model import DTYPES, load_model
    from ponder.ttt.run import load_tasks
    from ponder.ttt.train import IGNORE, encode, labelled_loss

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--tasks", default="arc-eval")
    ap.add_argument("--order", choices=["file", "cells"], default="cells")
    ap.add_argument("--pick", type=int, nargs="+", default=[0, 14, 29], help="task indices")
    ap.add_argument("--dtype", choices=DTYPES, default="mixed")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per path and task")
    ap.add_argument("--threads", type=int)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    tasks = load_tasks(args.tasks, limit=max(args.pick) + 1, order=args.order)
    lm = load_model(args.model, dtype=args.dtype)
    config = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM")
    model = get_peft_model(lm.model, config)
    model.train()

    def full(ids: list[int], labels: list[int]) -> Any:
        out = model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels]))
        return out.loss

    def kept(ids: list[int], labels: list[int]) -> Any:
        return labelled_loss(model, ids, labels)

    paths = {"all positions": full, "labelled only": kept}
    print(
        f"{args.model}, {args.dtype}, {torch.get_num_threads()} torch threads, "
        f"{args.steps} timed steps per path (after one warm-up each)"
    )
    print("| task | tokens | labelled | all positions (s) | labelled only (s) | speed-up | loss |")
    print("|---|---|---|---|---|---|---|")
    ratios = []
    for index in args.pick:
        task = tasks[index]
        ids, labels = encode(lm, next(training_examples(task, seed=0)).segments, loss_on="outputs")
        labelled = sum(label != IGNORE for label in labels)
        times: dict[str, list[float]] = {name: [] for name in paths}
        losses: dict[str, float] = {}
        for step in range(args.steps + 1):
            for name, fn in paths.items():
                start = time.perf_counter()
                with lm.compute():
                    loss = fn(ids, labels)
                loss.backward()
                model.zero_grad()
                if step > 0:
                    times[name].append(time.perf_counter() - start)
                losses[name] = float(loss.detach())
        a, b = (statistics.median(times[name]) for name in paths)
        ratios.append(a / b)
        gap = abs(losses["all positions"] - losses["labelled only"])
        print(
            f"| {task.id} | {len(ids)} | {labelled / len(ids):.0%} | {a:.2f} | {b:.2f} "
            f"| {a / b:.2f}x | {losses['labelled only']:.4f} (gap {gap:.1e}) |",
            flush=True,
        )
    print(f"\nmedian speed-up over the tasks: {statistics.median(ratios):.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
