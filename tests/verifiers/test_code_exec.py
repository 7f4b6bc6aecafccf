"""Running candidate programs on tests in the sandbox: per-case outcomes, scores, the
ledger, and hostile candidates that are stopped or denied while the run carries on."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from _coding import PROBLEM, PROMPT, fenced, has_bwrap, tight_sandbox
from ponder.budget import Ledger
from ponder.engines.scripted import ScriptedEngine
from ponder.errors import ConfigError
from ponder.strategies.base import Context
from ponder.tasks.code import code_spec
from ponder.tasks.humaneval import HumanEvalTask
from ponder.tasks.visible_tests import CallTest
from ponder.types import Completion, Problem, Usage
from ponder.verifiers.code_exec import (
    ExecutionVerifier,
    as_cases,
    hidden_cases,
    run_blocking,
    run_program,
)
from ponder.verifiers.registry import make_scorer
from ponder.verifiers.sandbox import Sandbox

SANDBOX = tight_sandbox()
GOOD = "def add(a, b):\n    return a + b\n"


def ctx() -> Context:
    return Context(engine=ScriptedEngine(["unused"]), task=HumanEvalTask(), sandbox=SANDBOX)


def completion(text: str) -> Completion:
    return Completion(text, "stop", Usage(completion_tokens=len(text.split())))


async def test_cases_pass_fail_raise_and_report_outputs() -> None:
    cases = as_cases([
        CallTest("add(1, 2)", "3", "value"),
        CallTest("add(0.1, 0.2)", "0.3", "value"),  # floats compare to a relative 1e-6
        CallTest("add(1, 1)", "3", "value"),
        CallTest("add('a', 1)", "'a1'", "value"),
        CallTest("add(1, 2)", "3", "repr"),
        CallTest("add([1], [2])"),
    ])  # fmt: skip
    run = await run_program(SANDBOX, PROMPT + "\n" + GOOD, cases, entry="add")
    assert run.loaded and run.status == "ok"
    assert [c.ok for c in run.cases] == [True, True, False, False, True, True]
    assert run.cases[2].reason == "expected 3, got 2"
    assert run.cases[3].reason.startswith("TypeError:")
    assert run.cases[3].reason.endswith("(at: return a + b)")
    assert run.cases[5].output == "[1, 2]"
    assert (run.passed, run.fraction, run.ok) == (4, 4 / 6, False)
    assert run.reason == "expected 3, got 2"


async def test_a_program_that_does_not_load_fails_every_case_with_the_reason() -> None:
    cases = as_cases([CallTest("add(1, 2)", "3", "value")])
    run = await run_program(SANDBOX, "def add(a, b):\n    return undefined_name\nx = 1/0\n",
                            cases, entry="add")  # fmt: skip
    assert not run.loaded and run.cases[0].reason.startswith("the program does not load")
    assert "ZeroDivisionError" in run.reason
    missing = await run_program(SANDBOX, "def other():\n    pass\n", cases, entry="add")
    assert "defines no function add" in missing.reason and missing.fraction == 0.0


async def test_hidden_tests_pass_or_name_the_failing_assertion() -> None:
    spec = code_spec(PROBLEM)
    right = await run_program(SANDBOX, PROMPT + GOOD, hidden_cases(spec), entry="add")
    assert right.ok
    wrong = await run_program(SANDBOX, PROMPT + "def add(a, b):\n    return 5\n",
                              hidden_cases(spec), entry="add")  # fmt: skip
    assert not wrong.ok
    assert wrong.reason == "AssertionError (at: assert candidate(10, -4) == 6)"


async def test_the_verifier_scores_by_visible_tests_and_bills_the_ledger() -> None:
    c = ctx()
    texts = [
        fenced(GOOD),
        fenced("def add(a, b):\n    return a - b\n"),  # add(1, 2) fails, add(-1, 1) fails
        fenced("def add(a, b):\n    return 3\n"),  # one of two
        "no code at all",
        fenced(GOOD),  # the same program again: executed once
    ]
    scorer = make_scorer("tests:visible")
    assert scorer.name == "tests:visible" and not scorer.needs_logprobs
    scores = await c.score(PROBLEM, [completion(t) for t in texts], scorer)
    assert [s.value for s in scores] == [1.0, 0.0, 0.5, 0.0, 1.0]
    (event,) = c.ledger.events
    assert (event.kind, event.executions, event.usage) == ("execute", 3, Usage())
    assert event.seconds > 0 and c.ledger.executions() == 3


async def test_without_visible_tests_a_program_that_loads_scores_one() -> None:
    prompt = 'def rev(s):\n    """Reverse s."""\n'
    problem = Problem("rev", prompt, meta={"prompt": prompt, "entry_point": "rev"})
    verifier = ExecutionVerifier()
    answers = ["    return s[::-1]", "def other():\n    pass\nx = undefined_name", None]
    runs = await verifier.check(problem, answers, ctx())
    assert [r.fraction if r else None for r in runs] == [1.0, 0.0, None]


async def test_the_verifier_refuses_problems_that_are_not_code() -> None:
    with pytest.raises(ConfigError, match="not a code problem"):
        await ExecutionVerifier().check(Problem("q", "2+2?", answer="4"), ["x"], ctx())


def test_run_blocking_works_with_and_without_a_running_loop() -> None:
    async def seven() -> int:
        return 7

    assert run_blocking(seven) == 7

    async def inside() -> int:
        return run_blocking(seven)

    assert asyncio.run(inside()) == 7


# -- hostile candidates: each fails with a reason, and the next candidate still runs --------

HOSTILE = {
    "infinite loop": ("while True:\n        pass", "timeout"),
    "sleeping forever": ("import time\n    time.sleep(600)", "wall clock"),
    "memory hog": ("x = bytearray(2 * 1024 ** 3)\n    return len(x)", "MemoryError"),
    "huge output": ("while True:\n        print('x' * 1000)", "output"),
    "fork bomb": ("import os\n    while True:\n        os.fork()", ""),
    "exit early": ("import os\n    os._exit(0)", "exited before the harness finished"),
    "deep recursion": ("return add(a, b)", "RecursionError"),
}
ISOLATION = {
    "write outside its folder": ("open({target!r}, 'w').write('x')", ""),
    "network connection": (
        "import socket\n    socket.create_connection(('1.1.1.1', 80), timeout=3)",
        "unreachable",
    ),
    "read a file it should not": (f"return open({str(Path(__file__).resolve())!r}).read()",
                                  "FileNotFoundError"),
}  # fmt: skip


def _hostile(body: str) -> str:
    return fenced(f"def add(a, b):\n    {body}\n")


async def _check_hostile(body: str, why: str) -> None:
    c = ctx()
    texts = [_hostile(body), fenced(GOOD)]
    scores = await ExecutionVerifier().score(PROBLEM, [completion(t) for t in texts], c)
    runs = await ExecutionVerifier().check(PROBLEM, [c.extract(t) for t in texts], c)
    bad, good = runs
    assert scores[0].value == 0.0 and bad is not None and not bad.ok
    assert bad.reason and why in bad.reason, bad
    assert good is not None and good.ok and scores[1].value == 1.0
    assert bad.seconds < SANDBOX.limits.wall_seconds + 3


@pytest.mark.parametrize("name", sorted(HOSTILE))
async def test_hostile_candidates_fail_with_a_reason(name: str) -> None:
    body, why = HOSTILE[name]
    if name == "fork bomb" and not has_bwrap():
        pytest.skip("a fork bomb is only contained by bubblewrap's process limit as nobody")
    await _check_hostile(body, why)


@pytest.mark.parametrize("name", sorted(ISOLATION))
async def test_isolation_denies_files_and_network(name: str, tmp_path: Path) -> None:
    if not has_bwrap():
        pytest.skip("filesystem and network isolation need bubblewrap")
    target = tmp_path / "escaped.txt"
    body, why = ISOLATION[name]
    await _check_hostile(body.format(target=str(target)), why)
    assert not target.exists()


async def test_hostile_candidates_are_wrong_answers_at_the_task_level() -> None:
    task = HumanEvalTask(sandbox=SANDBOX)
    for body, _ in HOSTILE.values():
        if "fork" in body and not has_bwrap():
            continue
        answer = task.extract(_hostile(body))
        assert answer is not None
        assert await asyncio.to_thread(task.is_correct, answer, PROBLEM) is False
    assert task.is_correct(task.extract(fenced(GOOD)), PROBLEM) is True
    assert task.is_correct(None, PROBLEM) is False


def test_a_sandbox_that_cannot_isolate_can_be_refused() -> None:
    with pytest.raises(ConfigError, match="require_isolation"):
        Sandbox(isolation="process", require_isolation=True)
    assert isinstance(Ledger().executions(), int)


async def test_outputs_are_canonical_so_equal_values_compare_equal() -> None:
    program = PROMPT + "\ndef add(a, b):\n    return a if b is None else (a, b)\n"
    calls = ["add((1,), None)", "add({3, 1}, None)", "add({'b': 1, 'a': 2}, None)",
             "add(0.1 + 0.2, None)", "add([1.0000001], 2)", "add((), None)"]  # fmt: skip
    run = await run_program(SANDBOX, program, as_cases([CallTest(c) for c in calls]), entry="add")
    assert [c.output for c in run.cases] == [
        "(1,)", "{1, 3}", "{'a': 2, 'b': 1}", "0.3", "([1.0], 2)", "()",
    ]  # fmt: skip
