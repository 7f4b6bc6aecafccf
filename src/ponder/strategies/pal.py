"""Program-aided answers: ``pal`` (Gao et al. 2023, "PAL: Program-aided Language
Models"), with program-aided self-consistency over n programs.

The model writes a short Python program whose printed output is the answer; the
sandbox runs each program (``ponder.core.sandbox``: bubblewrap when it works, and
never unguarded with the user's privileges unless the user opted in);
the answers the programs print, read by the task's own extractor, are voted on; and
when every program fails, one greedy chain of thought on the task's own prompt
answers instead. The arithmetic is the interpreter's, so a program cannot slip a
digit, and a program is usually shorter than the chain of thought it replaces.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, cast

from ponder.core.context import Context
from ponder.core.errors import BudgetExceeded, ConfigError
from ponder.core.sandbox import ISOLATIONS, Isolation, Limits, Sandbox, isolation_mode
from ponder.core.types import Candidate, Message, Problem, Result
from ponder.strategies.base import make_candidates, make_result, register, stopped_by_budget
from ponder.strategies.sampling import check_sampling, sample
from ponder.strategies.voting import majority_vote
from ponder.verifiers.program import ProgramOutcome, execute_program, program_in

__all__ = ["PAL_EXAMPLES", "PAL_INSTRUCTION", "PAL_SYSTEM", "ProgramAided", "pal_messages"]

PAL_SYSTEM = "You are a careful Python programmer. You solve math problems by writing programs."

PAL_INSTRUCTION = (
    "Write a short Python program that computes the answer to the problem below and "
    "prints it with print(). Print only the final answer, as a plain number. Use "
    "variables with clear names for the quantities in the problem. Put the program in "
    "one ```python code block.\n\nProblem: {question}"
)
"""The user turn of a ``pal`` prompt; ``{question}`` is the problem's question."""

PAL_EXAMPLES: tuple[tuple[str, str], ...] = (
    (
        "A baker makes 3 trays of 12 muffins. She sells 25 muffins and gives 4 to her "
        "neighbour. How many muffins does she have left?",
        "muffins_per_tray = 12\ntrays = 3\nbaked = trays * muffins_per_tray\n"
        "sold = 25\ngiven = 4\nleft = baked - sold - given\nprint(left)\n",
    ),
    (
        "Tom reads 15 pages a day for 4 days, then 20 pages a day for 3 days. His book has "
        "150 pages. What percent of the book has he read?",
        "pages_read = 15 * 4 + 20 * 3\nbook_pages = 150\n"
        "percent = pages_read / book_pages * 100\nprint(percent)\n",
    ),
)
"""Worked examples (question, program) for ``shots`` > 0, written for ponder."""

PROGRAM_START = "```python\n"
"""The assistant turn begins with this fence, so the model writes code at once."""
PROGRAM_END = "```"
"""A stop string: generation ends with the program, before any explanation."""

FALLBACKS = ("cot", "none")
EXECUTIONS_AT_ONCE = 4


def pal_messages(question: str, shots: int = 0) -> tuple[Message, ...]:
    """The ``pal`` prompt for ``question`` with the first ``shots`` worked examples as
    earlier turns."""
    turns = [Message("system", PAL_SYSTEM)]
    for example, program in PAL_EXAMPLES[:shots]:
        turns.append(Message("user", PAL_INSTRUCTION.format(question=example)))
        turns.append(Message("assistant", f"{PROGRAM_START}{program}{PROGRAM_END}"))
    turns.append(Message("user", PAL_INSTRUCTION.format(question=question)))
    return tuple(turns)


