"""Sequential scaling: spend compute by building on what the model already wrote.

- ``revise``: sequential revisions (Snell et al. 2024, "Scaling LLM Test-Time Compute
  Optimally can be More Effective than Scaling Model Parameters", section 6). The model
  answers; then it is shown its latest attempts and asked to find and fix their
  mistakes and to write a corrected solution in full; and so on. ``chains`` splits the
  ``n`` attempts into k independent chains of n/k attempts each, Snell's mix of
  sequential and parallel compute. The chains advance together: one engine call per
  depth holds every chain's request (the first depth is one request with ``n = k``,
  so its prompt is prefilled once). The answer is chosen over every attempt of every
  chain, by majority vote or (``select="verifier"``) by Snell's "best-of-N weighted"
  rule: each answer's votes are weighted by the verifier's scores.
- ``budget_forcing``: s1's budget forcing (Muennighoff et al. 2025, "s1: Simple
  test-time scaling"). The model thinks between two delimiters. Thinking that reaches
  ``max_thinking_tokens`` is cut there and closed by force; thinking that ends early
  is extended by writing "Wait" where the end delimiter would be, at most
  ``num_waits`` times. Then the model answers after a cue. If no answer can be
  extracted from that, one short greedy call, begun with the task's answer format
  (``The final answer is \\boxed{``), makes the model commit to one; it always ends
  with an answer or the reason it has none.

Both strategies continue the assistant's turn through ``GenRequest.continuation``, so
an engine must honour it. Ties follow the rule in ``ponder.strategies.voting``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ponder.core.context import Context
from ponder.core.errors import BudgetExceeded, ConfigError
from ponder.core.types import Candidate, Completion, GenRequest, Message, Problem, Result, Usage
from ponder.strategies.base import (
    check_sampling,
    make_candidates,
    make_result,
    register,
    stopped_by_budget,
)
from ponder.strategies.voting import majority_vote, weighted_vote
from ponder.verifiers.registry import make_scorer

__all__ = ["REVISION_REQUEST", "BudgetForcing", "Revise"]

REVISION_REQUEST = (
    "Check the solution above step by step. Find any mistakes in the reasoning or in "
    "the arithmetic and fix them. Then write the corrected solution in full, from the "
    "start, and give the final answer in the format the problem asks for."
)
"""The user turn that follows each earlier attempt in a revision prompt."""

SELECT_RULES = ("majority", "verifier")


@register("revise")
@dataclass(frozen=True)
class Revise:
    """Sequential revisions: each attempt corrects the previous ones of its chain.

    ``n`` attempts in all, in ``chains`` chains of ``n / chains``; each attempt is
    shown the chain's last ``context_attempts`` attempts, which bounds the prompt.
    The prompt of an attempt at depth d > 0 is the task's own messages (so its answer
    format instructions stay), then, for each shown earlier attempt of the chain, that
    attempt as an assistant turn followed by ``REVISION_REQUEST`` as a user turn.

    ``select="majority"``: the most frequent answer over all attempts.
    ``select="verifier"``: all attempts are scored by ``scorer`` and each answer's
    votes are weighted by its attempts' scores (Snell's best-of-N weighted).
    Candidates are in generation order (depth by depth, chains in order within a
    depth); ``Result.meta["chains"][c]`` lists chain c's candidate indices by depth
    and ``Result.meta["attempts"][i]`` gives candidate i's chain and depth. A depth
    that would not fit a token budget is not drawn, and scoring that would not fit
    leaves a majority vote: the attempts so far decide, and ``meta`` has
    ``stopped="budget"`` and the ``stop_reason``.
    """

    n: int = 4
    chains: int = 1
    context_attempts: int = 2
    temperature: float = 0.7
    top_p: float = 0.95
    select: str = "majority"
    scorer: str = "logprob"

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ConfigError(f"revise: n must be >= 1, got {self.n}")
        if self.chains < 1:
            raise ConfigError(f"revise: chains must be >= 1, got {self.chains}")
        if self.n % self.chains:
            raise ConfigError(
                f"revise: n ({self.n}) must be a multiple of chains ({self.chains}), "
                "so that every chain has n / chains attempts"
            )
        if self.context_attempts < 1:
            raise ConfigError(f"revise: context_attempts must be >= 1, got {self.context_attempts}")
        if self.select not in SELECT_RULES:
            raise ConfigError(
                f"revise: select must be one of {', '.join(SELECT_RULES)}, got {self.select!r}"
            )
        check_sampling(self.temperature, self.top_p)

    async def __call__(self, problem: Problem, ctx: Context) -> Result:
        t0 = time.perf_counter()
        scorer = make_scorer(self.scorer) if self.select == "verifier" else None
        logprobs = scorer is not None and scorer.needs_logprobs
        base = ctx.task.messages(problem)
        history: list[list[Completion]] = [[] for _ in range(self.chains)]
        completions: list[Completion] = []
        placement: list[tuple[int, int]] = []  # (chain, depth) of each completion
        stopped: dict[str, str] = {}
        for depth in range(self.n // self.chains):
            if depth == 0:
                # every chain starts from the same prompt: one request, prefilled once
                requests = [self._request(problem, ctx, base, self.chains, logprobs)]
            else:
                requests = [
                    self._request(problem, ctx, self._revision_prompt(base, past), 1, logprobs)
                    for past in history
                ]
            try:
                out = await ctx.generate(requests, label=f"revise depth {depth}")
            except BudgetExceeded as e:
                if not completions:
                    raise
                stopped = stopped_by_budget(e)  # the attempts so far decide
                break
            for chain, completion in enumerate(c for comps in out for c in comps):
                history[chain].append(completion)
                completions.append(completion)
                placement.append((chain, depth))

        scores: list[float] | None = None
        if scorer is not None:
            try:
                scores = [s.value for s in await ctx.score(problem, completions, scorer)]
            except BudgetExceeded as e:
                stopped = stopped or stopped_by_budget(e)
                stopped["fallback"] = "majority vote of the unscored attempts"
        cands = make_candidates(ctx, completions, scores)
        answers = [c.answer for c in cands]
        if scores is None:
            answer, votes = majority_vote(answers)
        else:
            answer, votes = weighted_vote(answers, scores)
        meta: dict[str, Any] = {
            "select": self.select,
            "chains": [
                [i for i, (c, _) in enumerate(placement) if c == chain]
                for chain in range(self.chains)
            ],
            "attempts": [{"chain": c, "depth": d} for c, d in placement],
            **stopped,
        }
        return make_result("revise", ctx, t0, answer, cands, votes, meta)

    def _revision_prompt(
        self, base: Sequence[Message], past: Sequence[Completion]
    ) -> tuple[Message, ...]:
        turns: list[Message] = list(base)
        for attempt in past[-self.context_attempts :]:
            turns.append(Message("assistant", attempt.text.strip()))
            turns.append(Message("user", REVISION_REQUEST))
        return tuple(turns)

    def _request(
        self,
        problem: Problem,
        ctx: Context,
        messages: Sequence[Message],
        n: int,
        logprobs: bool,
    ) -> GenRequest:
        return ctx.request(
            problem,
            n=n,
            temperature=self.temperature,
            top_p=self.top_p,
            logprobs=logprobs,
            top_logprobs=5 if logprobs else 0,
            messages=messages,
        )


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
        messages = self._messages(problem, ctx)
        budget = self.max_thinking_tokens or ctx.max_tokens
        usage = Usage()
        refused: list[BudgetExceeded] = []

        async def go_on(
            turn: str, max_tokens: int, stop: tuple[str, ...], label: str, greedy: bool = False
        ) -> Completion | None:
            """The turn continued, or None when a token budget has no room for the call."""
            nonlocal usage
            request = ctx.request(
                problem,
                temperature=0.0 if greedy else self.temperature,
                top_p=1.0 if greedy else self.top_p,
                max_tokens=max_tokens,
                messages=messages,
                continuation=turn,
                stop=stop,
            )
            try:
                ((completion,),) = await ctx.generate([request], label=label)
            except BudgetExceeded as e:
                refused.append(e)
                return None
            usage = usage + completion.usage
            return completion

        turn = self.think_start
        thinking = waits = 0
        capped = False
        wait = ""  # what the next thinking call begins with: nothing, or a wait
        finish = "stop"
        while c := await go_on(turn + wait, budget - thinking, (self.think_end,), "think"):
            waits += bool(wait)
            thinking += c.usage.completion_tokens
            turn += wait + c.text
            finish = c.finish_reason
            capped = c.finish_reason == "length"
            if capped or not self._extend(thinking, budget, waits):
                break
            wait = self.wait

        turn += self.think_end
        answer_from = len(turn)
        answer = None
        answer_tokens = 0
        if c := await go_on(turn + self.answer_cue, self.max_answer_tokens, (), "answer"):
            turn += self.answer_cue + c.text
            answer_tokens = c.usage.completion_tokens
            finish = c.finish_reason
            answer = ctx.extract(turn[answer_from:])
        forced = answer is None
        forced_text = None
        if forced:
            cue = turn + self.forced_answer_cue
            c = await go_on(
                cue, self.forced_answer_tokens, FORCED_ANSWER_STOP, "forced_answer", True
            )
            if c is not None:
                turn, forced_text, finish = cue + c.text, c.text, c.finish_reason
                answer_tokens += c.usage.completion_tokens
                answer = ctx.extract(turn[answer_from:])
                if answer is None and self.forced_answer_close:
                    answer = ctx.extract(turn[answer_from:] + self.forced_answer_close)
                    if answer is not None:
                        turn += self.forced_answer_close

        meta: dict[str, Any] = {
            "thinking_tokens": thinking,
            "waits_used": waits,
            "thinking_capped": capped,
            "forced_answer": forced,
            "answer_tokens": answer_tokens,
        }
        if refused:
            meta.update(stopped_by_budget(refused[0]))
            if answer is None:
                # no room left to answer: the thinking's own last answer is the best there is
                answer = ctx.extract(
                    turn[len(self.think_start) : answer_from - len(self.think_end)]
                )
                if answer is not None:
                    meta["answer_from"] = "thinking"
        if answer is None:
            meta["no_answer"] = (
                "the token budget left no room to answer"
                if forced_text is None
                else "neither the answer nor the forced answer held one "
                f"(the forced call wrote {forced_text[:80]!r})"
            )
        cand = Candidate(text=turn, answer=answer, usage=usage, finish_reason=finish)
        votes = {answer: 1.0} if answer is not None else {}
        return make_result("budget_forcing", ctx, t0, answer, [cand], votes, meta)

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
