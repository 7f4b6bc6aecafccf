"""The documentation site: it builds with warnings as errors, its CLI reference covers the
parsers, its API page covers the public API, and the README's links lead somewhere."""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import ponder
from ponder.cli import build_parser
from ponder.strategies import strategy_names

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _hook(name: str) -> ModuleType:
    """A module of docs/hooks, loaded by path (the hooks are build code, not a package)."""
    path = DOCS / "hooks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_docs_hook_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _all_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every parser in the tree, found here by argparse's own structures (not the hook's
    walk), so the test checks the walk rather than repeating it."""
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += _all_parsers(sub)
    return found


def test_site_builds_strictly(tmp_path: Path) -> None:
    reason = "the docs extra is not installed (pip install -e '.[docs]')"
    for module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        pytest.importorskip(module, reason=reason)
    site = tmp_path / "site"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH")) if p)
    out = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    assert "WARNING" not in out.stderr, out.stderr[-4000:]
    for page in ("index.html", "quickstart/index.html", "benchmarks/index.html"):
        assert (site / page).is_file(), page
    cli = (site / "reference/cli/index.html").read_text(encoding="utf-8")
    assert 'id="ponder-bank-stop"' in cli
    api = (site / "reference/api/index.html").read_text(encoding="utf-8")
    # mkdocstrings rendered the docstrings, not just the page's own prose
    assert 'id="ponder.answer_question"' in api
    # answer_question's docstring, its double backticks rendered as code
    assert "Solve <code>question</code> with <code>strategy</code>" in api
    # and its Sphinx roles (docs/hooks/sphinx_roles.py)
    assert ":class:" not in api and ":func:" not in api


def test_cli_reference_names_every_subcommand_and_flag() -> None:
    page = _hook("cli_reference").render_cli_reference()
    parsers = _all_parsers(build_parser())
    assert len(parsers) > 20  # the tree was walked, subcommands of subcommands included
    headings = set(re.findall(r"^#+ (.+?) \{#([\w-]+)\}$", page, flags=re.MULTILINE))
    for parser in parsers:
        assert (parser.prog, parser.prog.replace(" ", "-")) in headings, parser.prog
        section = page.split(f"{{#{parser.prog.replace(' ', '-')}}}", 1)[1]
        for action in parser._actions:
            for flag in action.option_strings:
                assert flag in section, f"{parser.prog} {flag}"


def test_cli_reference_lists_every_strategy() -> None:
    page = _hook("cli_reference").render_cli_reference()
    table = page.split("{#strategies}", 1)[1]
    for name in strategy_names():
        assert f"| `{name}` |" in table, name


def test_cli_reference_escapes_markdown() -> None:
    text = _hook("cli_reference")._text
    assert text("a | b *c* <d> ``x|y`` `z`") == r"a \| b \*c\* &lt;d&gt; `x|y` `z`"
    assert text("  two\n  lines ") == "two lines"


def test_api_page_documents_the_public_api() -> None:
    page = (DOCS / "reference" / "api.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^::: ponder\.(\w+)$", page, flags=re.MULTILINE))
    missing = [n for n in ponder.__all__ if n != "__version__" and n not in documented]
    assert not missing, f"add to docs/reference/api.md: {missing}"
    for protocol in ("core.context.Scorer", "core.task.Task"):
        assert f"::: ponder.{protocol}\n" in page


def test_readme_links_exist() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    local = [t for t in targets if "://" not in t]
    assert any(t.startswith("docs/") for t in local)
    for target in local:
        assert (ROOT / target).exists(), target
