"""Strategy, Context and the strategy registry.

A strategy is a frozen dataclass whose fields are its whole configuration, called as
``await strategy(problem, ctx)``. It reaches compute only through the ``Context``, so
every token it spends is checked against the budget and written to the ledger.

Each strategy lives in a module of its own in this package and registers itself there
with ``@register("name")``. The registry finds them by importing every module of the
package the first time it is asked (``strategy_names``, ``strategy_class``,
``make_strategy``), so adding a strategy is adding its module: there is no list to edit.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from typing import Any, ClassVar, Protocol, TypeVar

from ponder.core.context import Context
from ponder.core.errors import BudgetExceeded, ConfigError
from ponder.core.types import (
    Candidate,
    Completion,
    Problem,
    Result,
)

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
    """How compute is spent on one problem: a frozen dataclass whose fields are its whole
    configuration, registered by name with ``@register``, called as
    ``await strategy(problem, ctx)``. It reaches the engine only through ``ctx``, so its
    ``Result`` says what it cost."""

    name: ClassVar[str]

    async def __call__(self, problem: Problem, ctx: Context) -> Result: ...


S = TypeVar("S", bound=type)

PACKAGE = "ponder.strategies"
"""The package whose modules the registry imports to find the strategies."""

_REGISTRY: dict[str, type] = {}
_discovered = False


def register(name: str) -> Callable[[S], S]:
    """Class decorator: make a strategy constructible by name from the CLI."""

    def deco(cls: S) -> S:
        if name in _REGISTRY:
            raise ValueError(f"strategy {name!r} registered twice")
        _REGISTRY[name] = cls
        cls.name = name  # type: ignore[attr-defined]
        return cls

    return deco


def _discover() -> None:
    """Import every module of ``PACKAGE``, subpackages included, once: importing a
    strategy's module registers it. Each module is imported here as the walk yields it,
    so one that fails to import raises before the walk goes on."""
    global _discovered
    if _discovered:
        return
    package = importlib.import_module(PACKAGE)
    for module in pkgutil.walk_packages(package.__path__, prefix=f"{PACKAGE}."):
        importlib.import_module(module.name)
    # only once every import succeeded: a failed discovery is tried again, not half-kept
    _discovered = True


def strategy_names() -> list[str]:
    _discover()
    return sorted(_REGISTRY)


def sample_count_field(name: str) -> str | None:
    """The field of strategy ``name`` that counts its samples: ``n``, or ``max_n`` for
    the adaptive strategies (the most they may draw); None when it has neither."""
    names = {f.name for f in fields(strategy_class(name))}
    if "n" in names:
        return "n"
    return "max_n" if "max_n" in names else None


def strategy_class(name: str) -> type:
    _discover()
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
