"""An LLM judge: ask a model whether a solution is correct and read P(yes) from logprobs.

The judge sees the question and one candidate solution and must answer with one word.
Its score is P(yes) / (P(yes) + P(no)), where each is the summed probability of the
top alternatives at the first generated token that spell yes or no (any case, leading
space ignored). When neither appears among the alternatives the judge is uninformative
and scores 0.5. The judge's tokens go on the ledger as ``score`` events.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ponder.errors import CapabilityMissing
from ponder.types import Completion, GenRequest, Message, Problem, Score, TokenLogprob

if TYPE_CHECKING:
    from ponder.strategies.base import Context

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


def p_yes(first: TokenLogprob) -> float:
    """P(yes) normalised over yes and no, from one token's alternatives."""
    mass = {"yes": 0.0, "no": 0.0}
    seen: set[str] = set()
    for tok, lp in ((first.token, first.logprob), *first.top):
        word = tok.strip().lower()
        if word in mass and tok not in seen:
            seen.add(tok)
            mass[word] += math.exp(lp)
    total = mass["yes"] + mass["no"]
    return 0.5 if total == 0 else mass["yes"] / total


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
        scores = []
        for out in outs:
            lps = out[0].logprobs
            if not lps:
                raise CapabilityMissing("the judge needs logprobs; the engine returned none")
            scores.append(Score(p_yes(lps[0])))
        return scores
