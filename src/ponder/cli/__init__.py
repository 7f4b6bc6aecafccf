"""The command line: ``ponder SUBCOMMAND``.

Each subcommand is a module here with ``add_parser(subparsers)`` and a ``COMMANDS``
mapping from its subcommand names to their functions; the argument groups they share
are in :mod:`ponder.cli.args`. A module imports what its command runs inside the
command, so building the parser loads none of it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from ponder.cli import (
    archive,
    bank,
    migrate,
    models,
    optimize,
    report,
    run,
    serve,
    strategies,
    ttt,
    verifier,
)
from ponder.cli import eval as eval_command
from ponder.core.errors import PonderError

__all__ = ["COMMANDS", "build_parser", "main"]

EPILOG = """examples:
  ponder run "A shirt costs $20 after a 20% discount. What was the price?" --strategy majority --n 8
  ponder eval --task gsm8k --data ../shared/data/gsm8k/test.jsonl --limit 50 \\
      --strategy majority --n 8 --out runs/gsm8k-maj8.db
  ponder report runs/gsm8k-maj8.db runs/gsm8k-greedy.db --out runs/report
  ponder optimize runs/cal-maj16.db runs/cal-beam4.db --out runs/policy.json --budgets 300,600
  ponder eval --task gsm8k --data ../shared/data/gsm8k/test.jsonl --limit 50 \\
      --strategy optimal:runs/policy.json --budget 600 --out runs/gsm8k-optimal600.db
  ponder run "What is 17*23?" --base-url http://127.0.0.1:8080/v1 --model my-model
  ponder run "What is 17*23?" --strategy beam_search --n 4 --width 2 --verifier judge:step
  ponder eval --task gsm8k --data ../shared/data/gsm8k/test.jsonl --limit 50 \\
      --strategy revise --n 4 -o chains=2 --out runs/gsm8k-revise4.db
  ponder eval --task gsm8k --data ../shared/data/gsm8k/test.jsonl --limit 50 \\
      --replay runs/gsm8k-maj8.db --strategy adaptive_consistency -o max_n=8 --out runs/ac8.db
  ponder eval --task gsm8k --data ../shared/data/gsm8k/test.jsonl --limit 50 \\
      --strategy pal --n 4 --out runs/gsm8k-pal4.db
  ponder eval --task gsm8k --data ../shared/data/gsm8k/test.jsonl --limit 50 \\
      --strategy probe_exit -o chunk=32 -o agree=3 --out runs/gsm8k-probe.db
  ponder report runs/gsm8k-greedy.db runs/gsm8k-probe.db --baseline runs/gsm8k-greedy.db \\
      --out runs/report
  ponder ttt --tasks arc-train --limit 30 --order cells --model qwen2.5-coder-0.5b \\
      --out runs/ttt-arc30.db
  ponder eval --task jsonl --data qa.jsonl --answer-type free --grader judge \\
      --strategy semantic_majority --n 8 -o cluster=embed --out runs/qa-sem8.db
  ponder eval --task humaneval --limit 20 --strategy behaviour_majority --n 8 \\
      --out runs/he-bm8.db
"""

# in the order ``ponder --help`` lists them
SUBCOMMANDS = (
    run,
    eval_command,
    report,
    optimize,
    archive,
    bank,
    migrate,
    models,
    strategies,
    verifier,
    ttt,
    serve,
)

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    name: command for module in SUBCOMMANDS for name, command in module.COMMANDS.items()
}


def build_parser() -> argparse.ArgumentParser:
    from ponder._version import __version__

    parser = argparse.ArgumentParser(
        prog="ponder",
        description="Test-time scaling of language models: sample, vote, verify, and "
        "measure what each token bought.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ponder {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "allow_unisolated_exec", False):
        from ponder.core.sandbox import allow_unisolated

        allow_unisolated()
    try:
        return COMMANDS[args.command](args)
    except PonderError as e:
        print(f"ponder: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ponder: interrupted; finished records are kept", file=sys.stderr)
        return 130
