"""The command line: ``ponder SUBCOMMAND``."""

from ponder.cli.commands import main

__all__ = ["main"]
