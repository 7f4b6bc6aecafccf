"""Token-confidence features for the samples of an existing bank, by prefill alone.

A bank (the run store of a ``majority`` or ``best_of_n`` run) holds sample texts but,
sampled without logprobs, nothing to judge them by. This pass asks the bank's own model
for the logprobs of each sample's tokens after the problem's prompt, by prefill (a
``LogprobScorer`` engine; nothing is generated), reduces them to the features of
``ponder.verifiers.features`` and writes them to the store's ``features`` table, one
problem at a time. A pass that is stopped loses at most the problems in flight; run
again, it computes only the samples that have no features yet.

With ``hidden=True`` the same prefill also reads each sample's final-layer hidden
states (``HiddenStates``: at its last scored position and the mean over them), which
are projected (``ponder.verifiers.hidden``, ``hidden_dim`` numbers) and written to the
store's ``hidden`` table. That costs no token: the rows are the ones the logprobs come
from. A sample that has features but no hidden states is prefilled again for them (its
stored features are kept); a sample of fewer than two tokens has no scored row of its
own, gets no hidden states, and is tried again on every hidden pass.

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
from ponder.verifiers.hidden import DEFAULT_DIM, DEFAULT_SEED, Projection, SampleHidden

__all__ = [
    "DEFAULT_TOP_K",
    "FeatureJob",
    "FeaturePass",
    "compute_bank_features",
    "pending_jobs",
]


@dataclass(frozen=True)
class FeatureJob:
    """One problem's samples still to prefill: their indices and texts, and which of
    them have features already (prefilled for their hidden states only)."""

    problem: Problem
    indices: tuple[int, ...]
    texts: tuple[str, ...]
    featured: frozenset[int] = frozenset()


@dataclass(frozen=True)
class FeaturePass:
    """What a pass did: samples prefilled (``skipped``: had all it asked already),
    tokens computed by prefill (the shared prompts once each, then every
    continuation's), continuation tokens scored, and wall seconds. A pass that asked for
    hidden states has ``hidden_dim`` set and ``hidden`` the samples given them."""

    samples: int
    skipped: int
    prefilled_tokens: int
    scored_tokens: int
    seconds: float
    hidden: int = 0
    hidden_dim: int | None = None

    @property
    def tokens_per_second(self) -> float:
        """Prefilled tokens per wall second."""
        return self.prefilled_tokens / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        hidden = ""
        if self.hidden_dim is not None:
            hidden = (
                f"hidden states for {self.hidden} ({self.hidden_dim} dims, "
                "read from the same rows: no extra token), "
            )
        return (
            f"features: {self.samples} samples done ({self.skipped} had them), {hidden}"
            f"{self.prefilled_tokens} tokens prefilled ({self.scored_tokens} scored) "
            f"in {self.seconds:.1f} s, {self.tokens_per_second:.1f} tokens/s"
        )


def pending_jobs(
    store: RunStore,
    task: Task,
    *,
    limit: int | None = None,
    bank: SampleBank | None = None,
    hidden: bool = False,
) -> tuple[list[FeatureJob], int]:
    """The first ``limit`` finished records of the bank in ``store`` (all by default), as
    jobs of their samples without features (or, with ``hidden``, without features or
    hidden states), and how many samples have all that. A record whose problem ``task``
    does not have, or has under another question or prompt, raises ``ConfigError``;
    ``bank`` is the store read as a ``SampleBank``, if read."""
    bank = bank or SampleBank.from_store(store.path)
    records = store.records(include_errors=False)[:limit]
    problems = {p.id: p for p in task.load()}
    featured = store.featured_samples()
    done = featured & store.hidden_samples() if hidden else featured
    jobs, skipped = [], 0
    for record in records:
        problem = _problem_of(record, problems, task, bank)
        pid = record.problem_id
        todo = [i for i in range(len(record.candidates)) if (pid, i) not in done]
        skipped += len(record.candidates) - len(todo)
        if todo:
            texts = tuple(record.candidates[i].text for i in todo)
            have = frozenset(i for i in todo if (pid, i) in featured)
            jobs.append(FeatureJob(problem, tuple(todo), texts, have))
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
    hidden: bool = False,
    hidden_dim: int = DEFAULT_DIM,
) -> FeaturePass:
    """Give every sample of the bank at ``bank`` (its first ``limit`` records) that has
    no features yet its features, computed from ``top_k`` alternatives per token, and
    with ``hidden`` its hidden states projected to ``hidden_dim`` numbers (see the
    module docstring).

    ``in_flight`` problems are scored at once, so that the engine's slots fill with the
    next problem's samples while one problem's last ones finish; ``on_problem`` is told
    the samples of each problem as it is written. A bank whose hidden states were
    projected to another size raises ``ConfigError`` before a token is computed.
    """
    if not isinstance(engine, LogprobScorer):
        raise CapabilityMissing(
            f"{engine.name} cannot score given continuations by prefill; "
            "use the embedded engine (a bundled model or a .gguf file)"
        )
    samples_bank = SampleBank.from_store(bank)
    samples_bank.check_model(engine)
    with RunStore(bank, create=False) as store:
        if hidden:
            _check_projection(store, hidden_dim)
        jobs, skipped = pending_jobs(store, task, limit=limit, bank=samples_bank, hidden=hidden)
        started = time.perf_counter()
        gate = asyncio.Semaphore(max(1, in_flight))
        dim = hidden_dim if hidden else None
        counts = await asyncio.gather(
            *(_score(job, engine, store, task, top_k, gate, on_problem, dim) for job in jobs)
        )
    prefilled = sum(c[0] for c in counts)
    scored = sum(c[1] for c in counts)
    samples = sum(len(job.indices) for job in jobs)
    seconds = time.perf_counter() - started
    with_hidden = sum(c[2] for c in counts)
    return FeaturePass(samples, skipped, prefilled, scored, seconds, with_hidden, dim)


def _check_projection(store: RunStore, dim: int) -> None:
    """Refuse a pass whose projection size differs from the one the bank holds."""
    if dim < 1:
        raise ConfigError(f"the hidden-state projection needs at least 1 dim, got {dim}")
    held = store.hidden_projection()
    if held is not None and (held.dim, held.seed) != (dim, DEFAULT_SEED):
        raise ConfigError(
            f"{store.path} holds hidden states projected to {held.dim} dims (seed "
            f"{held.seed}), not {dim} (seed {DEFAULT_SEED}): pass --hidden-dim {held.dim}"
        )


async def _score(
    job: FeatureJob,
    engine: LogprobScorer,
    store: RunStore,
    task: Task,
    top_k: int,
    gate: asyncio.Semaphore,
    on_problem: Callable[[int], None] | None,
    hidden_dim: int | None,
) -> tuple[int, int, int]:
    """Score one problem's pending samples and write their features (those without
    any) and, when ``hidden_dim`` is set, their projected hidden states; returns the
    tokens prefilled, the continuation tokens scored and the samples given hidden
    states."""
    request = GenRequest(messages=task.messages(job.problem), top_logprobs=top_k)
    async with gate:
        if hidden_dim is None:
            scored = await engine.continuation_logprobs(request, job.texts)
        else:
            scored = await engine.continuation_logprobs(request, job.texts, hidden=True)
    pairs = list(zip(job.indices, scored, strict=True))
    features = {i: sample_features(s.logprobs) for i, s in pairs if i not in job.featured}
    if features:
        store.put_features(job.problem.id, features)
    vectors: dict[int, SampleHidden] = {}
    if hidden_dim is not None:
        states = {i: s.hidden for i, s in pairs if s.hidden is not None}
        if states:
            n_embd = len(next(iter(states.values())).last)
            projection = Projection(n_embd, hidden_dim, DEFAULT_SEED)
            vectors = {i: projection.project(h) for i, h in states.items()}
            store.put_hidden(job.problem.id, vectors, projection)
    if on_problem is not None:
        on_problem(len(job.indices))
    prefilled = sum(s.usage.prompt_tokens for s in scored)
    return prefilled, sum(len(s.logprobs) for s in scored), len(vectors)
