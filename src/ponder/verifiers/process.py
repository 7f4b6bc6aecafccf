"""Process verifiers: a score for every step of a solution, each step scored once.

A :class:`ProcessVerifier` scores step ``k`` of a solution given the question and steps
``1..k`` (the *prefix* ending at ``k``). The score of a prefix never depends on what
comes after it, so it is cached per (question, prefix): in a search, where beams share
their early steps, a step is scored once however many beams pass through it, and a
finished solution costs only the steps no partial solution has shown before.

A process verifier is also an outcome :class:`~ponder.core.context.Scorer`: a whole
completion is cut into steps (``segmentation``), every step is scored, and the step
scores are folded into one value (``aggregation``); ``Score.steps`` keeps them all.
Subclasses implement :meth:`ProcessVerifier._score_from`.

A verifier that reads the generator's own token logprobs (the combined verifier) says
how many alternatives per token it needs from each generated step
(``step_top_logprobs`` > 0); a search then draws its steps with them and hands it the
logprobs of every prefix it will score (``observe_prefix``) before scoring.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ponder.core.types import Completion, HiddenStates, Problem, Score, TokenLogprob
from ponder.verifiers.steps import (
    Aggregation,
    Segmentation,
    aggregate,
    check_aggregation,
    check_segmentation,
    split_steps,
)

if TYPE_CHECKING:
    from ponder.core.context import Context

Path = tuple[str, ...]


def new_prefixes(items: Sequence[tuple[Path, int]]) -> list[Path]:
    """Every prefix ``_score_from`` must score, path by path and shortest first (so an
    engine that keeps a prefix's KV cells extends it for the next one)."""
    return [path[: k + 1] for path, start in items for k in range(start, len(path))]


def per_item(items: Sequence[tuple[Path, int]], flat: Sequence[float]) -> list[list[float]]:
    """Scores of :func:`new_prefixes`, in that order, back as one list per item."""
    out: list[list[float]] = []
    at = 0
    for path, start in items:
        n = len(path) - start
        out.append([float(x) for x in flat[at : at + n]])
        at += n
    return out


class ProcessVerifier(ABC):
    """Step-level scores with a per-(question, prefix) cache; see the module doc."""

    def __init__(self, segmentation: Segmentation = "blank", aggregation: Aggregation = "last"):
        self.segmentation = check_segmentation(segmentation)
        self.aggregation = check_aggregation(aggregation)
        self._cache: dict[tuple[str, Path], float] = {}
        self.steps_scored = 0  # steps computed, not served from the cache

    @property
    @abstractmethod
    def name(self) -> str: ...

    @property
    def needs_logprobs(self) -> bool:
        return False

    @property
    def step_top_logprobs(self) -> int:
        """Alternatives per token this verifier needs with every generated step; 0 (the
        default): it reads no logprobs, and ``observe_prefix`` is never called."""
        return 0

    @property
    def step_hidden(self) -> bool:
        """Whether this verifier reads the hidden states every generated step is drawn
        with (False by default: ``observe_prefix_hidden`` is never called)."""
        return False

    def observe_prefix_hidden(
        self, problem: Problem, path: Path, hidden: HiddenStates | None
    ) -> None:
        """The hidden states of the prefix ``path`` as the search generated it (its
        steps' pooled; None when it has no rows). Only a verifier with ``step_hidden``
        is called."""
        raise NotImplementedError(f"verifier {self.name} reads no hidden states")

    def observe_prefix(
        self, problem: Problem, path: Path, logprobs: Sequence[TokenLogprob]
    ) -> None:
        """The logprobs of every token of the prefix ``path`` (its steps, as
        ``score_paths`` is given them) as the search generated it. Only a verifier
        with ``step_top_logprobs`` > 0 is called; the rest have nothing to keep."""
        raise NotImplementedError(f"verifier {self.name} reads no step logprobs")

    @abstractmethod
    async def _score_from(
        self, problem: Problem, items: Sequence[tuple[Path, int]], ctx: Context
    ) -> list[list[float]]:
        """For each ``(path, start)``: scores in [0, 1] of steps ``start..len(path)-1``,
        each given the question and the steps before it. The scores of steps before
        ``start`` are known already (cached, or computed for another item of the same
        call), so a verifier that can score from ``start`` on saves that work. Spend
        compute through ``ctx``
        (``ctx.generate(..., kind="score")`` or ``ctx.ledger.record("score", ...)``)."""

    async def score_paths(
        self, problem: Problem, paths: Sequence[Sequence[str]], ctx: Context
    ) -> list[tuple[float, ...]]:
        """Per-step scores of every path, computing only steps not seen before."""
        key = problem.question
        # Longest paths first: a path claims the steps it shares with the paths after it,
        # so siblings that share a prefix send it once, and a requested path that is a
        # prefix of another requested path comes for free.
        unique = sorted(dict.fromkeys(tuple(raw) for raw in paths), key=len, reverse=True)
        claimed: set[Path] = set()
        items: list[tuple[Path, int]] = []
        for path in unique:
            start = 0
            while start < len(path) and (
                (key, path[: start + 1]) in self._cache or path[: start + 1] in claimed
            ):
                start += 1
            if start < len(path):
                items.append((path, start))
                claimed.update(path[: k + 1] for k in range(start, len(path)))
        if items:
            computed = await self._score_from(problem, items, ctx)
            if len(computed) != len(items):
                raise RuntimeError(
                    f"verifier {self.name} scored {len(computed)} paths of {len(items)}"
                )
            for (path, start), scores in zip(items, computed, strict=True):
                if len(scores) != len(path) - start:
                    raise RuntimeError(
                        f"verifier {self.name} returned {len(scores)} step scores for "
                        f"{len(path) - start} steps"
                    )
                for k, value in enumerate(scores, start=start):
                    self._cache.setdefault((key, path[: k + 1]), float(value))
                self.steps_scored += len(scores)
        return [
            tuple(self._cache[(key, tuple(raw)[: k + 1])] for k in range(len(raw))) for raw in paths
        ]

    def aggregate(self, step_scores: Sequence[float]) -> float:
        return aggregate(step_scores, self.aggregation)

    async def score(
        self, problem: Problem, completions: Sequence[Completion], ctx: Context
    ) -> list[Score]:
        paths = [split_steps(c.text, self.segmentation) or [""] for c in completions]
        per_step = await self.score_paths(problem, paths, ctx)
        return [Score(self.aggregate(s), s) for s in per_step]


class PrefixVerifier(ProcessVerifier):
    """A process verifier that scores each prefix from what the search handed it about
    that prefix (``observe_prefix``, ``observe_prefix_hidden``), generating nothing:
    subclasses give ``_prefix_score``."""

    @abstractmethod
    def _prefix_score(self, problem: Problem, prefix: Path) -> float: ...

    async def _score_from(
        self, problem: Problem, items: Sequence[tuple[Path, int]], ctx: Context
    ) -> list[list[float]]:
        return [
            [self._prefix_score(problem, path[: k + 1]) for k in range(start, len(path))]
            for path, start in items
        ]
