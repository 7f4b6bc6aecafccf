"""An LLM judge: ask a model whether a solution is correct and read P(yes) from logprobs.

The judge sees the question and one candidate solution and must answer with one word.
Its score is P(yes) / (P(yes) + P(no)), where each is the summed probability of the
top alternatives at the first generated token that spell yes or no (any case, leading
space ignored). When neither appears among the alternatives the judge is uninformative
and scores 0.5. The judge's tokens go on the ledger as ``score`` events.

:class:`StepJudgeVerifier` is the same judge as a process verifier: it rates each step
of a solution given the question and the steps before it. Its prompts are laid out for
prefix caching: the instructions, the problem and the steps come first and only the
question about the last step comes at the end, so the prompt for step ``k + 1`` starts
with the prompt for step ``k`` up to that question, and an engine that reuses prompt
prefixes (llama.cpp, vLLM, SGLang) prefills little more than the new step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ponder.core.errors import CapabilityMissing, ConfigError
from ponder.core.types import Completion, GenRequest, Message, Problem, Score
from ponder.grading.freeform import p_yes
from ponder.verifiers.process import Path, ProcessVerifier, new_prefixes, per_item
from ponder.verifiers.steps import Aggregation, Segmentation

if TYPE_CHECKING:
    from ponder.core.context import Context

JUDGE_SYSTEM = (
    "You check solutions to problems. Reply with one word: Yes if the solution and its "
    "final answer are correct, No otherwise."
)


def judge_messages(question: str, solution: str) -> tuple[Message, ...]:
    return (
        Message("system", JUDGE_SYSTEM),
        Message(
            "user",
            f"Problem:\n{question}\n\nProposed solution:\n{solution}\n\n"
            "Is this solution correct? Answer Yes or No.",
        ),
    )


def _verdicts(outs: Sequence[Sequence[Completion]], who: str) -> list[float]:
    """P(yes) of each one-token judge answer."""
    verdicts = []
    for out in outs:
        lps = out[0].logprobs
        if not lps:
            raise CapabilityMissing(f"{who} needs logprobs; the engine returned none")
        verdicts.append(p_yes(lps[0]))
    return verdicts


@dataclass(frozen=True)
class JudgeScorer:
    """Outcome judge on the strategy's own engine (the same model judges itself)."""

    top_logprobs: int = 10
    max_solution_chars: int = 6000

    @property
    def name(self) -> str:
        return "judge"

    @property
    def needs_logprobs(self) -> bool:
        return False

    async def score(
        self, problem: Problem, completions: Sequence[Completion], ctx: Context
    ) -> list[Score]:
        if not completions:
            return []
        requests = [
            GenRequest(
                messages=judge_messages(problem.question, c.text[-self.max_solution_chars :]),
                max_tokens=1,
                temperature=0.0,
                top_logprobs=self.top_logprobs,
            )
            for c in completions
        ]
        outs = await ctx.generate(requests, kind="score", label="judge")
        return [Score(p) for p in _verdicts(outs, "the judge")]


STEP_JUDGE_SYSTEM = (
    "You check solutions to problems one step at a time. You are shown a problem and a "
    "solution so far, cut into numbered steps, and asked about its last step. Reply with "
    "one word: Yes if the last step is correct and follows from the problem and the steps "
    "before it, No if it contains an error."
)


def _steps_shown(steps: Sequence[str], max_chars: int) -> tuple[int, list[str]]:
    """How many leading steps to leave out, and the rest, so the steps shown fit in
    ``max_chars``; the last step is always shown (its end, when it alone is too long).

    Short solutions are shown whole, which keeps the prompts of consecutive steps
    prefix-extensions of each other; only a solution past the limit loses that."""
    first, total = len(steps), 0
    while first > 0 and total + len(steps[first - 1]) <= max_chars:
        first -= 1
        total += len(steps[first])
    if first == len(steps):
        return first - 1, [steps[-1][-max_chars:]]
    return first, list(steps[first:])


def step_judge_messages(
    question: str, steps: Sequence[str], *, max_solution_chars: int = 6000
) -> tuple[Message, ...]:
    """The judge's prompt for the last of ``steps``.

    The fixed parts come first and the question about the step comes last: for steps
    ``s1..sk`` the user message is ``Problem, s1, ..., sk, question(k)``, so the prompt
    for ``s1..sk+1`` repeats the prompt for ``s1..sk`` up to ``question(k)``.
    """
    if not steps:
        raise ValueError("the step judge needs at least one step")
    omitted, shown = _steps_shown(steps, max_solution_chars)
    parts = [f"Problem:\n{question}\n\nSolution so far:\n\n"]
    if omitted:
        parts.append(f"(steps 1 to {omitted} are left out)\n\n")
    parts.extend(f"Step {i}:\n{step}\n\n" for i, step in enumerate(shown, start=omitted + 1))
    k = len(steps)
    parts.append(f"Is step {k}, the last step above, correct? Answer Yes or No.")
    return (Message("system", STEP_JUDGE_SYSTEM), Message("user", "".join(parts)))


class StepJudgeVerifier(ProcessVerifier):
    """Process verifier on the strategy's own engine: P(yes) that each step is right.

    Every new step costs one prompt and one generated token; all the steps a call
    needs go to the engine in one batch, so they are decoded together and, on an engine
    with prefix reuse, share the prefill of the steps they have in common.
    """

    def __init__(
        self,
        segmentation: Segmentation = "blank",
        aggregation: Aggregation = "last",
        *,
        top_logprobs: int = 10,
        max_solution_chars: int = 6000,
    ) -> None:
        super().__init__(segmentation, aggregation)
        if top_logprobs < 1:
            raise ConfigError(f"top_logprobs must be >= 1, got {top_logprobs}")
        if max_solution_chars < 1:
            raise ConfigError(f"max_solution_chars must be >= 1, got {max_solution_chars}")
        self.top_logprobs = top_logprobs
        self.max_solution_chars = max_solution_chars

    @property
    def name(self) -> str:
        return "judge:step"

    async def _score_from(
        self, problem: Problem, items: Sequence[tuple[Path, int]], ctx: Context
    ) -> list[list[float]]:
        requests = [
            GenRequest(
                messages=step_judge_messages(
                    problem.question, prefix, max_solution_chars=self.max_solution_chars
                ),
                max_tokens=1,
                temperature=0.0,
                top_logprobs=self.top_logprobs,
            )
            for prefix in new_prefixes(items)
        ]
        if not requests:
            return [[] for _ in items]
        outs = await ctx.generate(requests, kind="score", label="judge:step")
        return per_item(items, _verdicts(outs, "the step judge"))
