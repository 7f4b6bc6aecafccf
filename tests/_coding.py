"""A small code problem and sandboxes with tight limits, shared by the code tests."""

from __future__ import annotations

import os
import shutil
import sys
import warnings
from typing import cast

import pytest

from ponder.core.sandbox import Limits, Mode, Sandbox, _bwrap_works, _nobody_python
from ponder.core.types import Problem

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


MODES = ("bwrap", "unprivileged", "unisolated")
"""The sandbox's isolation modes: the hostile suites run in each one this machine has."""


def has_bwrap() -> bool:
    return shutil.which("bwrap") is not None and _bwrap_works()


def runs_as_nobody(mode: str) -> bool:
    """Whether programs in ``mode`` run as nobody here (ponder is root, the mode isolates)."""
    return os.geteuid() == 0 and mode != "unisolated"


_SANDBOXES: dict[str, Sandbox] = {}


def sandbox_in(mode: str) -> Sandbox:
    """A sandbox with ``LIMITS`` in ``mode`` (opted in to ``unisolated``); the test skips,
    saying why, where this machine cannot have that mode."""
    if mode == "bwrap" and not has_bwrap():
        pytest.skip("bubblewrap is not installed or cannot make namespaces here")
    if mode == "unprivileged" and (os.geteuid() != 0 or _nobody_python(sys.executable) is None):
        pytest.skip("the unprivileged mode needs a root ponder and a Python nobody can run")
    if mode not in _SANDBOXES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # the sandbox tests check it
            _SANDBOXES[mode] = Sandbox(
                limits=LIMITS, isolation=cast(Mode, mode), allow_unisolated=True
            )
    return _SANDBOXES[mode]


def tight_sandbox() -> Sandbox:
    """Bubblewrap with ``LIMITS`` where it works, else the best other mode, opted in to
    running unisolated (the tests' explicit choice; the sandbox tests check the
    warning)."""
    if has_bwrap():
        return Sandbox(limits=LIMITS, isolation="bwrap", require_isolation=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return Sandbox(limits=LIMITS, allow_unisolated=True)


def fenced(code: str) -> str:
    """A chat reply holding ``code`` in a python block."""
    return f"Here is the function:\n\n```python\n{code}```\n\nIt adds the numbers."
