"""``ponder bank features``: token-confidence features for a bank's samples."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from ponder.cli import args as cli_args
from ponder.cli.args import add_engine_args
from ponder.verifiers.features import DEFAULT_TOP_K

__all__ = ["COMMANDS", "add_parser", "cmd_bank"]


def add_parser(subparsers: Any) -> None:
    bank = subparsers.add_parser("bank", help="work on a bank of samples (a sampling run's store)")
    actions = bank.add_subparsers(dest="bank_command", required=True, metavar="ACTION")
    feat = actions.add_parser(
        "features",
        help="give each sample token-confidence features (DeepConf's group, tail and "
        "bottom-10%% confidences, self-certainty, mean logprob) by prefilling it on the "
        "bank's model; resumable",
    )
    feat.add_argument("bank", metavar="BANK.db")
    feat.add_argument(
        "--data",
        help="the bank's task data (default: the file the bank recorded reading, when it "
        "is still there, else the task's default)",
    )
    feat.add_argument(
        "--top-k",
        type=int,
        default=DEFAULT_TOP_K,
        help=f"alternatives per token the features read (default {DEFAULT_TOP_K})",
    )
    feat.add_argument(
        "--batch",
        type=int,
        default=4,
        help="samples prefilled together, in shared decode calls (the embedded engine's "
        "--n-parallel; default 4); on a CPU the pass is compute-bound and gains little "
        "from more (bench/bank_features.py)",
    )
    feat.add_argument("--limit", type=int, help="the bank's first K problems only")
    feat.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_engine_args(feat)


def cmd_bank(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ponder.analysis.bank_features import compute_bank_features
    from ponder.core.errors import ConfigError
    from ponder.runs.store import RunStore
    from ponder.tasks import make_task

    if args.batch < 1:
        raise ConfigError(f"--batch must be >= 1, got {args.batch}")
    with RunStore(args.bank, create=False) as store:
        config = store.config() or {}
        records = store.records(include_errors=False)[: args.limit]
        featured = store.featured_samples()
    if "task" not in config:
        raise ConfigError(f"{args.bank} holds no run (no configuration)")
    task = make_task(str(config["task"]), data=args.data or _recorded_data(config))
    args.n_parallel = args.n_parallel or args.batch
    engine = cli_args.engine(args)
    samples = [(r.problem_id, i) for r in records for i in range(len(r.candidates))]
    had = sum(1 for sample in samples if sample in featured)

    async def go() -> Any:
        with tqdm(total=len(samples), initial=had, unit="sample", disable=args.no_progress) as bar:
            try:
                return await compute_bank_features(
                    args.bank,
                    engine,
                    task,
                    top_k=args.top_k,
                    limit=args.limit,
                    on_problem=bar.update,
                )
            finally:
                await engine.aclose()

    done = asyncio.run(go())
    print(done.line())
    return 0


def _recorded_data(config: dict[str, Any]) -> str | None:
    """The data file the bank recorded reading, when it is one and is still there (its
    source may be a hub name, or "problems" for a task with its own)."""
    source = config.get("data_source")
    return str(source) if source and Path(str(source)).exists() else None


COMMANDS = {"bank": cmd_bank}
