"""Run candidate programs on test cases in the sandbox, and score them by the tests they pass.

One execution per program: a small harness (``HARNESS``) runs inside the ``Sandbox``,
reads the program and its cases from standard input, defines the program in a fresh
namespace, then runs each case in turn and writes one result line per case as soon as
it has it (so a case that hangs or exhausts a limit still leaves the results before it).
A case is an expression (``mode="eval"``, its value compared with the expected one, or
only observed) or statements (``mode="exec"``, such as the hidden tests' ``check``);
it passes when it raises nothing and, where an expected value is given, its value
matches. Result lines start with a random marker of the run, so what the program prints
cannot be read as a result by accident.

``ProgramRun`` is what one execution found: whether the program loaded, each case's
outcome with its output and, for a failure, the reason (the exception, the mismatch, or
the sandbox's verdict: a timeout, the memory limit, too much output). ``run_programs``
runs several (identical programs once), and puts them on the ledger as one ``execute``
event (executions and their seconds, summed).

``ExecutionVerifier`` (``--scorer tests:visible``), through ``Context.execute``,
scores each candidate of a code problem by the share of the prompt's visible tests it
passes (``visible_tests``); with no visible tests, 1 for a program that loads (and
defines the entry point, as the prompt's stub does), else 0. It never raises for what a
candidate does: hostile or broken code scores 0, and its run says why.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from ponder.budget import Ledger
from ponder.tasks.code import CodeSpec, assemble, code_spec
from ponder.tasks.visible_tests import CallTest, visible_tests
from ponder.types import Completion, Problem, Score, Usage
from ponder.verifiers.sandbox import ExecResult, Limits, Sandbox

if TYPE_CHECKING:
    from ponder.strategies.base import Context

__all__ = [
    "HARNESS",
    "CaseResult",
    "ExecutionVerifier",
    "ProgramRun",
    "as_cases",
    "default_sandbox",
    "hidden_cases",
    "run_blocking",
    "run_program",
    "run_programs",
]

HARNESS = r"""
import json, math, os, sys, traceback

_out = os.fdopen(os.dup(1), "w")  # results go here, whatever the program does to stdout
_job = json.loads(sys.stdin.read())


def _say(obj):
    _out.write(_job["marker"] + json.dumps(obj) + "\n")
    _out.flush()


def _canon(v, depth=0):
    # a value as text, the same for equal values (floats to 6 decimals, sets and
    # dicts in sorted order) so outputs can be compared across programs
    if depth > 30:
        return "..."
    if isinstance(v, float):
        return repr(round(v, 6))
    if isinstance(v, (list, tuple)):
        inner = ", ".join(_canon(x, depth + 1) for x in v)
        if isinstance(v, list):
            return "[" + inner + "]"
        return "(" + inner + ("," if len(v) == 1 else "") + ")"
    if isinstance(v, (set, frozenset)):
        return "{" + ", ".join(sorted(_canon(x, depth + 1) for x in v)) + "}"
    if isinstance(v, dict):
        items = sorted(_canon(k, depth + 1) + ": " + _canon(x, depth + 1) for k, x in v.items())
        return "{" + ", ".join(items) + "}"
    return repr(v)


def _same(got, want):
    if isinstance(want, float) or isinstance(got, float):
        numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (got, want))
        return numbers and math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-9)
    if isinstance(want, (list, tuple)) and type(got) is type(want):
        return len(got) == len(want) and all(_same(g, w) for g, w in zip(got, want))
    if isinstance(want, dict) and isinstance(got, dict):
        return got.keys() == want.keys() and all(_same(got[k], want[k]) for k in want)
    return bool(got == want)


_sources = {"<program>": _job["program"].splitlines()}
_sources.update(
    ("<case " + str(i) + ">", c["source"].splitlines()) for i, c in enumerate(_job["cases"])
)


def _why(e):
    # the exception, and the innermost line of the program or the cases it came from
    text = (type(e).__name__ + ": " + str(e)).rstrip(": ")[:300]
    for frame, line in reversed(list(traceback.walk_tb(e.__traceback__))):
        lines = _sources.get(frame.f_code.co_filename, [])
        if 0 < line <= len(lines):
            return text + " (at: " + lines[line - 1].strip()[:200] + ")"
    return text


