"""The library's front door: answer one question with a strategy."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from ponder.core.budget import Ledger
from ponder.core.engine import Engine
from ponder.core.task import Task
from ponder.core.types import Problem, Result
from ponder.strategies import Context, Strategy, make_strategy


async def answer_question(
    question: str,
    *,
    engine: Engine,
    strategy: str | Strategy = "majority",
    options: Mapping[str, Any] | None = None,
    task: Task | None = None,
    max_tokens: int = 512,
    seed: int | None = 0,
    budget: int | None = None,
) -> Result:
    """Solve ``question`` with ``strategy`` (a registered name plus ``options``, or a
    strategy object). ``task`` supplies the prompt and answer extraction; the default is
    the math prompt (final answer in ``\\boxed{}``). ``budget`` limits the tokens spent,
    prompt and generated: the strategy stops with its best answer when its next call
    could pass it (``meta["stopped"]``), and ``BudgetExceeded`` is raised when not even
    its first call fits."""
    if isinstance(strategy, str):
        strategy = make_strategy(strategy, options or {})
    if task is None:
        from ponder.tasks import make_task

        task = make_task("demo")
    ctx = Context(engine=engine, task=task, ledger=Ledger(), max_tokens=max_tokens, seed=seed)
    with ctx.ledger.budget(total_tokens=budget):
        return await strategy(Problem(id="question", question=question), ctx)


def solve(question: str, *, engine: Engine, **kwargs: Any) -> Result:
    """Synchronous ``answer_question`` for scripts and notebooks without an event loop.

    The engine is used from a fresh event loop; close it with ``asyncio.run(engine.aclose())``.
    """
    return asyncio.run(answer_question(question, engine=engine, **kwargs))
