"""Strategy, Context and the strategy registry.

A strategy is a frozen dataclass whose fields are its whole configuration, called as
``await strategy(problem, ctx)``. It reaches compute only through the ``Context``, so
every token it spends is checked against the budget and written to the ledger.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

from ponder.core.context import Context
from ponder.core.errors import BudgetExceeded, ConfigError
from ponder.core.types import (
    Candidate,
    Completion,
    Problem,
    Result,
)

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)


def stopped_by_budget(error: BudgetExceeded) -> dict[str, str]:
    """What a strategy that stopped early for its budget adds to ``Result.meta``:
    ``stopped`` is ``"budget"`` and ``stop_reason`` says which limit the refused call
    would have passed.

    A strategy whose next call does not fit an open budget (``BudgetExceeded``) stops
    there with its best answer so far and these keys; one that has nothing to answer
    from yet lets the error propagate (the eval runner then records the problem with
    no answer and the same keys)."""
    return {"stopped": "budget", "stop_reason": f"budget: {error}"}


def check_sampling(temperature: float, top_p: float) -> None:
    """``ConfigError`` for a sampling temperature below 0 or a top_p outside (0, 1]."""
    if temperature < 0:
        raise ConfigError(f"temperature must be >= 0, got {temperature}")
    if not 0 < top_p <= 1:
        raise ConfigError(f"top_p must be in (0, 1], got {top_p}")


async def sample(
    problem: Problem,
    ctx: Context,
    n: int,
    temperature: float,
    top_p: float,
    *,
    logprobs: bool = False,
    label: str = "",
) -> list[Completion]:
    """``n`` plain samples of the task's prompt in one request (no stop strings, no
    continuation: what a replay engine can serve), with logprobs and the top 5
    alternatives when asked."""
    request = ctx.request(
        problem,
        n=n,
        temperature=temperature,
        top_p=top_p,
        logprobs=logprobs,
        top_logprobs=5 if logprobs else 0,
    )
    (completions,) = await ctx.generate([request], label=label)
    return completions


def make_candidates(
    ctx: Context, completions: Sequence[Completion], scores: Sequence[float] | None = None
) -> tuple[Candidate, ...]:
    """Completions as candidates, each with the answer the task extracts from it."""
    return tuple(
        Candidate(
            text=c.text,
            answer=ctx.extract(c.text),
            usage=c.usage,
            score=None if scores is None else scores[i],
            finish_reason=c.finish_reason,
        )
        for i, c in enumerate(completions)
    )


def make_result(
    name: str,
    ctx: Context,
    t0: float,
    answer: str | None,
    candidates: Sequence[Candidate],
    votes: Mapping[str, float],
    meta: Mapping[str, Any] | None = None,
) -> Result:
    """A strategy's result: its cost is everything on the context's ledger, its time
    what has passed since ``t0`` (a ``time.perf_counter()`` reading). When programs ran
    in a sandbox, ``meta["execution"]`` says how many, their seconds (summed) and how
    many ran in each isolation mode (``isolation``)."""
    account = dict(meta or {})
    if ctx.ledger.executions():
        account["execution"] = {
            "executions": ctx.ledger.executions(),
            "seconds": ctx.ledger.seconds("execute"),
            "isolation": ctx.ledger.isolation(),
        }
    return Result(
        answer=answer,
        candidates=tuple(candidates),
        votes=dict(votes),
        usage=ctx.ledger.total(),
        seconds=time.perf_counter() - t0,
        strategy=name,
        meta=account,
    )


class Strategy(Protocol):
    name: ClassVar[str]

    async def __call__(self, problem: Problem, ctx: Context) -> Result: ...


S = TypeVar("S", bound=type)

_REGISTRY: dict[str, type] = {}


def register(name: str) -> Callable[[S], S]:
    """Class decorator: make a strategy constructible by name from the CLI."""

    def deco(cls: S) -> S:
        if name in _REGISTRY:
            raise ValueError(f"strategy {name!r} registered twice")
        _REGISTRY[name] = cls
        cls.name = name  # type: ignore[attr-defined]
        return cls

    return deco


def strategy_names() -> list[str]:
    return sorted(_REGISTRY)


def sample_count_field(name: str) -> str | None:
    """The field of strategy ``name`` that counts its samples: ``n``, or ``max_n`` for
    the adaptive strategies (the most they may draw); None when it has neither."""
    names = {f.name for f in fields(strategy_class(name))}
    if "n" in names:
        return "n"
    return "max_n" if "max_n" in names else None


def strategy_class(name: str) -> type:
    if name not in _REGISTRY:
        raise ConfigError(f"unknown strategy {name!r}; choose from {', '.join(strategy_names())}")
    return _REGISTRY[name]


def make_strategy(name: str, options: Mapping[str, Any]) -> Strategy:
    """Build a registered strategy from options; options it has no field for are ignored
    only when their value is None (unset flags), otherwise they are an error."""
    cls = strategy_class(name)
    known = {f.name for f in fields(cls)}
    unknown = sorted(k for k, v in options.items() if k not in known and v is not None)
    if unknown:
        raise ConfigError(f"strategy {name!r} takes no option(s) {', '.join(unknown)}")
    obj: Strategy = cls(**{k: v for k, v in options.items() if k in known and v is not None})
    return obj
