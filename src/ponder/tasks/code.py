"""Python programs in model output: find them, normalise them, and put them together with
the problem they answer.

A code problem carries its spec in ``Problem.meta``: ``prompt`` (the code the model
completes: imports, helpers and the function's signature and docstring),
``entry_point`` (the function's name) and, for grading only, ``test`` (hidden tests
defining ``check(candidate)``).

The answer extracted from a solution is the program it wrote, normalised so that two
candidates vote together exactly when they wrote the same code: parsed and printed back
by ``ast`` (comments, blank lines and quoting no longer differ), docstrings removed, and
only definitions kept at the top level (imports, functions, classes, assignments; the
example calls, prints and ``if __name__ == "__main__"`` blocks a model adds are
dropped, so running a program only defines it). Two shapes of answer exist:

- a program (column 0): the whole function, with its imports and helpers when written;
- a body (every line indented by four spaces): the statements that continue the
  prompt's function, as a completion model writes them.

``assemble`` makes either into a runnable program: the prompt first (its imports and
helpers), then the answer, so a program's definition replaces the prompt's stub and a
body completes it.
"""

from __future__ import annotations

import ast
import re
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ponder.core.errors import ConfigError
from ponder.core.types import Problem

__all__ = [
    "CodeSpec",
    "assemble",
    "code_spec",
    "extract_code",
    "hidden_cases",
    "is_body",
    "normalize_program",
]

PYTHON_FENCES = frozenset({"", "python", "python3", "py", "py3"})
# a fence's language, then everything to the closing fence (or the end: a cut-off answer)
_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_CODE_START = re.compile(r"^(?:async\s+def|def|class|from|import)\s|^@\w")
_KEEP = (
    ast.Import,
    ast.ImportFrom,
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.Assign,
    ast.AnnAssign,
)
_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_INDENT = "    "


@dataclass(frozen=True)
class CodeSpec:
    """What a code problem gives: the prompt to complete, the function's name, and the
    hidden tests (empty when the problem has none)."""

    prompt: str
    entry_point: str
    test: str = ""


def code_spec(problem: Problem) -> CodeSpec:
    """The code spec in ``problem.meta``; ``ConfigError`` for a problem that is not code."""
    meta: Mapping[str, Any] = problem.meta
    prompt, entry = meta.get("prompt"), meta.get("entry_point")
    if not isinstance(prompt, str) or not isinstance(entry, str) or not entry.isidentifier():
        raise ConfigError(
            f"problem {problem.id!r} is not a code problem (its meta has no 'prompt' and "
            "'entry_point'); code verifiers and strategies need a code task such as humaneval"
        )
    test = meta.get("test", "")
    return CodeSpec(prompt, entry, test if isinstance(test, str) else "")


def is_body(answer: str) -> bool:
    """Whether an extracted answer is a body continuing the prompt's function."""
    return answer.startswith(_INDENT)


def assemble(prompt: str, answer: str) -> str:
    """The program an answer makes with its prompt (see the module doc)."""
    if is_body(answer):
        return f"{prompt.rstrip()}\n{answer}\n"
    return f"{_runnable_prompt(prompt)}\n\n{answer}\n"


def _runnable_prompt(prompt: str) -> str:
    """The prompt as code that runs: a stub without a body gets ``pass``; a prompt that
    will not parse at all is left out (the answer must then stand alone)."""
    for candidate in (prompt.rstrip(), f"{prompt.rstrip()}\n{_INDENT}pass"):
        if _parse(candidate) is not None:
            return candidate
    return ""


def _parse(source: str) -> ast.Module | None:
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError, RecursionError):
        # not Python (or null bytes, or nested past the parser's limits)
        return None


def _strip_docstrings(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        if isinstance(node, _DEFS) and node.body:
            first = node.body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                node.body = node.body[1:] or [ast.Pass()]


def _unparse(tree: ast.AST) -> str | None:
    try:
        return ast.unparse(tree)
    except (ValueError, RecursionError):
        return None


def normalize_program(source: str) -> str | None:
    """``source`` as a normalised program (see the module doc), or None when it is not
    Python or defines no function or class."""
    tree = _parse(source)
    if tree is None:
        return None
    tree.body = [s for s in tree.body if isinstance(s, _KEEP)]
    if not any(isinstance(s, _DEFS) for s in tree.body):
        return None
    _strip_docstrings(tree)
    return _unparse(tree)


def _normalize_body(source: str) -> str | None:
    """Statements continuing a function (indented or not) as a normalised body, or None."""
    lines = source.splitlines()
    # a continuation ends where code goes back to column 0 (the next definition, tests)
    kept = [lines[0]]
    for line in lines[1:]:
        if line.strip() and not line[0].isspace():
            break
        kept.append(line)
    wrapped = "def _body():\n" + textwrap.indent(textwrap.dedent("\n".join(kept)), _INDENT)
    tree = _parse(wrapped)
    if tree is None or len(tree.body) != 1 or not isinstance(tree.body[0], ast.FunctionDef):
        return None
    _strip_docstrings(tree)
    text = _unparse(ast.Module(body=tree.body[0].body, type_ignores=[]))
    if text is None or text.strip() == "pass":
        return None
    return textwrap.indent(text, _INDENT, lambda _line: True)


def _returns_at_top(tree: ast.Module) -> bool:
    """A flush-left body: ``return`` outside any function."""
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Return):
            return True
        if not isinstance(node, (*_DEFS, ast.Lambda)):
            stack.extend(ast.iter_child_nodes(node))
    return False


def _code_from(source: str, *, raw: bool) -> str | None:
    """The program or body in ``source``: a fenced block's contents, or (``raw``) a whole
    reply, where code starts at its first definition or import and may be followed by
    prose (the longest run of lines that parses is taken)."""
    lines = source.splitlines()
    first = next((line for line in lines if line.strip()), None)
    if first is None:
        return None
    if first[0].isspace():
        return _normalize_body("\n".join(lines[lines.index(first) :]))
    start = 0
    if raw:
        found = next((i for i, line in enumerate(lines) if _CODE_START.match(line)), None)
        if found is None:
            return None
        start = found
    for end in range(len(lines), start, -1):
        program = normalize_program("\n".join(lines[start:end]))
        if program is not None:
            return program
    tree = _parse(source)
    if not raw and tree is not None and _returns_at_top(tree):
        return _normalize_body(source)
    return None


def extract_code(text: str) -> str | None:
    """The normalised program or body a model's reply holds, or None.

    Fenced blocks (python, py or no language) come first: the first that defines a
    function or class wins, else the first body; a block cut off by the token limit
    counts up to the end. Without a Python fence the reply itself is read: a reply that
    starts indented is a body continuing the prompt; otherwise the code from its first
    definition or import. Text that is not code gives None, never an error.
    """
    blocks = [code for lang, code in _FENCE.findall(text) if lang.lower() in PYTHON_FENCES]
    if blocks:
        found = [code for block in blocks if (code := _code_from(block, raw=False))]
        programs = [code for code in found if not is_body(code)]
        return next(iter(programs or found), None)
    return _code_from(text, raw=True)


def hidden_cases(spec: CodeSpec) -> list[dict[str, Any]]:
    """The hidden tests as cases: define ``check``, then call it on the entry point."""
    if not spec.test.strip():
        raise ValueError(f"the problem of {spec.entry_point!r} has no hidden tests")
    return [
        {"source": spec.test, "mode": "exec", "expected": None, "compare": None},
        {"source": f"check({spec.entry_point})", "mode": "exec", "expected": None,
         "compare": None},
    ]  # fmt: skip
