"""The command-line reference, generated from ponder's own argparse parsers.

An MkDocs hook: at every build it walks the parser tree of ``ponder.cli.build_parser()``
and writes ``reference/cli.md`` (every subcommand's description, usage and arguments,
grouped as ``--help`` groups them) and the strategy registry's options, so the page says
what the code of this checkout accepts and cannot drift from it. ``render_cli_reference``
is the page; ``command_parsers`` is the walk (the tests compare the two).
"""

from __future__ import annotations

import argparse
import html
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

PAGE = "reference/cli.md"
# usage lines wrap at this width whatever the terminal the build runs in
WIDTH = "100"
_CODE = re.compile(r"``(.+?)``|`([^`]+)`")
_MARKDOWN_SPECIALS = re.compile(r"([\\`*_\[\]|#])")


def command_parsers(
    parser: argparse.ArgumentParser,
) -> Iterator[tuple[argparse.ArgumentParser, str]]:
    """Every parser under ``parser`` (itself first), depth first in the order ``--help``
    lists them, each with the one-line help its parent gives it (empty for the root)."""
    yield from _walk(parser, "")


def _walk(
    parser: argparse.ArgumentParser, summary: str
) -> Iterator[tuple[argparse.ArgumentParser, str]]:
    yield parser, summary
    for sub, help_text in _subcommands(parser):
        yield from _walk(sub, help_text)


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[argparse.ArgumentParser, str]]:
    out: list[tuple[argparse.ArgumentParser, str]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            out.extend((sub, helps.get(name, "")) for name, sub in action.choices.items())
    return out


def anchor(parser: argparse.ArgumentParser) -> str:
    """The heading id of a command's section: ``ponder bank stop`` -> ``ponder-bank-stop``."""
    return parser.prog.replace(" ", "-")


def _text(s: str) -> str:
    """Help text or a docstring's line as inline Markdown: one line, with ``code`` (RST)
    and `code` (Markdown) as code spans and everything else escaped."""
    one_line = " ".join(s.split())
    out: list[str] = []
    last = 0
    for m in _CODE.finditer(one_line):
        out.append(_escape(one_line[last : m.start()]))
        out.append(_code(m.group(1) or m.group(2)))
        last = m.end()
    out.append(_escape(one_line[last:]))
    return "".join(out)


def _escape(s: str) -> str:
    return _MARKDOWN_SPECIALS.sub(r"\\\1", html.escape(s, quote=False))


def _code(s: str) -> str:
    """A code span that holds any text (a backtick fence longer than any run inside)."""
    longest = max((len(m) for m in re.findall(r"`+", s)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if s.startswith("`") or s.endswith("`") else ""
    return f"{fence}{pad}{s}{pad}{fence}"


def _block(s: str) -> list[str]:
    return ["```text", s.rstrip("\n"), "```", ""]


def _arguments(parser: argparse.ArgumentParser) -> list[str]:
    formatter = parser._get_formatter()
    lines: list[str] = []
    for group in parser._action_groups:
        actions = [
            a
            for a in group._group_actions
            if a.help != argparse.SUPPRESS and not isinstance(a, argparse._SubParsersAction)
        ]
        if not actions:
            continue
        lines += [f"**{_text(group.title or 'arguments')}**", ""]
        lines += ["| argument | what it does |", "| --- | --- |"]
        for action in actions:
            invocation = formatter._format_action_invocation(action)
            help_text = formatter._expand_help(action) if action.help else ""
            # Python-Markdown's tables leave a pipe inside a code span alone
            lines.append(f"| {_code(invocation)} | {_text(help_text)} |")
        lines.append("")
    return lines


def _section(parser: argparse.ArgumentParser, summary: str) -> list[str]:
    # the root and its commands are sections of the page, nested commands subsections
    heading = "#" * max(2, parser.prog.count(" ") + 1)
    lines = [f"{heading} {parser.prog} {{#{anchor(parser)}}}", ""]
    raw = isinstance(parser._get_formatter(), argparse.RawDescriptionHelpFormatter)
    # the parent's one-line help, unless the command describes itself at more length
    if parser.description:
        lines += _prose(parser.description, raw)
    elif summary:
        lines += [_text(summary[:1].upper() + summary[1:]) + ".", ""]
    lines += _block(parser.format_usage())
    subs = _subcommands(parser)
    if subs:
        lines += ["**subcommands**", ""]
        lines += [f"- [`{sub.prog}`](#{anchor(sub)}): {_text(h)}" for sub, h in subs]
        lines.append("")
    lines += _arguments(parser)
    if parser.epilog:
        lines += _prose(parser.epilog, raw)
    return lines


def _prose(text: str, raw: bool) -> list[str]:
    """A description or epilog: as laid out (a text block) when the parser keeps its
    layout and the text has indented lines (examples, tables), else a paragraph."""
    if raw and any(line[:1].isspace() for line in text.splitlines()[1:]):
        return _block(text)
    return [_text(text), ""]


def _strategies() -> list[str]:
    from ponder.strategies import strategy_class, strategy_names

    lines = [
        "## Strategies and their options {#strategies}",
        "",
        "What `ponder strategies` prints, from the strategy registry: each strategy's "
        "fields are its `-o KEY=VALUE` options (and the `extra_body.ponder` options of "
        "`ponder serve`), shown with their defaults.",
        "",
        "| strategy | options (defaults) | what it does |",
        "| --- | --- | --- |",
    ]
    for name in strategy_names():
        cls = strategy_class(name)
        options = ", ".join(_code(f"{f.name}={f.default!r}") for f in fields(cls))
        doc = (cls.__doc__ or "").strip()
        first = doc.split("\n\n")[0] if doc else ""
        lines.append(f"| `{name}` | {options} | {_text(first)} |")
    lines.append("")
    return lines


def render_cli_reference() -> str:
    """The CLI reference page, from this checkout's parsers and strategy registry."""
    from ponder.cli import build_parser

    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH
    try:
        parser = build_parser()
        lines = [
            "# Command-line reference",
            "",
            "This page is generated from ponder's argparse parsers each time the site is "
            "built, so it lists exactly the subcommands and flags of this version; "
            "`ponder COMMAND --help` prints the same text.",
            "",
        ]
        for sub, summary in command_parsers(parser):
            lines += _section(sub, summary)
        lines += _strategies()
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous
    return "\n".join(lines)


def on_config(config: Any) -> Any:
    # the reference describes this checkout's code, not whichever ponder is installed
    src = str(Path(config.config_file_path).parent / "src")
    if src not in sys.path:
        sys.path.insert(0, src)
    return config


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    files.append(File.generated(config, PAGE, content=render_cli_reference()))
    return files