@register("pal")
@dataclass(frozen=True)
class ProgramAided:
    """Program-aided answers: n programs run in the sandbox, their printed answers vote.

    One request asks for ``n`` programs with ``pal_messages`` (``shots`` worked
    examples first); each completion begins inside a ```python fence and stops at the
    closing fence (at most ``max_program_tokens``, default the run's ``max_tokens``).
    ``temperature`` None means greedy for n = 1 and 0.7 for n > 1. Each program runs in
    its own sandbox process (``cpu_seconds``, ``wall_seconds``, ``memory_mb``;
    ``isolation`` auto / bwrap / unprivileged / unisolated / process as in ``Sandbox``,
    checked when the strategy is made, so a sandbox that may not run here stops the run
    before its first problem; ``require_isolation`` refuses to run without bubblewrap);
    every execution goes on the ledger (kind ``execute``, its seconds and isolation).
    The answer is the majority over the programs that printed one (the task's
    extractor reads the output; ties as in ``ponder.strategies.voting``). When none
    did, ``fallback="cot"`` draws one greedy sample of the task's own prompt and takes
    its answer (``"none"``: no answer). Candidates are the programs in order (text:
    the fenced program; answer: what it printed, None when it failed), then the
    fallback's chain of thought. ``Result.meta`` has ``programs``, ``ran`` (printed an
    answer), ``failed``, ``failures`` (count per reason), ``outcomes`` (status,
    answer, reason, end of the output and seconds of each program), ``fallback``
    (whether it was used), ``isolation`` and, from the ledger, ``execution`` (programs
    run and their seconds). A fallback chain that would not fit a token budget is not
    drawn: no answer, and ``meta`` has ``stopped="budget"`` and the ``stop_reason``.
    """

    n: int = 1
    temperature: float | None = None
    top_p: float = 0.95
    shots: int = 0
    max_program_tokens: int | None = None
    fallback: str = "cot"
    cpu_seconds: int = 5
    wall_seconds: float = 10.0
    memory_mb: int = 512
    isolation: str = "auto"
    require_isolation: bool = False

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ConfigError(f"pal: n must be >= 1, got {self.n}")
        if not 0 <= self.shots <= len(PAL_EXAMPLES):
            raise ConfigError(f"pal: shots must be in 0..{len(PAL_EXAMPLES)}, got {self.shots}")
        if self.max_program_tokens is not None and self.max_program_tokens < 1:
            raise ConfigError(
                f"pal: max_program_tokens must be >= 1, got {self.max_program_tokens}"
            )
        if self.fallback not in FALLBACKS:
            raise ConfigError(
                f"pal: fallback must be one of {', '.join(FALLBACKS)}, got {self.fallback!r}"
            )
        if self.isolation not in ISOLATIONS:
            raise ConfigError(
                f"pal: isolation must be one of {', '.join(ISOLATIONS)}, got {self.isolation!r}"
            )
        check_sampling(self.sampling_temperature, self.top_p)
        _ = self.limits  # a bad limit is a ConfigError now, not at the first problem
        # so is a sandbox that may not run here (no bubblewrap, no opt-in)
        isolation_mode(self.isolation, require_isolation=self.require_isolation)

    @property
    def sampling_temperature(self) -> float:
        if self.temperature is not None:
            return float(self.temperature)
        return 0.0 if self.n == 1 else 0.7

    @property
    def limits(self) -> Limits:
        return Limits(
            cpu_seconds=self.cpu_seconds,
            wall_seconds=self.wall_seconds,
            memory_mb=self.memory_mb,
        )

    async def __call__(self, problem: Problem, ctx: Context) -> Result:
        t0 = time.perf_counter()
        sandbox = Sandbox(
            limits=self.limits,
            isolation=cast(Isolation, self.isolation),  # checked in __post_init__
            require_isolation=self.require_isolation,
        )
        temperature = self.sampling_temperature
        request = ctx.request(
            problem,
            n=self.n,
            temperature=temperature,
            top_p=self.top_p if temperature > 0 else 1.0,
            max_tokens=self.max_program_tokens,
            messages=pal_messages(problem.question, self.shots),
            continuation=PROGRAM_START,
            stop=(PROGRAM_END,),
        )
        (completions,) = await ctx.generate([request], label="pal programs")
        texts = [
            PROGRAM_START + c.text + (PROGRAM_END if c.stop_sequence is not None else "")
            for c in completions
        ]

        gate = asyncio.Semaphore(EXECUTIONS_AT_ONCE)

        async def run(text: str) -> ProgramOutcome:
            async with gate:
                return await execute_program(ctx, sandbox, program_in(text), label="pal")

        outcomes = await asyncio.gather(*(run(t) for t in texts))
        cands: list[Candidate] = [
            Candidate(text, o.answer, c.usage, finish_reason=c.finish_reason)
            for text, o, c in zip(texts, outcomes, completions, strict=True)
        ]
        answer, votes = majority_vote([o.answer for o in outcomes])
        used_fallback = answer is None and self.fallback == "cot"
        stopped: dict[str, str] = {}
        if used_fallback:
            try:
                cot = await sample(problem, ctx, 1, 0.0, 1.0, label="pal fallback")
            except BudgetExceeded as e:
                stopped = stopped_by_budget(e)  # no program answered, no room for the chain
            else:
                (fallback,) = make_candidates(ctx, cot)
                cands.append(fallback)
                answer = fallback.answer
                votes = {answer: 1.0} if answer is not None else {}
        failures = Counter(o.status for o in outcomes if not o.ok)
        meta: dict[str, Any] = {
            **stopped,
            "programs": len(outcomes),
            "ran": sum(o.ok for o in outcomes),
            "failed": sum(not o.ok for o in outcomes),
            "failures": dict(sorted(failures.items())),
            "outcomes": [o.to_dict() for o in outcomes],
            "fallback": used_fallback,
            "isolation": sandbox.mode,
        }
        return make_result("pal", ctx, t0, answer, cands, votes, meta)
