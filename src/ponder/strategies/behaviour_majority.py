"""Code: sample programs, run them, answer with the most common behaviour.

``behaviour_majority`` follows AlphaCode's filtering and clustering (Li et al. 2022)
with CodeT's idea of model-written test inputs (Chen et al. 2022):

1. sample ``n`` programs (one plain request, so ``--replay`` serves them);
2. run each distinct program on the prompt's visible tests in the sandbox; the
   survivors are those that pass all of them (``filter=false``: every program that
   loads);
3. when two or more distinct programs survive and ``inputs > 0``, ask the model once,
   greedily, for ``inputs`` test calls of the function (its tokens are generation), and
   run each surviving program on them;
4. group survivors by behaviour, their outputs on the visible and the generated inputs
   (an exception or a limit counts as an output), and answer with the first program, in
   sample order, of the largest group; ties go to the group that passes more visible
   tests, then to the group whose first program came first.

When no program passes every visible test, the programs that load with the most
visible tests passed survive instead; when none loads, the program texts are put to a
plain majority vote. ``meta`` records each candidate's visible-test result (passes and
the first failure's reason), the survivors, the generated inputs, the groups, and any
fallback. Programs run through ``Context.execute``, so the executions and their
seconds are on the ledger. Test inputs that would not fit a token budget are not asked
for: the visible tests alone group the survivors, and ``meta`` has
``stopped="budget"`` and the ``stop_reason``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ponder.core.context import Context
from ponder.core.errors import BudgetExceeded, ConfigError
from ponder.core.execution import CaseResult, ProgramRun
from ponder.core.types import Message, Problem, Result
from ponder.strategies.base import make_candidates, make_result, register, stopped_by_budget
from ponder.strategies.sampling import check_sampling, sample
from ponder.strategies.voting import majority_vote
from ponder.tasks.code import CodeSpec, assemble, code_spec
from ponder.tasks.visible_tests import CallTest, as_cases, literal_calls, visible_tests
from ponder.verifiers.code_exec import ExecutionVerifier

__all__ = ["INPUTS_PROMPT", "BehaviourMajority", "behaviour_groups"]

INPUTS_PROMPT = (
    "Here is a Python function to test:\n\n```python\n{prompt}```\n\n"
    "Write {k} different calls of `{entry}` whose inputs test it well, edge cases "
    "included. Use literal arguments only (numbers, strings, lists, tuples, dicts, "
    "True, False, None). Put one call per line in one ```python code block, and do not "
    "write the results."
)


def _signature(case: CaseResult) -> str:
    # an exception or a limit is behaviour too: its kind (the reason's first word)
    return case.output if case.ok and case.output is not None else "!" + case.reason[:40]


def behaviour_groups(
    survivors: Sequence[int], runs: Sequence[Sequence[CaseResult]]
) -> list[list[int]]:
    """``survivors`` (candidate indices) grouped by identical outputs on every input,
    each group in sample order, groups in order of their first member;
    ``runs[j]`` are survivor ``j``'s case results on the inputs."""
    groups: dict[tuple[str, ...], list[int]] = {}
    for index, cases in zip(survivors, runs, strict=True):
        groups.setdefault(tuple(_signature(c) for c in cases), []).append(index)
    return list(groups.values())


