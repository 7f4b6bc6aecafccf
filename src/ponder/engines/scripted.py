"""A fake engine with scripted answers, shipped so real pipelines run in tests.

Tokens are whitespace-separated words, so usage is exact and easy to check by hand.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from ponder.engines.base import Capabilities, Embedding
from ponder.errors import CapabilityMissing
from ponder.types import Completion, GenRequest, TokenLogprob, Usage

Responder = Callable[[GenRequest, int], str]


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
    cycled. Text is cut at the first stop string and at ``max_tokens`` words.
    ``logprob`` gives each generated token's logprob (a constant or a function of the
    text); top alternatives are made up from it, so scorers can be exercised.
    ``embedder`` (a function of the prompt text, ``continuation`` included, to a vector)
    gives the engine the ``embeddings`` capability; each embedded word is one prompt token.
    """

    def __init__(
        self,
        script: Responder | Iterable[str],
        *,
        name: str = "scripted",
        logprob: float | Callable[[str], float] = -0.1,
        native_n: bool = True,
        supports_logprobs: bool = True,
        delay: float = 0.0,
        embedder: Callable[[str], Sequence[float]] | None = None,
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
        )
        self._embedder = embedder
        self._delay = delay
        self._count = 0
        self.requests: list[GenRequest] = []

    @property
    def name(self) -> str:
        return self._name

    @property
    def capabilities(self) -> Capabilities:
        return self._caps

    async def generate(self, requests: Sequence[GenRequest]) -> list[list[Completion]]:
        out = []
        for req in requests:
            if req.wants_logprobs and not self._caps.logprobs:
                raise CapabilityMissing(f"{self._name} does not return logprobs")
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
        finish: str = "stop"
        matched: str | None = None
        for s in req.stop:
            if s in text:
                text = text[: text.index(s)]
                matched = s
        words = text.split(" ")
        if len(text.split()) > req.max_tokens:
            text = " ".join(words[: req.max_tokens])
            finish = "length"
        n_tokens = len(text.split())
        shared = self._caps.native_n and not first
        usage = Usage(
            prompt_tokens=0 if shared else prompt_len,
            cached_tokens=prompt_len if shared else 0,
            completion_tokens=n_tokens,
            calls=1 if first or not self._caps.native_n else 0,
        )
        logprobs = None
        if req.wants_logprobs:
            lp = self._logprob(text) if callable(self._logprob) else self._logprob
            logprobs = tuple(
                TokenLogprob(
                    tok,
                    lp,
                    tuple((f"{tok}~{k}", lp - 1.0 - k) for k in range(req.top_logprobs)),
                )
                for tok in text.split()
            )
        if finish == "length":
            return Completion(text, "length", usage, logprobs)
        return Completion(text, "stop", usage, logprobs, matched)

    async def embed(self, requests: Sequence[GenRequest]) -> list[Embedding]:
        if self._embedder is None:
            raise CapabilityMissing(f"{self._name} was built without an embedder")
        out = []
        for req in requests:
            text = _prompt_text(req)
            vector = np.asarray(self._embedder(text), dtype=np.float32)
            out.append(Embedding(vector, Usage(prompt_tokens=len(text.split()), calls=1)))
        return out

    async def aclose(self) -> None:
        return None
