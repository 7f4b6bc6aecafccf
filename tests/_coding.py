"""A small code problem and a sandbox with tight limits, shared by the code tests."""

from __future__ import annotations

import shutil
import warnings

from ponder.types import Problem
from ponder.verifiers.sandbox import Limits, Sandbox, _bwrap_works

PROMPT = '''from typing import List


def add(a: int, b: int) -> int:
    """Add two numbers.
    >>> add(1, 2)
    3
    >>> add(-1, 1)
    0
    """
'''
TEST = """def check(candidate):
    assert candidate(2, 3) == 5
    assert candidate(10, -4) == 6
"""
PROBLEM = Problem(
    "add", PROMPT, answer="    return a + b\n",
    meta={"prompt": PROMPT, "entry_point": "add", "test": TEST},
)  # fmt: skip
LIMITS = Limits(cpu_seconds=2, wall_seconds=4, memory_mb=256, processes=16, file_mb=1,
                max_output=20_000)  # fmt: skip


def has_bwrap() -> bool:
    return shutil.which("bwrap") is not None and _bwrap_works()


def tight_sandbox() -> Sandbox:
    """Bubblewrap with ``LIMITS`` where it works, else the limited subprocess (its
    warning is expected here; the sandbox tests check it)."""
    if has_bwrap():
        return Sandbox(limits=LIMITS, isolation="bwrap", require_isolation=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return Sandbox(limits=LIMITS, isolation="process")


def fenced(code: str) -> str:
    """A chat reply holding ``code`` in a python block."""
    return f"Here is the function:\n\n```python\n{code}```\n\nIt adds the numbers."
