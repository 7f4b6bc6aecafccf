"""The tests a prompt shows: doctest examples and `f(x) == y` lines, robust to none."""

from __future__ import annotations

from ponder.tasks.visible_tests import CallTest, literal_calls, visible_tests


def test_doctest_examples_become_value_tests() -> None:
    prompt = (
        "def f(x):\n"
        '    """Doc.\n'
        "    >>> f([1, 2])\n    3\n"
        "    >>> round(f([0.5]), 2)  # a comment\n    0.5\n"
        "    >>> f('a\\nb') == 'x'\n"
        "    >>> f(1)\n    <object f>\n"
        "    >>> print('unrelated')\n    unrelated\n"
        '    """\n'
    )
    assert visible_tests(prompt, "f") == (
        CallTest("f([1, 2])", "3", "value"),
        CallTest("round(f([0.5]), 2)", "0.5", "value"),
        CallTest("f('a\\nb') == 'x'", "True", "value"),
        CallTest("f(1)", "<object f>", "repr"),
    )


def test_inline_examples_with_arrows_and_words() -> None:
    prompt = (
        "def g(a, b=0):\n"
        '    """\n'
        "    g(1, 2) == 3\n"
        "    g([1], b=2) ➞ [1, 2]\n"
        "    g('s') => true\n"
        "    g(2) should return 4.\n"
        "    g(3) -> g(2) + g(1)\n"  # an expression, not a value: skipped
        "    g(x) == 1\n"  # not a literal call: skipped
        "    other(1) == 2\n"  # not the entry point: skipped
        "    g('a->b') -> 'c'\n"
        '    """\n'
    )
    assert visible_tests(prompt, "g") == (
        CallTest("g(1, 2)", "3", "value"),
        CallTest("g([1], b=2)", "[1, 2]", "value"),
        CallTest("g('s')", "True", "value"),
        CallTest("g(2)", "4", "value"),
        CallTest("g('a->b')", "'c'", "value"),
    )


def test_a_prompt_without_examples_has_no_tests() -> None:
    assert visible_tests('def h(s):\n    """Return s reversed."""\n', "h") == ()
    assert visible_tests("def h(s):\n    pass\n", "h") == ()
    assert visible_tests("", "h") == ()
    # a prompt that is not Python is read as text
    assert visible_tests("h(1) == 2\nand then def (", "h") == (CallTest("h(1)", "2", "value"),)


def test_repeated_examples_count_once() -> None:
    prompt = 'def f(x):\n    """\n    >>> f(1)\n    2\n    f(1) == 2\n    f(1) == 2\n    """\n'
    assert visible_tests(prompt, "f") == (CallTest("f(1)", "2", "value"),)


def test_literal_calls_finds_calls_in_any_text() -> None:
    reply = (
        "```python\nf(1, 2)\nprint(f('x'))\nassert f([1, [2]]) == 3\nf(y)\nf(1, 2)\n"
        "f(*args)\nf(**{'a': 1})\n```"
    )
    assert literal_calls(reply, "f") == ["f(1, 2)", "f('x')", "f([1, [2]])"]
    assert literal_calls("no calls here", "f") == []
