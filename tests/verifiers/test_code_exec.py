"""Running candidate programs on tests in the sandbox: per-case outcomes, scores, the
ledger, hostile candidates that are stopped or denied while the run carries on, and
candidates that try to forge their verdicts, in every isolation mode this machine has."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from _coding import MODES, PROBLEM, PROMPT, fenced, runs_as_nobody, sandbox_in, tight_sandbox
from ponder.core.context import Context
from ponder.core.errors import ConfigError
from ponder.core.execution import run_blocking, run_program
from ponder.core.sandbox import Sandbox
from ponder.core.types import Completion, Problem, Usage
from ponder.engines.scripted import ScriptedEngine
from ponder.tasks.code import code_spec, hidden_cases
from ponder.tasks.humaneval import HumanEvalTask
from ponder.tasks.visible_tests import CallTest, as_cases
from ponder.verifiers.code_exec import ExecutionVerifier
from ponder.verifiers.registry import make_scorer

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
    assert event.isolation == SANDBOX.mode and c.ledger.isolation() == {SANDBOX.mode: 3}


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
    "exit early": (
        "import os\n    os._exit(0)",
        "exited with status 0 before the harness finished",
    ),
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


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    sandbox_in(request.param)  # skips where this machine cannot have the mode
    return str(request.param)


def _hostile(body: str) -> str:
    return fenced(f"def add(a, b):\n    {body}\n")


async def _check_hostile(body: str, why: str, sandbox: Sandbox) -> None:
    c = Context(engine=ScriptedEngine(["unused"]), task=HumanEvalTask(), sandbox=sandbox)
    texts = [_hostile(body), fenced(GOOD)]
    scores = await ExecutionVerifier().score(PROBLEM, [completion(t) for t in texts], c)
    runs = await ExecutionVerifier().check(PROBLEM, [c.extract(t) for t in texts], c)
    bad, good = runs
    assert scores[0].value == 0.0 and bad is not None and not bad.ok
    assert bad.reason and why in bad.reason, bad
    assert good is not None and good.ok and scores[1].value == 1.0
    assert bad.seconds < sandbox.limits.wall_seconds + 3
    assert bad.isolation == good.isolation == sandbox.mode


@pytest.mark.parametrize("name", sorted(HOSTILE))
async def test_hostile_candidates_fail_with_a_reason(mode: str, name: str) -> None:
    body, why = HOSTILE[name]
    if name == "fork bomb" and not runs_as_nobody(mode):
        pytest.skip("a fork bomb is contained only by the process limit of a program run "
                    "as nobody: not unisolated, nor by bubblewrap without root")  # fmt: skip
    await _check_hostile(body, why, sandbox_in(mode))


@pytest.mark.parametrize("name", sorted(ISOLATION))
async def test_isolation_denies_files_and_network(name: str, tmp_path: Path) -> None:
    target = tmp_path / "escaped.txt"
    body, why = ISOLATION[name]
    await _check_hostile(body.format(target=str(target)), why, sandbox_in("bwrap"))
    assert not target.exists()


# -- forged verdicts: whatever the program does, a wrong answer never passes ----------------

WRONG = "\ndef add(a, b):\n    return 0\n"
FAKE = "[json.dumps(x) for x in ({'load': None}, {'i': 0, 'ok': True, 'out': '5'}, " \
       "{'i': 1, 'ok': True, 'out': '5'}, {'done': True, 'status': 'ok'})]"  # fmt: skip
FAILS = "AssertionError (at: assert candidate(2, 3) == 5)"
FORGERIES: dict[str, tuple[str, str]] = {
    # the attack of issue 25: read the harness's marker through __main__, print passes
    # for every case, and end before the harness can write the real verdicts
    "prints passes with the harness's marker": (
        "import __main__, json, os\n\n\ndef add(a, b):\n"
        "    job = getattr(__main__, '_job', {})\n    mark = job.get('marker', '')\n"
        "    for i in range(len(job.get('cases', [0, 1]))):\n"
        "        print(mark + json.dumps({'i': i, 'ok': True}), flush=True)\n"
        "    print(mark + json.dumps({'done': True}), flush=True)\n    os._exit(0)\n",
        "exited with status 0 before the harness finished",
    ),
    "prints verdict lines on stdout and stderr": (
        f"import json, sys\nfor line in {FAKE}:\n    print(line)\n"
        "    print(line, file=sys.stderr)\n" + WRONG,
        FAILS,
    ),
    "writes verdicts to the result pipe's number": (
        f"import json, os, sys\nfor line in {FAKE}:\n"
        "    os.write(int(sys.argv[1]), line.encode() + b'\\n')\n" + WRONG,
        "Bad file descriptor",
    ),
    "writes verdicts to every descriptor it has": (
        f"import json, os\nfor fd in range(256):\n    for line in {FAKE}:\n"
        "        try:\n            os.write(fd, line.encode() + b'\\n')\n"
        "        except OSError:\n            break\n" + WRONG,
        # its lines reach only its own reply pipe, where they are read as its answers
        "name 'add' is not defined",
    ),
    "opens the harness's descriptors through /proc": (
        f"import json, os\nhere = '/proc/%d/fd/' % os.getppid()\nfor fd in os.listdir(here):\n"
        f"    with open(here + fd, 'w') as f:\n        f.write(chr(10).join({FAKE}))\n" + WRONG,
        # the harness is undumpable: not even the list of its descriptors can be read
        "(at: for fd in os.listdir(here):)",
    ),
    "reads the tests from the harness's memory": (
        "import os\nopen('/proc/%d/mem' % os.getppid(), 'rb')\n" + WRONG,
        "PermissionError",
    ),
    "patches the harness's checks and the builtins": (
        "import __main__, builtins\n"
        "for name in ('_same', '_case', '_canon', '_bind', '_ask', '_say', '_results'):\n"
        "    setattr(__main__, name, lambda *a, **k: True)\n"
        "builtins.AssertionError = type('AssertionError', (Exception,), {})\n"
        "builtins.abs = lambda x: 0\n" + WRONG,
        FAILS,
    ),
    "returns a value equal to everything": (
        "class Anything:\n    def __eq__(self, other):\n        return True\n\n"
        "    def __ne__(self, other):\n        return False\n\n\n"
        "def add(a, b):\n    return Anything()\n",
        FAILS,
    ),
    "prints passes and exits": (
        f"import json, os\n\n\ndef add(a, b):\n    for line in {FAKE}:\n"
        "        print(line, flush=True)\n    os._exit(0)\n",
        "exited with status 0 before the harness finished",
    ),
    "kills the harness": (
        "import os, signal\n\n\ndef add(a, b):\n    os.kill(os.getppid(), signal.SIGKILL)\n"
        "    return 5\n",
        "SIGKILL",
    ),
}
REACHES_EVERY_PROCESS = {
    "opens the harness's descriptors through /proc",
    "reads the tests from the harness's memory",
}


@pytest.mark.parametrize("name", sorted(FORGERIES))
async def test_a_candidate_cannot_forge_passing_verdicts(mode: str, name: str) -> None:
    if name in REACHES_EVERY_PROCESS and mode == "unisolated" and os.geteuid() == 0:
        pytest.skip("unisolated as root, a program reaches every process: no guarantee there")
    program, why = FORGERIES[name]
    run = await run_program(sandbox_in(mode), program, hidden_cases(code_spec(PROBLEM)),
                            entry="add")  # fmt: skip
    assert not run.ok and not run.cases[1].ok, run
    assert why in run.cases[1].reason, run
    visible = as_cases([CallTest("add(2, 3)", "5", "value"), CallTest("add(1, 2)", "3", "repr")])
    run = await run_program(sandbox_in(mode), program, visible, entry="add")
    assert run.passed == 0, run


# tests that would pass if the program's names, or the end of its process, were trusted
TRUSTING = {
    "redefines a builtin the tests use": (
        "def abs(x):\n    return 0\n" + WRONG,
        "def check(candidate):\n    assert abs(candidate(2, 3) - 5) < 1e-9\n",
        "AssertionError (at: assert abs(candidate(2, 3) - 5) < 1e-9)",
    ),
    "ends its process inside a test that catches everything": (
        "import os\n\n\ndef add(a, b):\n    os._exit(0)\n",
        "def check(candidate):\n    try:\n        candidate(2, 3)\n"
        "    except BaseException:\n        pass\n",
        "exited with status 0 before the harness finished",
    ),
}


@pytest.mark.parametrize("name", sorted(TRUSTING))
async def test_the_tests_do_not_trust_the_program(mode: str, name: str) -> None:
    program, check, why = TRUSTING[name]
    cases: list[dict[str, Any]] = [
        {"source": check, "mode": "exec", "expected": None, "compare": None},
        {"source": "check(add)", "mode": "exec", "expected": None, "compare": None},
    ]
    run = await run_program(sandbox_in(mode), program, cases, entry="add")
    assert [c.ok for c in run.cases] == [True, False] and why in run.cases[1].reason, run


async def test_values_cross_as_data_and_exceptions_as_themselves(mode: str) -> None:
    program = (
        "import math\nTABLE = {1: 'one', (2, 3): [4.5, None]}\n\n\n"
        "def echo(x, **kw):\n    if x == 'boom':\n        raise KeyError('boom')\n"
        "    return (x, kw) if kw else x\n"
    )
    values = ["[1, 'a', (2.5, None), {3, 4}, {'k': b'v'}, 10**30, -0.0, 1+2j, True]",
              "'x' * 3", "float('inf')", "frozenset({1})"]  # fmt: skip
    cases = as_cases([CallTest(f"echo({v})", v, "value") for v in values])
    cases += as_cases([CallTest("echo(1, k=[2])", "(1, {'k': [2]})", "value"),
                       CallTest("TABLE", "{1: 'one', (2, 3): [4.5, None]}", "value"),
                       CallTest("math.pi", "3.14159265", "value"),
                       CallTest("echo(lambda: 1)"),
                       CallTest("echo(object)")])  # fmt: skip
    test = "def check(candidate):\n    try:\n        candidate('boom')\n    except KeyError:\n" \
           "        return\n    assert False\n"  # fmt: skip
    cases += [
        {"source": test, "mode": "exec", "expected": None, "compare": None},
        {"source": "check(echo)", "mode": "exec", "expected": None, "compare": None},
    ]
    run = await run_program(sandbox_in(mode), program, cases, entry="echo")
    assert [c.ok for c in run.cases] == [True] * 7 + [False] * 2 + [True] * 2, run
    assert "only data and its functions cross" in run.cases[7].reason


async def test_hostile_candidates_are_wrong_answers_at_the_task_level() -> None:
    task = HumanEvalTask(sandbox=SANDBOX)
    for body, _ in HOSTILE.values():
        if "fork" in body and not runs_as_nobody(SANDBOX.mode):
            continue
        answer = task.extract(_hostile(body))
        assert answer is not None
        assert await asyncio.to_thread(task.is_correct, answer, PROBLEM) is False
    assert task.is_correct(task.extract(fenced(GOOD)), PROBLEM) is True
    assert task.is_correct(None, PROBLEM) is False


def test_a_sandbox_that_cannot_isolate_can_be_refused() -> None:
    with pytest.raises(ConfigError, match="require_isolation"):
        Sandbox(isolation="process", require_isolation=True)


async def test_outputs_are_canonical_so_equal_values_compare_equal() -> None:
    program = PROMPT + "\ndef add(a, b):\n    return a if b is None else (a, b)\n"
    calls = ["add((1,), None)", "add({3, 1}, None)", "add({'b': 1, 'a': 2}, None)",
             "add(0.1 + 0.2, None)", "add([1.0000001], 2)", "add((), None)"]  # fmt: skip
    run = await run_program(SANDBOX, program, as_cases([CallTest(c) for c in calls]), entry="add")
    assert [c.output for c in run.cases] == [
        "(1,)", "{1, 3}", "{'a': 2, 'b': 1}", "0.3", "([1.0], 2)", "()",
    ]  # fmt: skip
