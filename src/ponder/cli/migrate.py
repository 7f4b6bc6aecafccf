"""``ponder migrate``: record the data, model and prompts an older run or bank ran on."""

from __future__ import annotations

import argparse
from typing import Any

from ponder.cli.args import add_jsonl_args, jsonl_fields

__all__ = ["COMMANDS", "add_parser", "cmd_migrate"]


def add_parser(subparsers: Any) -> None:
    mig = subparsers.add_parser(
        "migrate",
        help="record which data, model and prompts an older run or bank ran on (its data "
        "is read to fingerprint each problem; GSM8K ids get their split)",
        description="Bring a run store or an exported bank written before ponder recorded "
        "its data up to date: each record is matched to its problem in --data by question "
        "text and renamed to that problem's id; the data's split and sha256, every "
        "problem's question and prompt sha256, and the model's sha256 are recorded. "
        "Nothing else changes. Resuming or replaying such a run is refused until then.",
    )
    mig.add_argument("run", metavar="RUN.db|BANK.jsonl[.gz]")
    mig.add_argument("--task", required=True, help="the run's task")
    mig.add_argument("--data", help="the data the run ran on (as for ponder eval)")
    add_jsonl_args(mig)
    mig.add_argument("--out", help="write here (the same form) instead of in place")
    mig.add_argument(
        "--model-file",
        help="the GGUF file the run's model was, to hash (default: the bundled model of "
        "the run's model name, whose sha256 the catalogue knows)",
    )


def cmd_migrate(args: argparse.Namespace) -> int:
    from ponder.engines.models import file_sha256
    from ponder.runs.migrate import migrate_run
    from ponder.tasks import make_task

    task = make_task(args.task, data=args.data, **jsonl_fields(args.task, args))
    # without a file, the catalogue's sha256 of the run's bundled model
    sha = file_sha256(args.model_file) if args.model_file else None
    summary = migrate_run(args.run, task, model_sha256=sha, out=args.out)
    print(
        f"migrated {summary.records} records ({summary.renamed} renamed) of {args.run} "
        f"onto {summary.data['task']} split {summary.data['split']} "
        f"(data sha256 {summary.data['sha256'][:12]}, "
        f"model sha256 {summary.model_sha256[:12]})" + (f" into {args.out}" if args.out else "")
    )
    return 0


COMMANDS = {"migrate": cmd_migrate}
