"""The strategy registry finds every strategy by importing the package's modules: a
strategy is registered in the module that defines it, one a module, and no list names
them."""

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import ponder.strategies
from ponder.core.errors import ConfigError
from ponder.strategies import strategy_class, strategy_names

PACKAGE = Path(ponder.strategies.__file__).parent


def registered_in(path: Path) -> list[str]:
    """The names a module registers with ``@register("name")``, read from its source."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ClassDef):
            for deco in node.decorator_list:
                if (
                    isinstance(deco, ast.Call)
                    and isinstance(deco.func, ast.Name)
                    and deco.func.id == "register"
                ):
                    (arg,) = deco.args
                    assert isinstance(arg, ast.Constant)
                    names.append(arg.value)
    return names


def module_of(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_every_module_that_registers_a_strategy_is_found():
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        names = registered_in(path)
        assert len(names) <= 1, f"{path} registers {names}: one strategy a module"
        if names:
            found[names[0]] = module_of(path)
    assert len(found) >= 19  # what the package held when each strategy got its module
    assert sorted(found) == strategy_names()
    for name, module in found.items():
        assert strategy_class(name).__module__ == module


def run_fresh(code: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter with this test's import path."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": ":".join(p for p in sys.path if p)},
    )


def test_a_fresh_interpreter_that_imported_only_base_finds_every_strategy():
    out = run_fresh(
        """
        from ponder.strategies.base import strategy_names
        print(",".join(strategy_names()))
        """
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().split(",") == strategy_names()


PROBE = """
from dataclasses import dataclass

from ponder.strategies.base import register


@register("zz_probe")
@dataclass(frozen=True)
class Probe:
    \"\"\"A strategy no list names.\"\"\"

    n: int = 3
"""


def test_adding_a_strategy_is_adding_its_module(tmp_path):
    # a directory on the package's path is searched as the package directory is
    (tmp_path / "zz_probe.py").write_text(PROBE)
    out = run_fresh(
        f"""
        import ponder.strategies as package
        from ponder.strategies.base import make_strategy, strategy_names

        package.__path__.append({str(tmp_path)!r})
        print(",".join(strategy_names()))
        print(type(make_strategy("zz_probe", {{"n": 5}})).__module__)
        """
    )
    assert out.returncode == 0, out.stderr
    names, module = out.stdout.split()
    assert names.split(",") == sorted([*strategy_names(), "zz_probe"])
    assert module == "ponder.strategies.zz_probe"


def test_a_module_that_fails_to_import_is_an_error_not_a_missing_strategy(tmp_path):
    (tmp_path / "zz_broken.py").write_text("import ponder_no_such_module\n")
    out = run_fresh(
        f"""
        import ponder.strategies as package
        from ponder.strategies.base import strategy_names

        package.__path__.append({str(tmp_path)!r})
        strategy_names()
        """
    )
    assert out.returncode != 0
    assert "ModuleNotFoundError: No module named 'ponder_no_such_module'" in out.stderr


def test_an_unknown_name_still_lists_the_choices():
    with pytest.raises(ConfigError, match="choose from adaptive_consistency, beam_search"):
        strategy_class("no_such_strategy")
