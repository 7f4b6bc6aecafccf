"""A toy task and toy strategies for the eval tests, and a script for the crash tests.

As a script: ``python _toys.py STORE PROBLEMS DELAY`` runs a majority-of-3 evaluation
with a slow scripted engine and prints the summary as JSON.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import ClassVar

from ponder.core.context import Context
from ponder.core.types import Candidate, GenRequest, Message, Problem, Result
from ponder.engines.scripted import ScriptedEngine
from ponder.runs.runner import run_eval

QUESTION = re.compile(r"What is (\d+) plus one\?")


@dataclass(frozen=True)
class ToyTask:
    """Problem i asks for i + 1; answers are written as ``answer: X``."""

    size: int = 10
    name: str = "toy"

    def load(self, limit: int | None = None) -> list[Problem]:
        count = self.size if limit is None else min(limit, self.size)
        return [
            Problem(id=f"p{i}", question=f"What is {i} plus one?", answer=str(i + 1))
            for i in range(count)
        ]

    def messages(self, problem: Problem) -> tuple[Message, ...]:
        return (Message("user", problem.question),)

    def extract(self, text: str) -> str | None:
        m = re.search(r"answer: (\S+)", text)
        return m.group(1) if m else None

    def is_correct(self, predicted: str | None, problem: Problem) -> bool:
        return predicted is not None and predicted == problem.answer


def problem_number(request: GenRequest) -> int:
    assert request.messages is not None
    m = QUESTION.search(request.messages[-1].content)
    assert m is not None, request.messages
    return int(m.group(1))


def toy_responder(request: GenRequest, _index: int) -> str:
    """Right for every problem except those numbered 3, 7, 11, ...: 3 of 4 correct."""
    i = problem_number(request)
    answer = i + 1 if i % 4 != 3 else 0
    return f"let me think step by step answer: {answer}"


@dataclass(frozen=True)
class Vote:
    """Majority over n samples (ties: first seen), the shape of the real strategy."""

    n: int = 3
    temperature: float = 0.7
    name: ClassVar[str] = "majority"

    async def __call__(self, problem: Problem, ctx: Context) -> Result:
        t0 = time.perf_counter()
        (comps,) = await ctx.generate(
            [ctx.request(problem, n=self.n, temperature=self.temperature)]
        )
        cands = tuple(Candidate(c.text, ctx.extract(c.text), c.usage) for c in comps)
        votes = Counter(c.answer for c in cands if c.answer is not None)
        answer = max(votes, key=lambda a: votes[a]) if votes else None
        return Result(
            answer=answer,
            candidates=cands,
            votes={a: float(v) for a, v in votes.items()},
            usage=ctx.ledger.total(),
            seconds=time.perf_counter() - t0,
            strategy=self.name,
        )


def main(argv: list[str]) -> None:
    store, size, delay = argv[0], int(argv[1]), float(argv[2])
    task = ToyTask(size=size)
    summary = run_eval(
        task=task,
        problems=task.load(),
        strategy=Vote(n=3),
        engine=ScriptedEngine(toy_responder, delay=delay),
        store=store,
        concurrency=2,
        progress=False,
    )
    print(json.dumps(summary.to_dict()))


if __name__ == "__main__":
    main(sys.argv[1:])
