"""The tests a code prompt shows: the examples in its function's docstring.

Two shapes are read, from the entry point's docstring as written in the source (or,
when the prompt does not parse, from the whole prompt):

- doctest: ``>>> expression`` followed by the printed result (``doctest``'s own
  parser); an example that prints nothing is a test only when it is a comparison
  ``>>> f(x) == y`` (it must be true), as prompts use it;
- inline: a line ``f(args) OP expected`` with OP one of ``==``, ``==>``, ``=>``, ``->``,
  ``➞``, ``→``, ``returns``, ``should return``, ``should be``, and ``f`` the entry
  point called with literal arguments only.

The expected value is kept as the source of a Python literal and compared by value
(floats to a relative 1e-6); a doctest result that is no literal (an object's repr) is
compared as text with the result's ``repr``, as doctest does. Examples whose expected
value is an expression (``fib(n) -> fib(n-1) + ...``) or whose call is not literal are
skipped. A prompt without examples has no visible tests.

``literal_calls`` finds calls of the entry point in any text: the test inputs a model
was asked to write.
"""

from __future__ import annotations

import ast
import doctest
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["CallTest", "as_cases", "literal_calls", "visible_tests"]

Compare = Literal["value", "repr"]
_ARROWS = re.compile(r"==>|==|=>|->|➞|→|\bshould return\b|\breturns\b|\bshould be\b")
_WORDS = {"true": "True", "false": "False", "none": "None", "null": "None"}


@dataclass(frozen=True)
class CallTest:
    """One call and what it should give. ``expected`` is a literal's source (``compare ==
    "value"``) or the expected ``repr`` text (``"repr"``); None for an input whose
    output is only observed (``compare`` is then None too)."""

    call: str
    expected: str | None = None
    compare: Compare | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {"call": self.call, "expected": self.expected, "compare": self.compare}


def _docstring(prompt: str, entry_point: str) -> str:
    """The entry point's docstring as written in the source, escapes unresolved (an
    example ``f("a\\nb")`` stays one line), or the whole prompt when there is none."""
    try:
        tree = ast.parse(prompt)
    except (SyntaxError, ValueError, RecursionError):
        return prompt  # a prompt that is not whole Python: read all of it
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == entry_point:
            first = node.body[0] if node.body else None
            if not (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)):
                return ""
            segment = ast.get_source_segment(prompt, first.value) or ""
            return _unquote(segment)
    return prompt


def _unquote(literal: str) -> str:
    """A string literal's text between its quotes, as written."""
    body = literal.lstrip("rRuUbBfF")
    for quote in ('"""', "'''", '"', "'"):
        if len(body) >= 2 * len(quote) and body.startswith(quote) and body.endswith(quote):
            return body[len(quote) : -len(quote)]
    return body


def _literal(source: str) -> str | None:
    """``source`` as a normalised literal's source, or None when it is none."""
    try:
        node = ast.parse(source.strip(), mode="eval").body
        ast.literal_eval(node)
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):
        return None
    return ast.unparse(node)


def _expected(text: str) -> str | None:
    """The literal an inline example expects: as written, with JSON-style words
    (``true``) made Python's; a trailing full stop or comma is not part of it."""
    text = text.strip()
    # a full stop ends a sentence more often than it makes a float ("should return 4.")
    tries = [text.rstrip(".,;"), text, text.split("#")[0]]
    tries.append(re.sub(r"\b(true|false|none|null)\b", lambda m: _WORDS[m.group(1)], tries[0]))
    for attempt in tries:
        value = _literal(attempt)
        if value is not None:
            return value
    return None


def _literal_call(node: ast.AST, entry_point: str) -> str | None:
    """The normalised source of ``node`` when it is ``entry_point(literals...)``."""
    if not (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == entry_point
    ):
        return None
    try:
        for arg in [*node.args, *(k.value for k in node.keywords)]:
            if isinstance(arg, ast.Starred):
                return None
            ast.literal_eval(arg)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    if any(k.arg is None for k in node.keywords):
        return None
    return ast.unparse(node)


def _parse_expr(text: str) -> ast.expr | None:
    try:
        return ast.parse(text.strip(), mode="eval").body
    except (SyntaxError, ValueError, RecursionError):
        return None


def _inline(line: str, entry_point: str) -> CallTest | None:
    start = line.find(f"{entry_point}(")
    if start < 0:
        return None
    for arrow in _ARROWS.finditer(line, start):
        call = _parse_expr(line[start : arrow.start()])
        source = None if call is None else _literal_call(call, entry_point)
        if source is None:
            continue
        expected = _expected(line[arrow.end() :])
        return None if expected is None else CallTest(source, expected, "value")
    return None


def _doctests(doc: str, entry_point: str) -> list[CallTest]:
    try:
        examples = doctest.DocTestParser().get_examples(doc)
    except ValueError:
        return []  # doctest's complaint about inconsistent indentation: no doctests
    cases = []
    for ex in examples:
        call = _parse_expr(ex.source)
        if call is None or not any(
            isinstance(n, ast.Name) and n.id == entry_point for n in ast.walk(call)
        ):
            continue
        want = ex.want.strip()
        if not want:
            # prompts write ``>>> f(x) == y`` as an assertion, printing nothing; other
            # examples without a printed result show no expectation
            if isinstance(call, ast.Compare) and all(isinstance(o, ast.Eq) for o in call.ops):
                cases.append(CallTest(ast.unparse(call), "True", "value"))
            continue
        literal = _literal(want)
        if literal is not None:
            cases.append(CallTest(ast.unparse(call), literal, "value"))
        elif "\n" not in want:
            cases.append(CallTest(ast.unparse(call), want, "repr"))
    return cases


def visible_tests(prompt: str, entry_point: str) -> tuple[CallTest, ...]:
    """The examples ``prompt`` shows for ``entry_point`` as test cases, in order, without
    repeats (see the module doc)."""
    doc = _docstring(prompt, entry_point)
    cases = _doctests(doc, entry_point)
    for line in doc.splitlines():
        if line.lstrip().startswith(">>>"):
            continue
        case = _inline(line, entry_point)
        if case is not None:
            cases.append(case)
    return tuple(dict.fromkeys(cases))


def literal_calls(text: str, entry_point: str) -> list[str]:
    """Every distinct call ``entry_point(literals...)`` in ``text``, in order of first
    appearance (one per line at most, found inside prints, asserts and comparisons)."""
    calls: list[str] = []
    for line in text.splitlines():
        start = line.find(f"{entry_point}(")
        if start < 0:
            continue
        # the call runs to one of the closing brackets after it: try each, longest first
        for end in sorted((m.end() for m in re.finditer(r"\)", line[start:])), reverse=True):
            node = _parse_expr(line[start : start + end])
            source = None if node is None else _literal_call(node, entry_point)
            if source is not None:
                if source not in calls:
                    calls.append(source)
                break
    return calls


def as_cases(tests: Sequence[CallTest]) -> list[dict[str, Any]]:
    """Visible tests (or observed inputs) as the harness's cases."""
    return [{"source": t.call, "mode": "eval", "expected": t.expected, "compare": t.compare}
            for t in tests]  # fmt: skip
