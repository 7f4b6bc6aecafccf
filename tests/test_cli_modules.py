"""The command line's seam: each subcommand module adds its parsers and names the
functions that run them, and ``ponder.cli`` assembles the modules."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

import ponder.cli as cli


def subcommands(parser: argparse.ArgumentParser) -> list[str]:
    (action,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return list(action.choices)


@pytest.mark.parametrize("module", cli.SUBCOMMANDS, ids=lambda m: m.__name__)
def test_a_module_adds_the_subcommands_it_runs(module) -> None:
    parser = argparse.ArgumentParser(prog="ponder")
    module.add_parser(parser.add_subparsers(dest="command", required=True))
    assert subcommands(parser) == list(module.COMMANDS)
    assert all(callable(command) for command in module.COMMANDS.values())


def test_every_subcommand_of_the_parser_has_one_command() -> None:
    names = [name for module in cli.SUBCOMMANDS for name in module.COMMANDS]
    assert len(names) == len(set(names)), "two modules claim one subcommand"
    assert subcommands(cli.build_parser()) == names == list(cli.COMMANDS)


def test_main_dispatches_to_the_module_named_by_the_subcommand(monkeypatch, capsys) -> None:
    seen = []
    monkeypatch.setitem(cli.COMMANDS, "export", lambda args: seen.append(args) or 7)
    assert cli.main(["export", "run.db", "out.jsonl"]) == 7
    assert seen[0].store == "run.db" and seen[0].out == "out.jsonl"


def test_building_the_parser_loads_no_command_code() -> None:
    """The parsers come from every module at start; what the commands run (training,
    analysis, the server) is imported only when one runs."""
    heavy = ("torch", "transformers", "uvicorn", "ray", "ponder.ttt", "ponder.analysis")
    code = (
        "import sys\nfrom ponder.cli import build_parser\nbuild_parser()\n"
        f"print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == ""
