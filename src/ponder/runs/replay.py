"""Replay: serve a strategy's samples from a bank of recorded ones.

An eval store of an independent-sampling run (``majority``, ``best_of_n``, ...) holds,
per problem, N samples drawn from the task's prompt at one temperature (a ``single``
run, one: greedy by default). A strategy
that asks for samples of that prompt, at those settings, can be given the recorded
ones instead of new ones: the answer it reaches is the one it would have reached had
the engine drawn those samples, and sweeps over N, verifiers or stopping rules cost
no new generation.

Rules, so that nothing is faked:

- A bank serves only its own problems, model and prompts: a problem's record must be
  the same question (sha256 of the text) sampled from the same prompt (sha256 of the
  task's messages, recorded per problem in the bank's store) as the run's problem of
  that id, and the run's model must have the bank's name and weights' sha256. The first
  mismatch raises ``ConfigError`` before anything runs (``check_problems``, which the
  eval runner calls) and again when a problem run starts. A bank whose store predates
  these records is refused until ``ponder migrate`` adds them.
- A request is served from the bank only when it is a plain sample of the problem's
  prompt: the task's messages, no ``continuation``, no stop strings, and the bank's
  temperature, top_p, top_k and max_tokens. Samples are handed out in stored order,
  each once per problem run (``ReplayEngine.for_problem`` starts a run).
- A request of that shape with other settings, or one that wants logprobs (the bank
  has none), raises ``ReplayMiss``; so does one past the last recorded sample, unless
  the engine *extends* the bank (below).
- ``extend=True`` tops the bank up instead: the samples past the last recorded one
  (all of them, for a problem the bank lacks) are drawn by ``inner`` in one request
  with the seeds a live request would give them (sibling ``i`` of a request seeded
  ``s`` is seeded ``s + i`` on every engine). So a run with the bank's seed and
  strategy and a larger ``n`` gets, on the embedded engine (whose seeded samples do
  not depend on what else is decoding), the samples a live run would, while paying
  only for the new ones. The new samples are counted as generated.
- Any other request (a judge's prompt, a search step's continuation, a revision) is
  new generation: it goes to the ``inner`` engine and is counted as generated, or
  raises ``ReplayMiss`` when there is none.
- Cost: a served sample carries its recorded completion tokens. The prompt is charged
  once per request, as the bank's recorded prompt cost (what a native-``n`` engine
  prefills for a new request); the other samples of the request show it as cached.
  Wall time is not replayed: a replay run's seconds count only new work.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ponder.core.engine import (
    Capabilities,
    Embedder,
    Embedding,
    Engine,
    model_sha256,
    prompt_token_bound,
)
from ponder.core.errors import CapabilityMissing, ConfigError
from ponder.core.task import Task
from ponder.core.types import Candidate, Completion, GenRequest, Message, Problem, Usage
from ponder.tasks.identity import problem_fingerprint, text_sha256

__all__ = ["ReplayEngine", "ReplayMiss", "SampleBank"]


def _describe(data: Mapping[str, Any]) -> str:
    if not data:
        return "not recorded"
    return ", ".join(f"{k} {v}" for k, v in data.items())


class ReplayMiss(CapabilityMissing):
    """A request the bank cannot serve and no engine may generate for."""


@dataclass(frozen=True)
class SampleBank:
    """Recorded samples per problem id, and the settings they were drawn with."""

    samples: Mapping[str, tuple[Candidate, ...]]
    temperature: float
    top_p: float
    max_tokens: int
    model: str
    source: str = ""
    top_k: int = 0
    model_sha256: str | None = None
    questions: Mapping[str, str] = field(default_factory=dict)
    prompts: Mapping[str, str] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_store(cls, path: str | Path) -> SampleBank:
        """The finished records of an eval store whose strategy sampled the task's
        prompt independently (its options name ``n`` and ``temperature``), or drew one
        sample a problem (``single``: greedy, by default)."""
        from ponder.runs.store import MIGRATE_HINT, RunStore
        from ponder.strategies.voting import SAMPLING_RULES

        if not Path(path).exists():
            raise ConfigError(f"replay bank {path} does not exist")
        with RunStore(path, create=False) as store:
            config = store.config() or {}
            records = store.records(include_errors=False)
            fingerprints = store.problem_fingerprints()
        strategy = config.get("strategy")
        options = strategy.get("options") if isinstance(strategy, dict) else None
        name = strategy.get("name") if isinstance(strategy, dict) else None
        if not isinstance(options, dict) or name not in (*SAMPLING_RULES, "single"):
            raise ConfigError(
                f"replay bank {path} holds a {name!r} run; a bank must come from a run "
                f"that samples independently ({', '.join(SAMPLING_RULES)}) or a single "
                "sample a problem (single)"
            )
        if not records:
            raise ConfigError(f"replay bank {path} has no finished records")
        if not isinstance(config.get("data"), dict) or not fingerprints:
            raise ConfigError(
                f"replay bank {path} does not record which data, model and prompts its "
                f"samples were drawn from, so it cannot be checked against this run; "
                f"{MIGRATE_HINT}"
            )
        sha = config.get("model_sha256")
        return cls(
            samples={r.problem_id: tuple(r.candidates) for r in records},
            temperature=float(options.get("temperature", 0.0)),
            top_p=float(options.get("top_p", 1.0)),
            max_tokens=int(config.get("max_tokens", 0)),
            model=str(config.get("model", "?")),
            source=str(path),
            model_sha256=None if sha is None else str(sha),
            questions={r.problem_id: text_sha256(r.question) for r in records},
            prompts={
                r.problem_id: str(fingerprints[r.problem_id].get("prompt"))
                for r in records
                if r.problem_id in fingerprints
            },
            data=dict(config["data"]),
        )

    @classmethod
    def of(
        cls,
        task: Task,
        samples: Sequence[tuple[Problem, Sequence[Candidate]]],
        **settings: Any,
    ) -> SampleBank:
        """A bank in memory: ``(problem, its samples)`` pairs, drawn from ``task``'s
        prompt with ``settings`` (``temperature``, ``top_p``, ``max_tokens``, ``model``)."""
        return cls(
            samples={p.id: tuple(c) for p, c in samples},
            questions={p.id: text_sha256(p.question) for p, _ in samples},
            prompts={p.id: problem_fingerprint(task, p)["prompt"] for p, _ in samples},
            **settings,
        )

    def mismatch(self, task: Task, problem: Problem) -> str | None:
        """Why this bank's record of ``problem.id`` is not a sample of ``problem`` under
        ``task``'s prompt (another question, another prompt, or neither recorded), or
        None when it is, or when the bank has no record of it."""
        if problem.id not in self.samples:
            return None
        recorded = self.questions.get(problem.id)
        where = f"replay bank {self.source or '(in memory)'}"
        if recorded is None:
            return (
                f"{where} does not record the question of its problem {problem.id!r}, so "
                "its samples cannot be checked against this run's (build a bank in memory "
                "with SampleBank.of)"
            )
        if recorded != text_sha256(problem.question):
            return (
                f"{where}: its record {problem.id!r} is another question than this run's "
                f"problem {problem.id!r} (the bank's data: {_describe(self.data)}); "
                "replay a bank drawn on this data"
            )
        fingerprint = problem_fingerprint(task, problem)
        if self.prompts.get(problem.id) != fingerprint["prompt"]:
            return (
                f"{where}: problem {problem.id!r} was sampled from another prompt than "
                f"task {task.name!r} renders now (prompt sha256 "
                f"{self.prompts.get(problem.id)} in the bank, {fingerprint['prompt']} now); "
                "replay serves only samples of the same prompt"
            )
        return None

    def check_model(self, engine: Engine) -> None:
        """Raise ``ConfigError`` unless ``engine`` runs the model the bank was drawn by
        (the same name, and the same weights' sha256 where either side knows it)."""
        sha = model_sha256(engine)
        where = f"replay bank {self.source or '(in memory)'}"
        if engine.name != self.model:
            raise ConfigError(
                f"{where} was drawn by model {self.model!r}, but this run's model is "
                f"{engine.name!r}; replay with the bank's model"
            )
        if sha != self.model_sha256:
            raise ConfigError(
                f"{where} was drawn by model {self.model!r} with weights sha256 "
                f"{self.model_sha256}, but this run's {engine.name!r} has {sha}; "
                "replay with the same model file"
            )

    def describe(self) -> dict[str, Any]:
        """What a store records about the bank a replay run drew from."""
        return {
            "source": self.source,
            "model": self.model,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "problems": len(self.samples),
            "samples": min((len(s) for s in self.samples.values()), default=0),
            "data": dict(self.data),
            "model_sha256": self.model_sha256,
        }


@dataclass
class ReplayStats:
    """What a replay engine served and what it had generated anew."""

    served: int = 0
    extended: int = 0
    generated_requests: int = 0
    generated_usage: Usage = field(default_factory=Usage)


class ReplayEngine:
    """An engine over a ``SampleBank``; see the module docstring for the rules.

    Call ``for_problem(problem)`` for each problem run (the eval runner does): the
    returned view serves that problem's samples from the first. ``task`` renders the
    prompt a plain sample must match. ``inner`` generates whatever is not a plain
    sample; without it such requests raise ``ReplayMiss``.
    """

    def __init__(
        self, bank: SampleBank, task: Task, inner: Engine | None = None, *, extend: bool = False
    ) -> None:
        if extend and inner is None:
            raise ConfigError("extending a replay bank needs a model to draw the new samples")
        if inner is not None:
            bank.check_model(inner)
        self.bank = bank
        self.task = task
        self.inner = inner
        self.extend = extend
        self.stats = ReplayStats()

    @property
    def name(self) -> str:
        return self.bank.model

    @property
    def model_sha256(self) -> str | None:
        return self.bank.model_sha256

    @property
    def capabilities(self) -> Capabilities:
        if self.inner is None:
            return Capabilities(native_n=True)
        return self.inner.capabilities

    def check_problems(self, problems: Sequence[Problem]) -> None:
        """Raise ``ConfigError`` at the first problem whose bank record is another
        question or was sampled from another prompt, and naming the problems the bank
        has no samples for (an extending engine draws all of theirs anew)."""
        for p in problems:
            if (why := self.bank.mismatch(self.task, p)) is not None:
                raise ConfigError(why)
        if self.extend:
            return
        missing = [p.id for p in problems if p.id not in self.bank.samples]
        if missing:
            shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise ConfigError(
                f"replay bank {self.bank.source or '(in memory)'} has no samples for "
                f"{len(missing)} of the {len(problems)} problems ({shown}); run the "
                "bank's eval on them first or pass fewer problems"
            )

    def for_problem(self, problem: Problem) -> _ProblemReplay:
        if (why := self.bank.mismatch(self.task, problem)) is not None:
            raise ConfigError(why)
        return _ProblemReplay(self, problem)

    def prompt_tokens(self, request: GenRequest) -> int:
        """What the model generating a request that is not served from the bank may
        charge for its prompt (nothing without one: such a request is refused)."""
        return 0 if self.inner is None else prompt_token_bound(self.inner, request)

    async def generate(self, requests: Sequence[GenRequest]) -> list[list[Completion]]:
        # outside a problem run nothing can be matched to a bank entry
        return await self._forward(requests)

    async def _forward(self, requests: Sequence[GenRequest]) -> list[list[Completion]]:
        if not requests:
            return []
        if self.inner is None:
            raise ReplayMiss(
                "this request is not a plain sample of a problem's prompt, so it needs "
                "new generation, and this replay has no model to generate with"
            )
        out = await self.inner.generate(requests)
        self.stats.generated_requests += len(requests)
        self.stats.generated_usage += sum((c.usage for cs in out for c in cs), start=Usage())
        return out

    async def embed(self, requests: Sequence[GenRequest]) -> list[Embedding]:
        if not isinstance(self.inner, Embedder) or not self.capabilities.embeddings:
            raise ReplayMiss("embeddings need a model; this replay has none that embeds")
        return await self.inner.embed(requests)

    async def aclose(self) -> None:
        if self.inner is not None:
            await self.inner.aclose()


class _ProblemReplay:
    """One problem run over a replay engine: a cursor into the problem's samples."""

    def __init__(self, parent: ReplayEngine, problem: Problem) -> None:
        self._parent = parent
        self._problem = problem
        self._messages: tuple[Message, ...] = tuple(parent.task.messages(problem))
        self._next = 0

    @property
    def name(self) -> str:
        return self._parent.name

    @property
    def capabilities(self) -> Capabilities:
        return self._parent.capabilities

    def _is_sample(self, r: GenRequest) -> bool:
        return r.messages == self._messages and not r.continuation and not r.stop

    def prompt_tokens(self, request: GenRequest) -> int:
        """The prompt tokens ``generate`` will charge ``request``: the bank's recorded
        prompt once when it serves samples of it, and the model's bound for what the
        model generates (the rest of an extended sample, or any other request)."""
        if not self._is_sample(request):
            return self._parent.prompt_tokens(request)
        recorded = self._parent.bank.samples.get(self._problem.id, ())
        taken = len(recorded[self._next : self._next + request.n])
        served = max((c.usage.prompt_tokens + c.usage.cached_tokens for c in recorded), default=0)
        if taken == request.n:
            return served
        rest = self._parent.prompt_tokens(dataclasses.replace(request, n=request.n - taken))
        return (served if taken else 0) + rest

    def _check(self, r: GenRequest) -> None:
        bank = self._parent.bank
        wanted = {
            "temperature": (r.temperature, bank.temperature),
            "top_p": (r.top_p, bank.top_p),
            "top_k": (r.top_k, bank.top_k),
            "max_tokens": (r.max_tokens, bank.max_tokens),
        }
        off = [
            f"{k}={got} (bank: {have})"
            for k, (got, have) in wanted.items()
            if not math.isclose(float(got), float(have))
        ]
        if off:
            raise ReplayMiss(
                f"problem {self._problem.id!r}: the strategy samples with "
                f"{', '.join(off)}; replay serves only samples drawn as the bank's were"
            )
        if r.wants_logprobs:
            raise ReplayMiss(
                "the strategy or its scorer needs token logprobs, which recorded samples "
                "do not have; use a scorer that does not need them"
            )

    def _serve(self, r: GenRequest) -> tuple[list[Completion], GenRequest | None]:
        """The recorded samples for ``r``, and the request for the rest when the bank
        runs out and the engine extends it."""
        self._check(r)
        parent = self._parent
        recorded = parent.bank.samples.get(self._problem.id, ())
        if not parent.extend:
            if not recorded:
                raise ReplayMiss(f"the replay bank has no samples for problem {self._problem.id!r}")
            if self._next + r.n > len(recorded):
                raise ReplayMiss(
                    f"problem {self._problem.id!r}: the strategy asked for "
                    f"{self._next + r.n} samples in all but the bank recorded {len(recorded)}"
                )
        taken = recorded[self._next : self._next + r.n]
        self._next += r.n
        rest = None
        if len(taken) < r.n:
            seed = None if r.seed is None else r.seed + len(taken)
            rest = dataclasses.replace(r, n=r.n - len(taken), seed=seed)
        if not taken:
            return [], rest
        prompt = max(c.usage.prompt_tokens + c.usage.cached_tokens for c in recorded)
        out = []
        for i, c in enumerate(taken):
            usage = Usage(
                prompt_tokens=prompt if i == 0 else 0,
                cached_tokens=0 if i == 0 else prompt,
                completion_tokens=c.usage.completion_tokens,
                calls=1 if i == 0 else 0,
            )
            finish: Literal["stop", "length"] = "length" if c.finish_reason == "length" else "stop"
            out.append(Completion(text=c.text, finish_reason=finish, usage=usage))
        parent.stats.served += len(out)
        return out, rest

    async def generate(self, requests: Sequence[GenRequest]) -> list[list[Completion]]:
        out: list[list[Completion]] = [[] for _ in requests]
        forward: list[tuple[int, GenRequest]] = []
        for i, r in enumerate(requests):
            if self._is_sample(r):
                out[i], rest = self._serve(r)
                if rest is not None:
                    forward.append((i, rest))
            else:
                forward.append((i, r))
        if forward:
            made = await self._parent._forward([r for _, r in forward])
            for (i, r), comps in zip(forward, made, strict=True):
                if self._is_sample(r):
                    self._parent.stats.extended += len(comps)
                out[i].extend(comps)
        return out

    async def embed(self, requests: Sequence[GenRequest]) -> list[Embedding]:
        return await self._parent.embed(requests)

    async def aclose(self) -> None:
        # the parent owns the inner engine
        return None
