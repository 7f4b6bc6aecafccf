"""Finding the program in a model's reply, normalising it, and assembling it with the prompt."""

from __future__ import annotations

import ast

import pytest

from _coding import PROBLEM, PROMPT
from ponder.core.errors import ConfigError
from ponder.core.types import Problem
from ponder.tasks.code import assemble, code_spec, extract_code, is_body, normalize_program

FULL = '''def add(a: int, b: int) -> int:
    """Add them."""
    # the obvious way
    return a + b
'''


def test_a_fenced_full_function_is_normalised() -> None:
    reply = f"Sure.\n```python\n{FULL}\nprint(add(1, 2))\n```\nThat is all."
    assert extract_code(reply) == "def add(a: int, b: int) -> int:\n    return a + b"


def test_comments_docstrings_quotes_and_example_calls_do_not_change_the_answer() -> None:
    other = (
        "from typing import List\n\n\ndef add(a:int,b:int)->int:\n"
        "    '''Different docstring.'''\n    return a+b   # same code\n\n"
        "if __name__ == '__main__':\n    assert add(1, 2) == 3\n"
    )
    a, b = extract_code(f"```python\n{FULL}```"), extract_code(f"```py\n{other}```")
    assert b == "from typing import List\n\ndef add(a: int, b: int) -> int:\n    return a + b"
    assert a is not None and b is not None and a in b


def test_a_reply_without_a_fence_is_read_from_its_first_definition() -> None:
    reply = f"The function is:\n{FULL}\nIt returns the sum of a and b."
    assert extract_code(reply) == "def add(a: int, b: int) -> int:\n    return a + b"


def test_a_body_continuation_is_kept_indented_and_stops_at_column_zero() -> None:
    continuation = "    total = a\n    total += b\n    return total\n\n\ndef check(c):\n    pass\n"
    answer = extract_code(continuation)
    assert answer == "    total = a\n    total += b\n    return total"
    assert answer is not None and is_body(answer)


def test_a_flush_left_body_in_a_fence_becomes_a_body() -> None:
    assert extract_code("```python\nreturn a + b\n```") == "    return a + b"


def test_the_first_block_that_defines_something_wins() -> None:
    reply = (
        "```python\nprint(add(1, 2))\n```\n```python\ndef add(a, b):\n    return a + b\n```\n"
        "```python\ndef add(a, b):\n    return 0\n```"
    )
    assert extract_code(reply) == "def add(a, b):\n    return a + b"


def test_other_languages_are_not_python_but_the_reply_is_still_read() -> None:
    assert extract_code("```bash\npython add.py\n```") is None
    assert extract_code("```output\n[1, 2]\n```") is None
    # code in a block labelled otherwise is found by reading the reply as text
    assert extract_code("```text\ndef add(a, b): pass\n```") == "def add(a, b):\n    pass"


def test_a_block_cut_off_by_the_token_limit_keeps_what_parses() -> None:
    reply = "```python\ndef add(a, b):\n    return a + b\n\ndef helper(x):\n    return [x,"
    assert extract_code(reply) == "def add(a, b):\n    return a + b"


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "I cannot help with that.",
        "```python\n```",
        "```python\nx = 1\n```",
        "def add(",
        "(" * 5000,
        "def f(" + "[" * 3000,
        "\x00\x01\x02 binary ```",
        "    this is indented prose, not code",
        "```python\n    return a +\n```",
    ],
)
def test_garbage_gives_none(garbage: str) -> None:
    assert extract_code(garbage) is None


def test_normalize_program_needs_a_definition() -> None:
    assert normalize_program("x = 1\nprint(x)") is None
    assert normalize_program("class A:\n    'doc'\n") == "class A:\n    pass"


def test_assemble_puts_the_prompt_first() -> None:
    program = assemble(PROMPT, "def add(a: int, b: int) -> int:\n    return a + b")
    ns: dict[str, object] = {}
    exec(compile(program, "<test>", "exec"), ns)
    assert ns["add"](2, 3) == 5  # type: ignore[operator]
    body = assemble(PROMPT, "    return a * b")
    ast.parse(body)
    ns = {}
    exec(compile(body, "<test>", "exec"), ns)
    assert ns["add"](2, 3) == 6  # type: ignore[operator]
    # a stub with no body at all still assembles with a program
    assert "pass" in assemble("def f(x):\n", "def f(x):\n    return x")


def test_code_spec_refuses_a_problem_that_is_not_code() -> None:
    assert code_spec(PROBLEM).entry_point == "add"
    with pytest.raises(ConfigError, match="not a code problem"):
        code_spec(Problem("q", "What is 2 + 2?", answer="4"))
