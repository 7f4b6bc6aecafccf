"""The engine seam: one async call, many requests, each sampled ``n`` times."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from ponder.core.types import (
    Completion,
    GenRequest,
    HiddenStates,
    Problem,
    TokenLogprob,
    Usage,
)


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
    hidden_states: honours ``GenRequest.hidden``, returning each completion's final
    hidden states (``Completion.hidden``) from the decode calls that generated it.
    tools: honours ``GenRequest.tools``, showing the model its tools and returning the
    calls it makes as ``Completion.tool_calls``.
    """

    native_n: bool = False
    logprobs: bool = False
    top_logprobs: int = 0
    prefix_reuse: bool = False
    fork: bool = False
    embeddings: bool = False
    confidence_stop: bool = False
    hidden_states: bool = False
    tools: bool = False


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


PROMPT_ALLOWANCE_TOKENS = 64
"""Tokens ``text_token_bound`` allows for what a chat template adds to a request beyond
its messages (BOS, a default system prompt, the generation prompt)."""

MESSAGE_ALLOWANCE_TOKENS = 8
"""Tokens ``text_token_bound`` allows around each message (role header, separators)."""


TOOLS_ALLOWANCE_TOKENS = 192
"""Tokens ``text_token_bound`` allows for the instructions a chat template wraps a
request's tools in (Qwen 2.5's are about 120 tokens), beyond the tools' own JSON."""


@runtime_checkable
class PromptCounter(Protocol):
    """An engine that counts a request's prompt tokens before running it.

    ``prompt_tokens`` is at least what the request's completions will report as
    ``prompt_tokens`` in all (exact when the engine tokenizes and nothing is served
    from a cache). A budget on total tokens checks every call against it, so that what
    the ledger records never passes the budget (``ponder.core.budget``).
    """

    def prompt_tokens(self, request: GenRequest) -> int: ...


def text_token_bound(request: GenRequest) -> int:
    """An upper bound on the tokens of one prefill of ``request``'s prompt, from its text.

    A tokenizer that never makes a token of less than one byte of text (byte-level BPE,
    as in GPT-2, Llama 3, Qwen and most current models; SentencePiece with byte
    fallback) makes at most one token per UTF-8 byte; on top of that come the tokens a
    chat template adds, allowed for as ``PROMPT_ALLOWANCE_TOKENS`` per request and
    ``MESSAGE_ALLOWANCE_TOKENS`` per message (the continuation being one more), and
    for a request with tools their JSON and ``TOOLS_ALLOWANCE_TOKENS``. A
    server whose template adds more (a default system prompt of more than about 50
    tokens) can pass it; an engine that knows better is a ``PromptCounter``.
    """
    if request.prompt is not None:
        return len((request.prompt + request.continuation).encode("utf-8")) + (
            PROMPT_ALLOWANCE_TOKENS
        )
    assert request.messages is not None
    turns = len(request.messages) + (1 if request.continuation else 0)
    text = sum(
        len(m.role.encode("utf-8")) + len(m.content.encode("utf-8")) for m in request.messages
    )
    text += len(request.continuation.encode("utf-8"))
    # tool calls and tools go to the model as JSON text: their JSON bounds their bytes
    text += sum(_json_bytes(c.to_dict()) for m in request.messages for c in m.tool_calls)
    text += sum(len(m.tool_call_id.encode("utf-8")) for m in request.messages)
    text += sum(_json_bytes(t.to_dict()) for t in request.tools)
    if request.tools:
        text += TOOLS_ALLOWANCE_TOKENS
    return text + PROMPT_ALLOWANCE_TOKENS + MESSAGE_ALLOWANCE_TOKENS * turns


def _json_bytes(value: object) -> int:
    return len(json.dumps(value, ensure_ascii=False).encode("utf-8"))


def prompt_token_bound(engine: Engine, request: GenRequest) -> int:
    """At least the prompt tokens ``request`` will cost on ``engine``, summed over its
    completions: the engine's own count when it is a ``PromptCounter``; otherwise
    ``text_token_bound``, once when the engine prefills a request's prompt once for
    all its samples (``capabilities.native_n``), else once per sample."""
    if isinstance(engine, PromptCounter):
        return engine.prompt_tokens(request)
    once = text_token_bound(request)
    return once if engine.capabilities.native_n else once * request.n


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


@dataclass(frozen=True)
class ContinuationLogprobs:
    """The logprob of each token of a given continuation after a prompt, with its top
    alternatives, found by prefill (nothing generated), and what it cost.

    ``usage.prompt_tokens`` counts the tokens this continuation had computed (the
    shared prompt on the first of a request's continuations, then its own tokens);
    ``cached_tokens`` the prompt tokens it found already computed. ``hidden`` holds
    its hidden states when they were asked for (``hidden=True``) and it has a scored
    position (two tokens or more); None otherwise.
    """

    logprobs: tuple[TokenLogprob, ...]
    usage: Usage
    hidden: HiddenStates | None = None


@runtime_checkable
class LogprobScorer(Protocol):
    """An engine that scores given continuations of a prompt by prefill alone.

    ``continuation_logprobs(request, texts)`` renders ``request``'s prompt as
    ``generate`` would (chat template, ``continuation`` appended), computes it once,
    and answers, per text in order, the logprobs of the text's tokens after it, with
    ``request.top_logprobs`` alternatives each. Sampling fields and ``n`` are ignored.
    How a text is cut into tokens is the engine's to document: the tokens generation
    produced for that text, as far as retokenising the text gives them back.
    ``hidden=True`` also returns each continuation's final-layer ``HiddenStates``, read
    from the same computation (no token more is computed).
    """

    async def continuation_logprobs(
        self, request: GenRequest, texts: Sequence[str], *, hidden: bool = False
    ) -> list[ContinuationLogprobs]: ...