_ns = {"__name__": "__candidate__"}
try:
    exec(compile(_job["program"], "<program>", "exec"), _ns)
    entry = _job.get("entry")
    if entry and not callable(_ns.get(entry)):
        raise NameError("the program defines no function " + entry)
except BaseException as e:
    _say({"load": _why(e)})
    _out.close()
    os._exit(0)
_say({"load": None})
for i, case in enumerate(_job["cases"]):
    name = "<case " + str(i) + ">"
    result = {"i": i}
    try:
        code = compile(case["source"], name, case["mode"])
        if case["mode"] == "exec":
            exec(code, _ns)
            value = None
        else:
            value = eval(code, _ns)
        result["out"] = _canon(value)[:1000]
        if case["expected"] is None:
            result["ok"] = True
        elif case["compare"] == "repr":
            result["ok"] = repr(value) == case["expected"]
        else:
            result["ok"] = _same(value, eval(case["expected"], {}))
        if not result["ok"]:
            result["error"] = "expected " + case["expected"][:200] + ", got " + result["out"][:200]
    except BaseException as e:
        result["ok"] = False
        result["error"] = _why(e)
    _say(result)
_say({"done": True})
_out.close()
os._exit(0)
"""


@dataclass(frozen=True)
class CaseResult:
    """One case of one execution: passed or not, the value it gave (as text, None when
    it gave none) and, for a failure, why."""

    ok: bool
    output: str | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "output": self.output, "reason": self.reason}


@dataclass(frozen=True)
class ProgramRun:
    """What one execution of a program found (see the module doc). ``status`` and
    ``seconds`` are the sandbox's; ``reason`` is empty when every case passed."""

    loaded: bool
    cases: tuple[CaseResult, ...]
    status: str
    seconds: float
    reason: str = ""

    @property
    def passed(self) -> int:
        return sum(c.ok for c in self.cases)

    @property
    def ok(self) -> bool:
        """The program loaded and passed every case."""
        return self.loaded and self.passed == len(self.cases)

    @property
    def fraction(self) -> float:
        """The share of cases passed; for no cases, 1 when the program loaded."""
        if not self.cases:
            return 1.0 if self.loaded else 0.0
        return self.passed / len(self.cases)

    def to_dict(self) -> dict[str, Any]:
        return {
            "loaded": self.loaded,
            "passed": self.passed,
            "cases": len(self.cases),
            "status": self.status,
            "seconds": self.seconds,
            "reason": self.reason,
            "failures": [c.reason for c in self.cases if not c.ok],
        }


def as_cases(tests: Sequence[CallTest]) -> list[dict[str, Any]]:
    """Visible tests (or observed inputs) as the harness's cases."""
    return [{"source": t.call, "mode": "eval", "expected": t.expected, "compare": t.compare}
            for t in tests]  # fmt: skip


def hidden_cases(spec: CodeSpec) -> list[dict[str, Any]]:
    """The hidden tests as cases: define ``check``, then call it on the entry point."""
    if not spec.test.strip():
        raise ValueError(f"the problem of {spec.entry_point!r} has no hidden tests")
    return [
        {"source": spec.test, "mode": "exec", "expected": None, "compare": None},
        {"source": f"check({spec.entry_point})", "mode": "exec", "expected": None,
         "compare": None},
    ]  # fmt: skip


@functools.cache
def default_sandbox() -> Sandbox:
    """The sandbox code verification uses unless given one: bubblewrap where it works
    (else a limited subprocess, with a warning), the default ``Limits``."""
    return Sandbox(limits=Limits())


def _results(result: ExecResult, marker: str) -> list[dict[str, Any]]:
    lines = []
    for line in result.stdout.splitlines():
        if line.startswith(marker):
            try:
                lines.append(json.loads(line[len(marker) :]))
            except json.JSONDecodeError:
                continue  # a line cut by the output limit
    return lines


def _verdict(result: ExecResult) -> str:
    if result.ok:
        return "the program exited before the harness finished"
    return f"{result.status}: {result.reason}"


