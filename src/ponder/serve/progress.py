"""Progress of a running strategy, for streamed replies: an engine proxy that reports
after every engine call how many samples of the request's own prompt are done and
which answer leads among them (other calls, a judge's or a search step's, count as
calls only)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ponder.core.engine import Capabilities, Embedder, Embedding, Engine, prompt_token_bound
from ponder.core.errors import CapabilityMissing
from ponder.core.task import Task
from ponder.core.types import Completion, GenRequest, Message

__all__ = ["Progress", "WatchedEngine"]


@dataclass(frozen=True)
class Progress:
    """Samples of the prompt done, the leading answer and its votes, engine calls."""

    samples: int
    leader: str | None
    votes: int
    calls: int

    def comment(self) -> str:
        """The progress as one SSE comment line (clients ignore comments)."""
        leader = "none" if self.leader is None else " ".join(self.leader.split())[:80]
        return (
            f": progress samples={self.samples} leader={leader} votes={self.votes} "
            f"calls={self.calls}\n\n"
        )


class WatchedEngine:
    """``inner`` with a callback after every ``generate``; see the module docstring."""

    def __init__(
        self,
        inner: Engine,
        task: Task,
        prompt: tuple[Message, ...],
        report: Callable[[Progress], None],
    ) -> None:
        self._inner = inner
        self._task = task
        self._prompt = prompt
        self._report = report
        self._answers: Counter[str | None] = Counter()
        self._calls = 0

    @property
    def name(self) -> str:
        return self._inner.name

    @property
    def capabilities(self) -> Capabilities:
        return self._inner.capabilities

    def prompt_tokens(self, request: GenRequest) -> int:
        # a request's token budget counts prompts as the engine underneath charges them
        return prompt_token_bound(self._inner, request)

    async def generate(self, requests: Sequence[GenRequest]) -> list[list[Completion]]:
        out = await self._inner.generate(requests)
        for r, comps in zip(requests, out, strict=True):
            self._calls += 1
            if r.messages == self._prompt and not r.continuation:
                self._answers.update(self._task.extract(c.text) for c in comps)
        ranked = [(a, v) for a, v in self._answers.most_common() if a is not None]
        leader, votes = ranked[0] if ranked else (None, 0)
        self._report(Progress(sum(self._answers.values()), leader, votes, self._calls))
        return out

    async def embed(self, requests: Sequence[GenRequest]) -> list[Embedding]:
        if not isinstance(self._inner, Embedder):
            raise CapabilityMissing(f"engine {self._inner.name} does not embed")
        return await self._inner.embed(requests)

    async def aclose(self) -> None:
        return None  # the server owns the inner engine
