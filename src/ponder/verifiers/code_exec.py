"""``ExecutionVerifier`` (``--scorer tests:visible``): through ``Context.execute``, it
scores each candidate of a code problem by the share of the prompt's visible tests it
passes (``visible_tests``); with no visible tests, 1 for a program that loads (and
defines the entry point, as the prompt's stub does), else 0. It never raises for what a
candidate does: hostile or broken code scores 0, and its run says why. The programs run
in the sandbox's harness (``ponder.core.execution``).
"""

from __future__ import annotations

from collections.abc import Sequence

from ponder.core.context import Context
from ponder.core.execution import ProgramRun
from ponder.core.types import Completion, Problem, Score
from ponder.tasks.code import assemble, code_spec
from ponder.tasks.visible_tests import as_cases, visible_tests

__all__ = ["ExecutionVerifier"]


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