async def run_program(
    sandbox: Sandbox, program: str, cases: Sequence[Mapping[str, Any]], *, entry: str | None
) -> ProgramRun:
    """Run ``program`` on ``cases`` in one sandboxed execution (see the module doc);
    ``entry`` is the function it must define (None: no check)."""
    marker = f"@ponder-{secrets.token_hex(8)}@"
    job = {"marker": marker, "program": program, "entry": entry, "cases": list(cases)}
    result = await sandbox.run(HARNESS, stdin=json.dumps(job))
    lines = _results(result, marker)
    load = next((line for line in lines if "load" in line), None)
    if load is None or load["load"] is not None:
        why = (
            f"the program does not load: {load['load']}"
            if load is not None
            else f"the program did not finish loading ({_verdict(result)})"
        )
        failed = tuple(CaseResult(False, None, why) for _ in cases)
        return ProgramRun(False, failed, result.status, result.seconds, why)
    by_index = {int(line["i"]): line for line in lines if "i" in line}
    outcomes: list[CaseResult] = []
    stopped = ""
    for i in range(len(cases)):
        line = by_index.get(i)
        if line is not None:
            outcomes.append(CaseResult(bool(line["ok"]), line.get("out"), line.get("error", "")))
        elif not stopped:
            stopped = _verdict(result)
            outcomes.append(CaseResult(False, None, stopped))
        else:
            why = f"not run: an earlier case ended the program ({stopped})"
            outcomes.append(CaseResult(False, None, why))
    first_failure = next((c.reason for c in outcomes if not c.ok), "")
    return ProgramRun(True, tuple(outcomes), result.status, result.seconds, first_failure)


async def run_programs(
    sandbox: Sandbox,
    programs: Sequence[str],
    cases: Sequence[Mapping[str, Any]],
    *,
    entry: str | None,
    ledger: Ledger | None,
    label: str,
    parallel: int | None = None,
) -> list[ProgramRun]:
    """Run each program on ``cases``, identical programs once, at most ``parallel`` at a
    time (default: the CPUs, up to 4); the executions and their seconds go on ``ledger``
    as one ``execute`` event."""
    distinct = list(dict.fromkeys(programs))
    width = parallel or max(1, min(4, os.cpu_count() or 1))
    gate = asyncio.Semaphore(width)

    async def one(program: str) -> ProgramRun:
        async with gate:
            return await run_program(sandbox, program, cases, entry=entry)

    runs = dict(zip(distinct, await asyncio.gather(*(one(p) for p in distinct)), strict=True))
    if ledger is not None and distinct:
        seconds = sum(r.seconds for r in runs.values())
        ledger.record("execute", Usage(), seconds, label, executions=len(distinct))
    return [runs[p] for p in programs]


T = TypeVar("T")


def run_blocking(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to its end from synchronous code: on this thread when no event
    loop runs here, else on a thread of its own (this thread waits)."""

    async def go() -> T:
        return await make()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(go())
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, go()).result()


class ExecutionVerifier:
    """``tests:visible``: each candidate's share of the visible tests passed (module doc),
    run through ``ctx.execute`` (the context's sandbox, on its ledger).

    ``check`` gives the full runs (per-case outcomes and reasons) of the candidates'
    extracted answers; ``score`` their fractions, 0 for a candidate with no code.
    """

    @property
    def name(self) -> str:
        return "tests:visible"

    @property
    def needs_logprobs(self) -> bool:
        return False

    async def check(
        self, problem: Problem, answers: Sequence[str | None], ctx: Context
    ) -> list[ProgramRun | None]:
        """The run of each answer on the visible tests; None where there is no answer."""
        spec = code_spec(problem)
        cases = as_cases(visible_tests(spec.prompt, spec.entry_point))
        programs = [assemble(spec.prompt, a) for a in answers if a is not None]
        done = await ctx.execute(programs, cases, entry=spec.entry_point, label=self.name)
        runs = iter(done)
        return [None if a is None else next(runs) for a in answers]

    async def score(
        self, problem: Problem, completions: Sequence[Completion], ctx: Context
    ) -> list[Score]:
        answers = [ctx.extract(c.text) for c in completions]
        runs = await self.check(problem, answers, ctx)
        return [Score(0.0 if r is None else r.fraction) for r in runs]
