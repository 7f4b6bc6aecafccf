"""The engine seam: one async call, many requests, each sampled ``n`` times."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from ponder.types import Completion, GenRequest, Problem, Usage


@dataclass(frozen=True)
class Capabilities:
    """Optional powers an engine declares up front.

    native_n: one request's ``n`` samples share one prompt prefill.
    logprobs: per-token logprobs of the chosen token; top_logprobs: how many
    alternatives per token it can return (0 = none).
    prefix_reuse: a prompt that extends an earlier one is not prefilled again.
    fork: a partial sequence can be continued or forked without re-prefilling.
    embeddings: hidden-state embeddings of a text.
    confidence_stop: honours ``GenRequest.confidence_stop``, ending a sequence
    mid-generation when its sliding-window token confidence drops.
    """

    native_n: bool = False
    logprobs: bool = False
    top_logprobs: int = 0
    prefix_reuse: bool = False
    fork: bool = False
    embeddings: bool = False
    confidence_stop: bool = False


@runtime_checkable
class Engine(Protocol):
    """Anything that turns ``GenRequest``s into ``Completion``s.

    ``generate`` returns one list per request, each with exactly ``request.n``
    completions, in request order. Every completion carries its exact ``Usage``;
    summed over one request they give the request's cost (the shared prompt is
    counted as prefilled once and as cached for each sibling).
    """

    @property
    def name(self) -> str: ...

    @property
    def capabilities(self) -> Capabilities: ...

    async def generate(self, requests: Sequence[GenRequest]) -> list[list[Completion]]: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class ModelFileEngine(Protocol):
    """An engine that knows the sha256 of its weights (the embedded engine's GGUF file;
    a replay engine, its bank's). Servers do not: their model is known by name only."""

    @property
    def model_sha256(self) -> str | None: ...


def model_sha256(engine: object) -> str | None:
    """The sha256 of ``engine``'s weights, or None when it cannot tell."""
    return engine.model_sha256 if isinstance(engine, ModelFileEngine) else None


@runtime_checkable
class ChecksProblems(Protocol):
    """An engine that can serve only some problems (a replay bank): ``check_problems``
    raises ``ConfigError`` before a run when it cannot serve the given ones."""

    def check_problems(self, problems: Sequence[Problem]) -> None: ...


@runtime_checkable
class PerProblemEngine(Protocol):
    """An engine that keeps state per problem run (the replay engine's cursor).

    The eval runner calls ``for_problem`` once per problem run and gives the strategy
    the engine it returns.
    """

    def for_problem(self, problem: Problem) -> Engine: ...


@dataclass(frozen=True)
class Embedding:
    """The model's final hidden state (after the last norm) at the last token of a
    request's prompt (chat rendered, ``continuation`` appended), and what it cost."""

    vector: npt.NDArray[np.float32]
    usage: Usage


@runtime_checkable
class Embedder(Protocol):
    """An engine with ``capabilities.embeddings``: hidden states of prompts.

    Request fields other than the prompt (``n``, sampling, ``max_tokens``) are ignored.
    """

    async def embed(self, requests: Sequence[GenRequest]) -> list[Embedding]: ...
