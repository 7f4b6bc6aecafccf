"""``ponder strategies``: list the strategies and their options."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["COMMANDS", "add_parser", "cmd_strategies"]


def add_parser(subparsers: Any) -> None:
    subparsers.add_parser("strategies", help="list strategies and their options")


def cmd_strategies(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from ponder.strategies import strategy_class, strategy_names

    for name in strategy_names():
        cls = strategy_class(name)
        opts = ", ".join(f"{f.name}={f.default!r}" for f in fields(cls))
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        print(f"{name:<21} {opts}  {doc}")
    return 0


COMMANDS = {"strategies": cmd_strategies}
