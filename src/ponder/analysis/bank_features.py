"""Token-confidence features for the samples of an existing bank, by prefill alone.

A bank (the run store of a ``majority`` or ``best_of_n`` run) holds sample texts but,
sampled without logprobs, nothing to judge them by. This pass asks the bank's own model
for the logprobs of each sample's tokens after the problem's prompt, by prefill (a
``LogprobScorer`` engine; nothing is generated), reduces them to the features of
``ponder.verifiers.features`` and writes them to the store's ``features`` table, one
problem at a time. A pass that is stopped loses at most the problems in flight; run
again, it computes only the samples that have no features yet.

The bank must be a sample bank (``SampleBank.from_store``), the engine must run its
model (name and weights' sha256, as replay checks), and each problem must be the
bank's question under the prompt the task renders now; anything else raises
``ConfigError`` before a token is computed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ponder.core.engine import Engine, LogprobScorer
from ponder.core.errors import CapabilityMissing, ConfigError
from ponder.core.task import Task
from ponder.core.types import GenRequest, Problem
from ponder.runs.replay import SampleBank
from ponder.runs.store import Record, RunStore
from ponder.verifiers.features import DEFAULT_TOP_K, sample_features

__all__ = [
    "DEFAULT_TOP_K",
    "FeatureJob",
    "FeaturePass",
    "compute_bank_features",
    "pending_jobs",
]


@dataclass(frozen=True)
class FeatureJob:
    """One problem's samples still without features: their indices and texts."""

    problem: Problem
    indices: tuple[int, ...]
    texts: tuple[str, ...]


@dataclass(frozen=True)
class FeaturePass:
    """What a pass did: samples given features (``skipped``: had them already), tokens
    computed by prefill (the shared prompts once each, then every continuation's),
    continuation tokens scored, and wall seconds."""

    samples: int
    skipped: int
    prefilled_tokens: int
    scored_tokens: int
    seconds: float

    @property
    def tokens_per_second(self) -> float:
        """Prefilled tokens per wall second."""
        return self.prefilled_tokens / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        return (
            f"features: {self.samples} samples done ({self.skipped} had them), "
            f"{self.prefilled_tokens} tokens prefilled ({self.scored_tokens} scored) "
            f"in {self.seconds:.1f} s, {self.tokens_per_second:.1f} tokens/s"
        )


def pending_jobs(
    store: RunStore, task: Task, *, limit: int | None = None, bank: SampleBank | None = None
) -> tuple[list[FeatureJob], int]:
    """The first ``limit`` finished records of the bank in ``store`` (all by default), as
    jobs of their samples without features, and how many samples already have them. A
    record whose problem ``task`` does not have, or has under another question or prompt,
    raises ``ConfigError``; ``bank`` is the store read as a ``SampleBank``, if read."""
    bank = bank or SampleBank.from_store(store.path)
    records = store.records(include_errors=False)[:limit]
    problems = {p.id: p for p in task.load()}
    featured = store.featured_samples()
    jobs, skipped = [], 0
    for record in records:
        problem = _problem_of(record, problems, task, bank)
        todo = [i for i in range(len(record.candidates)) if (record.problem_id, i) not in featured]
        skipped += len(record.candidates) - len(todo)
        if todo:
            texts = tuple(record.candidates[i].text for i in todo)
            jobs.append(FeatureJob(problem, tuple(todo), texts))
    return jobs, skipped


def _problem_of(
    record: Record, problems: dict[str, Problem], task: Task, bank: SampleBank
) -> Problem:
    problem = problems.get(record.problem_id)
    if problem is None:
        raise ConfigError(
            f"bank {bank.source} has problem {record.problem_id!r}, which task "
            f"{task.name!r} does not have on its data: pass the bank's data"
        )
    why = bank.mismatch(task, problem)
    if why is not None:
        raise ConfigError(why)
    return problem


async def compute_bank_features(
    bank: str | Path,
    engine: Engine,
    task: Task,
    *,
    top_k: int = DEFAULT_TOP_K,
    limit: int | None = None,
    in_flight: int = 2,
    on_problem: Callable[[int], None] | None = None,
) -> FeaturePass:
    """Give every sample of the bank at ``bank`` (its first ``limit`` records) that has
    no features yet its features, computed from ``top_k`` alternatives per token.

    ``in_flight`` problems are scored at once, so that the engine's slots fill with the
    next problem's samples while one problem's last ones finish; ``on_problem`` is told
    the samples of each problem as it is written.
    """
    if not isinstance(engine, LogprobScorer):
        raise CapabilityMissing(
            f"{engine.name} cannot score given continuations by prefill; "
            "use the embedded engine (a bundled model or a .gguf file)"
        )
    samples_bank = SampleBank.from_store(bank)
    samples_bank.check_model(engine)
    with RunStore(bank, create=False) as store:
        jobs, skipped = pending_jobs(store, task, limit=limit, bank=samples_bank)
        started = time.perf_counter()
        gate = asyncio.Semaphore(max(1, in_flight))
        counts = await asyncio.gather(
            *(_score(job, engine, store, task, top_k, gate, on_problem) for job in jobs)
        )
    prefilled = sum(c[0] for c in counts)
    scored = sum(c[1] for c in counts)
    samples = sum(len(job.indices) for job in jobs)
    return FeaturePass(samples, skipped, prefilled, scored, time.perf_counter() - started)


async def _score(
    job: FeatureJob,
    engine: LogprobScorer,
    store: RunStore,
    task: Task,
    top_k: int,
    gate: asyncio.Semaphore,
    on_problem: Callable[[int], None] | None,
) -> tuple[int, int]:
    """Score one problem's pending samples and write their features; returns the
    tokens prefilled and the continuation tokens scored."""
    request = GenRequest(messages=task.messages(job.problem), top_logprobs=top_k)
    async with gate:
        scored = await engine.continuation_logprobs(request, job.texts)
    store.put_features(
        job.problem.id,
        {i: sample_features(s.logprobs) for i, s in zip(job.indices, scored, strict=True)},
    )
    if on_problem is not None:
        on_problem(len(job.indices))
    return sum(s.usage.prompt_tokens for s in scored), sum(len(s.logprobs) for s in scored)
