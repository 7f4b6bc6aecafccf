"""``ponder export`` and ``ponder import``: an eval store as JSON lines, and back."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ponder.core.errors import ConfigError

__all__ = ["COMMANDS", "add_parser", "cmd_export", "cmd_import"]


def add_parser(subparsers: Any) -> None:
    exp = subparsers.add_parser(
        "export", help="write an eval store as JSON lines (.gz compresses) to share or keep"
    )
    exp.add_argument("store", metavar="RUN.db")
    exp.add_argument("out", metavar="OUT.jsonl[.gz]")
    exp.add_argument(
        "--include-errors", action="store_true", help="keep records of failed problems too"
    )
    exp.add_argument(
        "--exclude",
        metavar="IDS.txt",
        help="leave out these problems (a file of problem ids, one per line), e.g. to fit "
        "a verifier on a bank's other problems",
    )
    imp = subparsers.add_parser(
        "import",
        help="add an exported run's records to an eval store (new, or the same run: "
        "only missing records are added)",
    )
    imp.add_argument("archive", metavar="IN.jsonl[.gz]")
    imp.add_argument("store", metavar="RUN.db")


def cmd_export(args: argparse.Namespace) -> int:
    from ponder.runs.archive import export_store

    exclude: set[str] = set()
    if args.exclude:
        try:
            text = Path(args.exclude).read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"cannot read --exclude {args.exclude}: {e}") from e
        exclude = {line.strip() for line in text.splitlines() if line.strip()}
    count = export_store(args.store, args.out, include_errors=args.include_errors, exclude=exclude)
    left = f", {len(exclude)} problems left out" if exclude else ""
    print(f"wrote {count} records to {args.out}{left}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from ponder.runs.archive import import_store

    summary = import_store(args.archive, args.store)
    print(f"read {summary.read} records, added {summary.added} to {args.store}")
    return 0


COMMANDS = {"export": cmd_export, "import": cmd_import}
