"""Strategy, Context and the strategy registry.

A strategy is a frozen dataclass whose fields are its whole configuration, called as
``await strategy(problem, ctx)``. It reaches compute only through the ``Context``, so
every token it spends is checked against the budget and written to the ledger.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

from ponder.budget import EventKind, Ledger
from ponder.engines.base import Engine, prompt_token_bound
from ponder.errors import BudgetExceeded, CapabilityMissing, ConfigError
from ponder.tasks.base import Task
from ponder.types import (
    Candidate,
    Completion,
    ConfidenceStop,
    GenRequest,
    Message,
    Problem,
    Result,
    Score,
    Usage,
)
from ponder.verifiers.base import Scorer
from ponder.verifiers.sandbox import Sandbox

if TYPE_CHECKING:
    from ponder.verifiers.code_exec import ProgramRun

logger = logging.getLogger(__name__)


@dataclass
class Context:
    """Everything a strategy may use for one problem.

    ``max_tokens`` caps each generated solution; ``seed`` is the base seed of this
    problem's sampling (None: engine default), advanced for every request made.
    ``sandbox`` runs programs for ``execute`` (None: the shared default sandbox).
    """

    engine: Engine
    task: Task
    ledger: Ledger = field(default_factory=Ledger)
    max_tokens: int = 512
    seed: int | None = None
    sandbox: Sandbox | None = None
    _requests_made: int = 0

    def request(
        self,
        problem: Problem,
        *,
        n: int = 1,
        temperature: float = 0.0,
        top_p: float = 1.0,
        top_k: int = 0,
        logprobs: bool = False,
        top_logprobs: int = 0,
        max_tokens: int | None = None,
        messages: Sequence[Message] | None = None,
        continuation: str = "",
        stop: Sequence[str] = (),
        confidence_stop: ConfidenceStop | None = None,
    ) -> GenRequest:
        """A request for ``problem`` with the task's prompt (or ``messages``), going on
        from ``continuation`` when the answer is partly written."""
        seed = None
        if self.seed is not None:
            # each request of a problem gets its own block of seeds, one per sibling
            seed = self.seed + 1000 * self._requests_made
        self._requests_made += 1
        return GenRequest(
            messages=tuple(messages) if messages is not None else self.task.messages(problem),
            n=n,
            max_tokens=max_tokens or self.max_tokens,
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            seed=seed,
            logprobs=logprobs,
            top_logprobs=top_logprobs,
            continuation=continuation,
            stop=tuple(stop),
            confidence_stop=confidence_stop,
        )

    async def generate(
        self, requests: Sequence[GenRequest], kind: EventKind = "generate", label: str = ""
    ) -> list[list[Completion]]:
        """Run requests on the engine: budget-checked before, recorded on the ledger after.

        The check takes the call's worst case: ``n * max_tokens`` generated tokens per
        request and, under a limit on total tokens, the prompt tokens the engine may
        charge (``prompt_token_bound``), so a call that could pass a budget is refused
        with ``BudgetExceeded`` before it runs."""
        caps = self.engine.capabilities
        for r in requests:
            if r.wants_logprobs and not caps.logprobs:
                raise CapabilityMissing(
                    f"engine {self.engine.name} does not return logprobs, which this "
                    "strategy or scorer needs"
                )
            if r.confidence_stop is not None and not caps.confidence_stop:
                raise CapabilityMissing(
                    f"engine {self.engine.name} cannot stop a sequence when its confidence "
                    "drops (DeepConf's online mode); use the embedded llama.cpp engine or "
                    "the offline mode"
                )
        worst = sum(r.n * r.max_tokens for r in requests)
        limited = self.ledger.limits_total_tokens
        prompt = sum(prompt_token_bound(self.engine, r) for r in requests) if limited else 0
        self.ledger.check(worst, calls=len(requests), prompt_tokens=prompt)
        t0 = time.perf_counter()
        out = await self.engine.generate(requests)
        seconds = time.perf_counter() - t0
        usage = sum((c.usage for comps in out for c in comps), start=Usage())
        if limited and usage.total_tokens > prompt + worst:
            # the budget trusted the engine's count; say so where it was wrong
            logger.warning(
                "engine %s charged %d tokens for a call checked at most %d (%d prompt); "
                "a token budget may be passed",
                self.engine.name, usage.total_tokens, prompt + worst, prompt,
            )  # fmt: skip
        self.ledger.record(kind, usage, seconds, label)
        return out

    async def score(
        self, problem: Problem, completions: Sequence[Completion], scorer: Scorer
    ) -> list[Score]:
        scores = await scorer.score(problem, completions, self)
        if len(scores) != len(completions):
            raise RuntimeError(
                f"scorer {scorer.name} returned {len(scores)} scores for "
                f"{len(completions)} candidates"
            )
        return scores

    def extract(self, text: str) -> str | None:
        return self.task.extract(text)

    async def execute(
        self,
        programs: Sequence[str],
        cases: Sequence[Mapping[str, Any]],
        *,
        entry: str | None,
        label: str,
    ) -> list[ProgramRun]:
        """Run programs on test cases in the sandbox (``code_exec.run_programs``:
        identical programs once); checked against the time budget before, on the
        ledger after as one ``execute`` event with the sandbox's isolation mode."""
        from ponder.verifiers.code_exec import default_sandbox, run_programs

        self.ledger.check(0, calls=0)
        sandbox = self.sandbox if self.sandbox is not None else default_sandbox()
        return await run_programs(
            sandbox, programs, cases, entry=entry, ledger=self.ledger, label=label
        )


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