@register("behaviour_majority")
@dataclass(frozen=True)
class BehaviourMajority:
    """Code: n programs filtered by the visible tests, then the most common behaviour."""

    n: int = 8
    temperature: float = 0.7
    top_p: float = 0.95
    inputs: int = 8
    input_tokens: int = 256
    filter: bool = True

    def __post_init__(self) -> None:
        check_sampling(self.temperature, self.top_p)
        if self.n < 1:
            raise ConfigError(f"n must be >= 1, got {self.n}")
        if self.inputs < 0 or self.input_tokens < 1:
            raise ConfigError("inputs must be >= 0 and input_tokens >= 1")

    async def __call__(self, problem: Problem, ctx: Context) -> Result:
        t0 = time.perf_counter()
        spec = code_spec(problem)
        comps = await sample(problem, ctx, self.n, self.temperature, self.top_p)
        answers = [ctx.extract(c.text) for c in comps]
        visible = visible_tests(spec.prompt, spec.entry_point)
        runs = await ExecutionVerifier().check(problem, answers, ctx)
        cands = make_candidates(ctx, comps, [0.0 if r is None else r.fraction for r in runs])
        meta: dict[str, Any] = {
            "visible_tests": len(visible),
            "candidates": [_report(r) for r in runs],
            "fallback": None,
        }
        survivors = self._survivors(runs, meta)
        if not survivors:
            meta["fallback"] = "no program loaded: majority vote over the program texts"
            answer, votes = majority_vote(answers)
            return make_result("behaviour_majority", ctx, t0, answer, cands, votes, meta)
        try:
            inputs = await self._inputs(
                problem, ctx, spec, visible, [answers[i] for i in survivors]
            )
        except BudgetExceeded as e:
            meta.update(stopped_by_budget(e))
            inputs = []
        behaviour = await self._behaviour(ctx, spec, inputs, [answers[i] for i in survivors])
        per_survivor = []
        for i, extra in zip(survivors, behaviour, strict=True):
            run = runs[i]
            assert run is not None  # survivors loaded
            per_survivor.append([*run.cases, *extra])
        groups = behaviour_groups(survivors, per_survivor)
        passed = {i: r.passed for i, r in enumerate(runs) if r is not None}
        best = max(groups, key=lambda g: (len(g), passed[g[0]], -g[0]))
        answer = answers[best[0]]
        votes = {str(answers[g[0]]): float(len(g)) for g in groups}
        meta["survivors"] = survivors
        meta["inputs"] = [t.call for t in inputs]
        meta["groups"] = [{"members": g, "passed": passed[g[0]]} for g in groups]
        return make_result("behaviour_majority", ctx, t0, answer, cands, votes, meta)

    def _survivors(self, runs: Sequence[ProgramRun | None], meta: dict[str, Any]) -> list[int]:
        loaded = [i for i, r in enumerate(runs) if r is not None and r.loaded]
        if not self.filter or not loaded:
            return loaded
        passing = [i for i in loaded if (r := runs[i]) is not None and r.ok]
        if passing:
            return passing
        top = max(r.passed for r in runs if r is not None and r.loaded)
        best = [i for i in loaded if (r := runs[i]) is not None and r.passed == top]
        meta["fallback"] = (
            f"no program passed every visible test: the {len(best)} that load and pass "
            f"the most ({top}) survive"
        )
        return best

    async def _inputs(
        self,
        problem: Problem,
        ctx: Context,
        spec: CodeSpec,
        visible: Sequence[CallTest],
        programs: Sequence[str | None],
    ) -> list[CallTest]:
        """Test inputs the model writes, when there is more than one behaviour to tell
        apart; none otherwise (no request made)."""
        if self.inputs == 0 or len(set(programs)) < 2:
            return []
        text = INPUTS_PROMPT.format(prompt=spec.prompt, k=self.inputs, entry=spec.entry_point)
        request = ctx.request(
            problem,
            messages=(Message("user", text),),
            temperature=0.0,
            max_tokens=self.input_tokens,
        )
        ((reply, *_),) = await ctx.generate([request], label="test-inputs")
        shown = {t.call for t in visible}
        calls = [c for c in literal_calls(reply.text, spec.entry_point) if c not in shown]
        return [CallTest(c) for c in calls[: self.inputs]]

    async def _behaviour(
        self,
        ctx: Context,
        spec: CodeSpec,
        inputs: Sequence[CallTest],
        answers: Sequence[str | None],
    ) -> list[tuple[CaseResult, ...]]:
        """Each surviving program's results on the generated inputs (one execution each)."""
        if not inputs:
            return [() for _ in answers]
        programs = [assemble(spec.prompt, a) for a in answers if a is not None]
        runs = await ctx.execute(
            programs, as_cases(inputs), entry=spec.entry_point, label="behaviour"
        )
        return [r.cases for r in runs]


def _report(run: ProgramRun | None) -> dict[str, Any]:
    if run is None:
        return {"passed": None, "reason": "no code found"}
    return {"passed": run.passed, "reason": run.reason}
