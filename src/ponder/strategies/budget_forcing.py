"""``budget_forcing``: s1's budget forcing (Muennighoff et al. 2025, "s1: Simple
test-time scaling").

The model thinks between two delimiters. Thinking that reaches
``max_thinking_tokens`` is cut there and closed by force; thinking that ends early is
extended by writing "Wait" where the end delimiter would be, at most ``num_waits``
times. Then the model answers after a cue. If no answer can be extracted from that,
one short greedy call, begun with the task's answer format (``The final answer is
\\boxed{``), makes the model commit to one; it always ends with an answer or the
reason it has none.

It continues the assistant's turn through ``GenRequest.continuation``, so an engine
must honour it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ponder.core.context import Context
from ponder.core.errors import BudgetExceeded, ConfigError
from ponder.core.types import Candidate, Completion, Message, Problem, Result, Usage
from ponder.strategies.base import make_result, register, stopped_by_budget
from ponder.strategies.sampling import check_sampling

__all__ = ["BudgetForcing"]

THINKING_INSTRUCTION = (
    "First think the problem through between {think_start} and {think_end}. "
    "After {think_end}, write the final answer."
)
"""Default ``BudgetForcing.instruction``; ``{think_start}``/``{think_end}`` are filled in."""

FORCED_ANSWER_STOP = ("\n",)
"""The forced-answer call ends at the end of its line."""


@register("budget_forcing")
@dataclass(frozen=True)
class BudgetForcing:
    """s1 budget forcing: cap the thinking, or extend it with "Wait", then answer.

    The assistant turn is begun with ``think_start`` and the model thinks until it
    writes ``think_end`` (a stop string; EOS counts as the end too), with at most the
    thinking budget left as ``max_tokens``. The budget is ``max_thinking_tokens``
    (None: the context's ``max_tokens``), counted in generated tokens as the engine
    reports them; the appended delimiters and wait words are not thinking tokens.

    - The budget runs out: the thinking is cut there and ``think_end`` is appended.
    - The model ends early, fewer than ``num_waits`` waits were used, and the thinking
      is shorter than ``min_thinking_tokens`` (None: any length counts as early, s1's
      fixed number of waits): ``wait`` is appended in place of the end and the
      thinking goes on.

    Then ``think_end`` and ``answer_cue`` are appended and the model writes its answer
    (at most ``max_answer_tokens``); the answer is extracted from the text from
    ``answer_cue`` on, never from the thinking. If none is found, the turn is extended
    with ``forced_answer_cue`` and one greedy call of at most ``forced_answer_tokens``
    (stopping at a newline) completes it; ``forced_answer_close`` is appended when
    the answer extracts only with it (a ``\\boxed{`` the model did not close).

    ``instruction`` is appended to the last user message so that a model not trained
    to think between these delimiters is told to; "" leaves the task's prompt alone.
    For a thinking model whose chat template opens the thinking itself, set
    ``think_start=""``: the turn then starts empty and no instruction is added.
    The single candidate's text is the whole assistant turn, delimiters included.
    ``Result.meta`` holds ``thinking_tokens``, ``waits_used``, ``thinking_capped``,
    ``forced_answer`` and ``answer_tokens``.

    It always ends with an answer or the reason there is none (``meta["no_answer"]``).
    Under a token budget, a call that would not fit is not made: thinking ends there,
    an answer call that does not fit leaves the answer to the short forced call, and
    when neither fits the answer is read from the thinking (``meta["answer_from"]`` is
    ``"thinking"``, the one case it is); ``meta`` then has ``stopped="budget"`` and the
    ``stop_reason``.
    """

    max_thinking_tokens: int | None = None
    min_thinking_tokens: int | None = None
    num_waits: int = 0
    think_start: str = "<think>"
    think_end: str = "</think>"
    wait: str = "\nWait"
    answer_cue: str = "\n\nFinal answer:"
    max_answer_tokens: int = 256
    forced_answer_cue: str = "\n\nThe final answer is \\boxed{"
    forced_answer_close: str = "}"
    forced_answer_tokens: int = 16
    instruction: str = THINKING_INSTRUCTION
    temperature: float = 0.0
    top_p: float = 1.0

    def __post_init__(self) -> None:
        name = "budget_forcing"
        if self.max_thinking_tokens is not None and self.max_thinking_tokens < 1:
            raise ConfigError(
                f"{name}: max_thinking_tokens must be >= 1, got {self.max_thinking_tokens}"
            )
        if self.min_thinking_tokens is not None:
            if self.min_thinking_tokens < 1:
                raise ConfigError(
                    f"{name}: min_thinking_tokens must be >= 1, got {self.min_thinking_tokens}"
                )
            if self.num_waits < 1:
                raise ConfigError(
                    f"{name}: min_thinking_tokens needs num_waits >= 1: thinking is "
                    "extended only by waits, at most num_waits of them"
                )
            if (
                self.max_thinking_tokens is not None
                and self.min_thinking_tokens > self.max_thinking_tokens
            ):
                raise ConfigError(
                    f"{name}: min_thinking_tokens ({self.min_thinking_tokens}) exceeds "
                    f"max_thinking_tokens ({self.max_thinking_tokens})"
                )
        if self.num_waits < 0:
            raise ConfigError(f"{name}: num_waits must be >= 0, got {self.num_waits}")
        if not self.think_end:
            raise ConfigError(f"{name}: think_end must not be empty (it is a stop string)")
        if not self.wait.strip():
            raise ConfigError(f"{name}: wait must hold some text, got {self.wait!r}")
        if self.max_answer_tokens < 1:
            raise ConfigError(
                f"{name}: max_answer_tokens must be >= 1, got {self.max_answer_tokens}"
            )
        if self.forced_answer_tokens < 1:
            raise ConfigError(
                f"{name}: forced_answer_tokens must be >= 1, got {self.forced_answer_tokens}"
            )
        check_sampling(self.temperature, self.top_p)

    async def __call__(self, problem: Problem, ctx: Context) -> Result:
        t0 = time.perf_counter()
        turn = _Turn(
            problem,
            ctx,
            self._messages(problem, ctx),
            self.temperature,
            self.top_p,
            text=self.think_start,
        )
        thinking, waits, capped = await self._think(
            turn, self.max_thinking_tokens or ctx.max_tokens
        )
        turn.text += self.think_end
        answer_from = len(turn.text)
        answer, answer_tokens, forced, forced_text = await self._answer(turn, answer_from)
        meta: dict[str, Any] = {
            "thinking_tokens": thinking,
            "waits_used": waits,
            "thinking_capped": capped,
            "forced_answer": forced,
            "answer_tokens": answer_tokens,
        }
        if turn.refused:
            meta.update(stopped_by_budget(turn.refused[0]))
            if answer is None:
                # no room left to answer: the thinking's own last answer is the best there is
                thought = turn.text[len(self.think_start) : answer_from - len(self.think_end)]
                answer = ctx.extract(thought)
                if answer is not None:
                    meta["answer_from"] = "thinking"
        if answer is None:
            meta["no_answer"] = (
                "the token budget left no room to answer"
                if forced_text is None
                else "neither the answer nor the forced answer held one "
                f"(the forced call wrote {forced_text[:80]!r})"
            )
        cand = Candidate(text=turn.text, answer=answer, usage=turn.usage, finish_reason=turn.finish)
        votes = {answer: 1.0} if answer is not None else {}
        return make_result("budget_forcing", ctx, t0, answer, [cand], votes, meta)

    async def _think(self, turn: _Turn, budget: int) -> tuple[int, int, bool]:
        """Think until the model ends or the budget is spent, a wait in place of each
        early end while ``_extend`` allows: the thinking tokens, the waits used and
        whether the budget cut the thinking."""
        thinking = waits = 0
        capped = False
        wait = ""  # what the next thinking call begins with: nothing, or a wait
        while c := await turn.go_on(
            turn.text + wait, budget - thinking, (self.think_end,), "think"
        ):
            waits += bool(wait)
            thinking += c.usage.completion_tokens
            turn.text += wait + c.text
            turn.finish = c.finish_reason
            capped = c.finish_reason == "length"
            if capped or not self._extend(thinking, budget, waits):
                break
            wait = self.wait
        return thinking, waits, capped

    async def _answer(
        self, turn: _Turn, answer_from: int
    ) -> tuple[str | None, int, bool, str | None]:
        """Answer after the cue, extracted from the text from ``answer_from`` on; when
        that holds none, the short greedy forced call. The answer, its tokens, whether
        the forced call was needed and what it wrote (None when it was not made)."""
        answer = None
        answer_tokens = 0
        if c := await turn.go_on(turn.text + self.answer_cue, self.max_answer_tokens, (), "answer"):
            turn.text += self.answer_cue + c.text
            answer_tokens = c.usage.completion_tokens
            turn.finish = c.finish_reason
            answer = turn.ctx.extract(turn.text[answer_from:])
        if answer is not None:
            return answer, answer_tokens, False, None
        cue = turn.text + self.forced_answer_cue
        c = await turn.go_on(
            cue, self.forced_answer_tokens, FORCED_ANSWER_STOP, "forced_answer", greedy=True
        )
        if c is None:
            return None, answer_tokens, True, None
        turn.text, turn.finish = cue + c.text, c.finish_reason
        answer_tokens += c.usage.completion_tokens
        answer = turn.ctx.extract(turn.text[answer_from:])
        if answer is None and self.forced_answer_close:
            answer = turn.ctx.extract(turn.text[answer_from:] + self.forced_answer_close)
            if answer is not None:
                turn.text += self.forced_answer_close
        return answer, answer_tokens, True, c.text

    def _extend(self, thinking: int, budget: int, waits: int) -> bool:
        """Whether an end of thinking after ``thinking`` tokens is replaced by a wait."""
        if waits >= self.num_waits or thinking >= budget:
            return False
        return self.min_thinking_tokens is None or thinking < self.min_thinking_tokens

    def _messages(self, problem: Problem, ctx: Context) -> tuple[Message, ...]:
        messages = list(ctx.task.messages(problem))
        if not self.instruction or not self.think_start:
            return tuple(messages)
        text = self.instruction.replace("{think_start}", self.think_start)
        text = text.replace("{think_end}", self.think_end)
        users = [i for i, m in enumerate(messages) if m.role == "user"]
        if users:
            last = messages[users[-1]]
            messages[users[-1]] = Message("user", f"{last.content}\n\n{text}")
        else:
            messages.append(Message("user", text))
        return tuple(messages)


@dataclass
class _Turn:
    """The assistant turn ``budget_forcing`` writes, over the calls that continue it:
    its text so far, their usage, the last call's finish reason and the budget errors
    of the calls that were refused."""

    problem: Problem
    ctx: Context
    messages: tuple[Message, ...]
    temperature: float
    top_p: float
    text: str = ""
    usage: Usage = field(default_factory=Usage)
    finish: str = "stop"
    refused: list[BudgetExceeded] = field(default_factory=list)

    async def go_on(
        self,
        continuation: str,
        max_tokens: int,
        stop: tuple[str, ...],
        label: str,
        greedy: bool = False,
    ) -> Completion | None:
        """The turn continued from ``continuation``, or None when a token budget has no
        room for the call."""
        request = self.ctx.request(
            self.problem,
            temperature=0.0 if greedy else self.temperature,
            top_p=1.0 if greedy else self.top_p,
            max_tokens=max_tokens,
            messages=self.messages,
            continuation=continuation,
            stop=stop,
        )
        try:
            ((completion,),) = await self.ctx.generate([request], label=label)
        except BudgetExceeded as e:
            self.refused.append(e)
            return None
        self.usage = self.usage + completion.usage
        return completion
