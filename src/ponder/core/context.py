"""The compute gate: ``Context``, the one way a strategy or scorer reaches an engine, and
the ``Scorer`` protocol that judges candidates through it (with ``SampleLogprobsScorer``
for a scorer that reads more of each sample's logprob alternatives than the usual
``DEFAULT_SAMPLE_TOP_LOGPROBS``).

Every call passes ``Context.generate`` (checked against the budget before, recorded on
the ledger after) or ``Context.execute`` (programs in the sandbox, on the ledger as one
``execute`` event), so every token and execution a strategy spends is counted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ponder.core.budget import EventKind, Ledger
from ponder.core.engine import Engine, prompt_token_bound
from ponder.core.errors import CapabilityMissing
from ponder.core.execution import ProgramRun, default_sandbox, run_programs
from ponder.core.reasoning import final_answer
from ponder.core.sandbox import Sandbox
from ponder.core.task import Task
from ponder.core.types import Completion, ConfidenceStop, GenRequest, Message, Problem, Score, Usage

logger = logging.getLogger(__name__)


@dataclass
class Context:
    """Everything a strategy may use for one problem.

    ``max_tokens`` caps each generated solution; ``seed`` is the base seed of this
    problem's sampling (None: engine default), advanced for every request made.
    ``sandbox`` runs programs for ``execute`` (None: the shared default sandbox).

    ``capture_top_logprobs`` > 0 asks the plain sampling path
    (``ponder.strategies.sampling.sample``) to draw every sample with its logprobs and
    that many alternatives per token, whatever the strategy asked for, and to keep the
    completions so drawn in ``captured``, in order, for the runner to compute the
    samples' features from (``ponder eval --features``). What the strategy sees is
    what it asked for, so its results do not change. ``capture_hidden`` has those
    samples carry their final hidden states too (``GenRequest.hidden``; ``ponder eval
    --features --hidden``).
    """

    engine: Engine
    task: Task
    ledger: Ledger = field(default_factory=Ledger)
    max_tokens: int = 512
    seed: int | None = None
    sandbox: Sandbox | None = None
    capture_top_logprobs: int = 0
    capture_hidden: bool = False
    captured: list[Completion] = field(default_factory=list)
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
            if r.hidden and not caps.hidden_states:
                raise CapabilityMissing(
                    f"engine {self.engine.name} does not return the hidden states of what it "
                    "generates; use the embedded llama.cpp engine (or `ponder bank features "
                    "--hidden` on the finished bank)"
                )
            if r.tools and not caps.tools:
                raise CapabilityMissing(
                    f"engine {self.engine.name} cannot show the model tools and read its "
                    "calls back (for the embedded engine: the model's chat template shows "
                    "no tools in a format ponder reads)"
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
        detail = {"requests": tuple(requests), "outputs": out} if self.ledger.detailed else None
        self.ledger.record(kind, usage, seconds, label, detail=detail)
        return out

    async def score(
        self, problem: Problem, completions: Sequence[Completion], scorer: Scorer
    ) -> list[Score]:
        t0 = time.perf_counter()
        scores = await scorer.score(problem, completions, self)
        if len(scores) != len(completions):
            raise RuntimeError(
                f"scorer {scorer.name} returned {len(scores)} scores for "
                f"{len(completions)} candidates"
            )
        if self.ledger.detailed:
            # the verdict for a trace; its tokens and time are on the scorer's own events
            detail = {"scorer": scorer.name, "scores": tuple(scores),
                      "seconds": time.perf_counter() - t0}  # fmt: skip
            self.ledger.record("verdict", Usage(), 0.0, scorer.name, detail=detail)
        return scores

    def extract(self, text: str) -> str | None:
        """The task's answer in ``text``, read from its final answer only: a reasoning
        model's thinking (``ponder.core.reasoning``) is never taken for the answer."""
        return self.task.extract(final_answer(text))

    async def execute(
        self,
        programs: Sequence[str],
        cases: Sequence[Mapping[str, Any]],
        *,
        entry: str | None,
        label: str,
    ) -> list[ProgramRun]:
        """Run programs on test cases in the sandbox (``execution.run_programs``:
        identical programs once); checked against the time budget before, on the
        ledger after as one ``execute`` event with the sandbox's isolation mode."""
        self.ledger.check(0, calls=0)
        sandbox = self.sandbox if self.sandbox is not None else default_sandbox()
        return await run_programs(
            sandbox, programs, cases, entry=entry, ledger=self.ledger, label=label
        )


@runtime_checkable
class Scorer(Protocol):
    """Scores candidate solutions of one problem; higher is better.

    ``needs_logprobs`` asks the strategy to request logprobs when sampling. A scorer
    that spends compute does so through ``ctx.generate(..., kind="score")`` so its
    tokens are budgeted and on the ledger.
    """

    @property
    def name(self) -> str: ...

    @property
    def needs_logprobs(self) -> bool: ...

    async def score(
        self, problem: Problem, completions: Sequence[Completion], ctx: Context
    ) -> list[Score]: ...


DEFAULT_SAMPLE_TOP_LOGPROBS = 5
"""The alternatives per token a scorer that ``needs_logprobs`` gets with each sample,
unless it says otherwise (``SampleLogprobsScorer``)."""


@runtime_checkable
class SampleLogprobsScorer(Protocol):
    """A scorer that needs a given number of alternatives per token of each sample it
    scores (a model fitted on features computed from that many)."""

    @property
    def sample_top_logprobs(self) -> int: ...


@runtime_checkable
class SampleHiddenScorer(Protocol):
    """A scorer that reads each sample's hidden states (``GenRequest.hidden``)."""

    @property
    def sample_hidden(self) -> bool: ...


def sample_hidden(scorer: Scorer) -> bool:
    """Whether samples for ``scorer`` must be drawn with their hidden states."""
    return isinstance(scorer, SampleHiddenScorer) and scorer.sample_hidden


def sample_top_logprobs(scorer: Scorer) -> int:
    """The alternatives per token to draw samples with for ``scorer``: 0 when it
    does not need logprobs, its ``sample_top_logprobs`` when it says, else
    ``DEFAULT_SAMPLE_TOP_LOGPROBS``."""
    if not scorer.needs_logprobs:
        return 0
    if isinstance(scorer, SampleLogprobsScorer):
        return scorer.sample_top_logprobs
    return DEFAULT_SAMPLE_TOP_LOGPROBS
