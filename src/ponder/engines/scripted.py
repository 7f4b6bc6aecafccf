"""A fake engine with scripted answers, shipped so real pipelines run in tests.

Tokens are whitespace-separated words, so usage is exact and easy to check by hand.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from ponder.core.engine import Capabilities, ContinuationLogprobs, Embedding
from ponder.core.errors import CapabilityMissing
from ponder.core.types import (
    Completion,
    FinishReason,
    GenRequest,
    HiddenStates,
    TokenLogprob,
    ToolCall,
    Usage,
)
from ponder.engines.tool_format import HERMES

Responder = Callable[[GenRequest, int], str]
LogprobScript = float | Callable[[str], float | Sequence[float]]


def _prompt_text(request: GenRequest) -> str:
    if request.prompt is not None:
        return request.prompt + request.continuation
    assert request.messages is not None
    chat = "\n".join(f"{m.role}: {m.content}" for m in request.messages)
    return chat + ("\nassistant: " + request.continuation if request.continuation else "")


class ScriptedEngine:
    """Answers from a script.

    ``script`` is either a function ``(request, index) -> text`` (index counts every
    sample the engine has produced) or an iterable of texts used in turn and then
    cycled. Text is cut at the first stop string and at ``max_tokens`` words. For a
    request that shows tools, calls in the text in the Hermes format
    (``<tool_call>{"name": ..., "arguments": ...}</tool_call>``) come back as the
    completion's ``tool_calls``, as the embedded engine reads a Qwen model's.
    ``logprob`` gives each generated token's logprob: a constant, or a function of the
    text (after stop strings are cut) returning one logprob for every token or a
    sequence with one per token. The ``k``-th of the top alternatives of a token with
    logprob ``lp`` gets ``lp - 1 - k``, so its confidence (minus the mean of ``K``
    alternatives) is ``-lp + 1 + (K - 1) / 2``; scorers and confidence stops can be
    exercised exactly. A request's ``confidence_stop`` is applied to those token
    confidences as ``ConfidenceStop.cut`` defines (before the token limit), unless
    ``confidence_stop=False``.
    ``embedder`` (a function of the prompt text, ``continuation`` included, to a vector)
    gives the engine the ``embeddings`` capability; each embedded word is one prompt token.
    ``continuation_logprobs`` scores given texts with the same ``logprob`` script and
    alternatives, a word a token (a ``LogprobScorer``); with ``hidden=True`` it answers
    hidden states too, for which ``hidden_state`` (a function of a word to its row) must
    be given: as the embedded engine's, the rows are those of every word but the last
    (``HiddenStates``), so a text of fewer than two words gets none.
    """

    def __init__(
        self,
        script: Responder | Iterable[str],
        *,
        name: str = "scripted",
        logprob: LogprobScript = -0.1,
        native_n: bool = True,
        supports_logprobs: bool = True,
        confidence_stop: bool = True,
        delay: float = 0.0,
        embedder: Callable[[str], Sequence[float]] | None = None,
        hidden_state: Callable[[str], Sequence[float]] | None = None,
    ) -> None:
        if callable(script):
            self._respond: Responder = script
        else:
            texts = list(script)
            if not texts:
                raise ValueError("ScriptedEngine needs at least one scripted text")
            cycle = itertools.cycle(texts)
            self._respond = lambda _req, _i: next(cycle)
        self._name = name
        self._logprob = logprob
        self._caps = Capabilities(
            native_n=native_n,
            logprobs=supports_logprobs,
            top_logprobs=5 if supports_logprobs else 0,
            embeddings=embedder is not None,
            confidence_stop=supports_logprobs and confidence_stop,
            hidden_states=hidden_state is not None,
            tools=True,
        )
        self._embedder = embedder
        self._hidden_state = hidden_state
        self._delay = delay
        self._count = 0
        self.requests: list[GenRequest] = []

    @property
    def name(self) -> str:
        return self._name

    @property
    def capabilities(self) -> Capabilities:
        return self._caps

    def prompt_tokens(self, request: GenRequest) -> int:
        """The prompt tokens ``generate`` charges ``request``, exactly: its words, once
        for all samples with ``native_n``, once per sample without."""
        words = len(_prompt_text(request).split())
        return words if self._caps.native_n else words * request.n

    async def generate(self, requests: Sequence[GenRequest]) -> list[list[Completion]]:
        out = []
        for req in requests:
            if req.wants_logprobs and not self._caps.logprobs:
                raise CapabilityMissing(f"{self._name} does not return logprobs")
            if req.confidence_stop is not None and not self._caps.confidence_stop:
                raise CapabilityMissing(f"{self._name} does not stop sequences on confidence")
            if req.hidden and self._hidden_state is None:
                raise CapabilityMissing(f"{self._name} was built without a hidden_state script")
            self.requests.append(req)
            if self._delay:
                await asyncio.sleep(self._delay)
            prompt_len = len(_prompt_text(req).split())
            comps = []
            for i in range(req.n):
                text = self._respond(req, self._count)
                self._count += 1
                comps.append(self._complete(req, text, prompt_len, first=i == 0))
            out.append(comps)
        return out

    def _complete(self, req: GenRequest, text: str, prompt_len: int, first: bool) -> Completion:
        matched: str | None = None
        for s in req.stop:
            if s in text:
                text = text[: text.index(s)]
                matched = s
        logprobs = self._logprobs(req, text) if req.wants_logprobs else None
        cut = None
        if req.confidence_stop is not None and logprobs is not None:
            cut = req.confidence_stop.cut([t.confidence for t in logprobs])
        finish: FinishReason
        if cut is not None and cut <= req.max_tokens:
            text = _first_tokens(text, cut)
            finish = "confidence"
            matched = None
        elif len(text.split()) > req.max_tokens:
            text = _first_tokens(text, req.max_tokens)
            finish = "length"
            matched = None
        else:
            finish = "stop"
        n_tokens = len(text.split())
        shared = self._caps.native_n and not first
        usage = Usage(
            prompt_tokens=0 if shared else prompt_len,
            cached_tokens=prompt_len if shared else 0,
            completion_tokens=n_tokens,
            calls=1 if first or not self._caps.native_n else 0,
        )
        if logprobs is not None:
            logprobs = logprobs[:n_tokens]
        # a stop string is reported only when it ended the text (matched is None otherwise)
        states = self._hidden_states(text) if req.hidden else None
        calls: tuple[ToolCall, ...] = ()
        if req.tools and req.tool_choice.mode != "none" and not req.continuation:
            content, calls = HERMES.parse(text)
            text = content if calls else text
        return Completion(text, finish, usage, logprobs, matched, states, calls)

    def _logprobs(self, req: GenRequest, text: str) -> tuple[TokenLogprob, ...]:
        tokens = text.split()
        scripted = self._logprob(text) if callable(self._logprob) else self._logprob
        if isinstance(scripted, int | float):
            lps = [float(scripted)] * len(tokens)
        else:
            lps = [float(x) for x in scripted]
            if len(lps) != len(tokens):
                raise ValueError(
                    f"the logprob script gave {len(lps)} logprobs for {len(tokens)} tokens"
                )
        return tuple(
            TokenLogprob(
                tok, lp, tuple((f"{tok}~{k}", lp - 1.0 - k) for k in range(req.top_logprobs))
            )
            for tok, lp in zip(tokens, lps, strict=True)
        )

    async def embed(self, requests: Sequence[GenRequest]) -> list[Embedding]:
        if self._embedder is None:
            raise CapabilityMissing(f"{self._name} was built without an embedder")
        out = []
        for req in requests:
            text = _prompt_text(req)
            vector = np.asarray(self._embedder(text), dtype=np.float32)
            out.append(Embedding(vector, Usage(prompt_tokens=len(text.split()), calls=1)))
        return out

    async def continuation_logprobs(
        self, request: GenRequest, texts: Sequence[str], *, hidden: bool = False
    ) -> list[ContinuationLogprobs]:
        """The scripted logprobs of each text's words after ``request``'s prompt; the
        prompt's words are charged to the first text and cached for the others. With
        ``hidden``, each text's scripted hidden states as well."""
        if not self._caps.logprobs:
            raise CapabilityMissing(f"{self._name} does not return logprobs")
        if hidden and self._hidden_state is None:
            raise CapabilityMissing(f"{self._name} was built without a hidden_state script")
        prompt_len = len(_prompt_text(request).split())
        out = []
        for i, text in enumerate(texts):
            logprobs = self._logprobs(request, text)
            usage = Usage(
                prompt_tokens=(prompt_len if i == 0 else 0) + len(logprobs),
                cached_tokens=0 if i == 0 else prompt_len,
                calls=1 if i == 0 else 0,
            )
            states = self._hidden_states(text) if hidden else None
            out.append(ContinuationLogprobs(logprobs, usage, states))
        return out

    def _hidden_states(self, text: str) -> HiddenStates | None:
        """The scripted rows of every word of ``text`` but the last, as the embedded
        engine reads them; None for a text of fewer than two words."""
        assert self._hidden_state is not None
        words = text.split()[:-1]
        if not words:
            return None
        rows = np.asarray([self._hidden_state(w) for w in words], dtype=np.float32)
        mean = rows.mean(axis=0, dtype=np.float64).astype(np.float32)
        return HiddenStates(rows[-1].copy(), mean, len(words))

    async def aclose(self) -> None:
        return None


def _first_tokens(text: str, n: int) -> str:
    """``text`` up to the end of its ``n``-th whitespace-separated token."""
    m = re.match(rf"\s*(?:\S+\s+){{{n - 1}}}\S+", text)
    if m is None:
        raise ValueError(f"text has fewer than {n} tokens")
    return m.group(0)
