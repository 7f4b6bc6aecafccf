"""``universal_self_consistency``: USC (Chen et al. 2023, "Universal Self-Consistency
for Large Language Model Generation").

n samples; then one greedy generation is shown every candidate, numbered, and asked
which is most consistent with the majority of them; its answer is the answer. A reply
with no usable number falls back to the largest cluster of normalised answers, and
``meta["selection"]`` says so and why.

Under a token budget, a selection that would not fit falls back to the clusters of
normalised answers, and ``meta`` has ``stopped="budget"`` and the ``stop_reason``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ponder.core.context import Context
from ponder.core.errors import BudgetExceeded, ConfigError
from ponder.core.reasoning import final_answer
from ponder.core.types import Candidate, GenRequest, Message, Problem, Result
from ponder.strategies.base import make_candidates, make_result, register, stopped_by_budget
from ponder.strategies.clusters import cluster_vote, clusters_meta
from ponder.strategies.sampling import check_sampling, sample
from ponder.verifiers.equivalence import (
    TextClusterer,
)

__all__ = ["UniversalSelfConsistency", "parse_choice", "select_consistent"]

USC_INSTRUCTION = (
    "Read the responses above. Which response agrees best with what most of the "
    'responses say? Reply with the words "The most consistent response is Response" '
    "followed by that response's number, and nothing else."
)

_MOST_CONSISTENT_RE = re.compile(
    r"most\s+consistent\W*(?:(?:one|response|answer)\W*)?(?:is\W*)?"
    r"(?:(?:response|answer|number|no)\W*)?(\d+)",
    re.IGNORECASE,
)
_RESPONSE_RE = re.compile(r"\b(?:response|answer)\s*#?\s*(\d+)", re.IGNORECASE)
_BARE_NUMBER_RE = re.compile(r"^\W*(\d+)\W*$")


def parse_choice(reply: str, count: int) -> tuple[int | None, str]:
    """The 1-based response number a selection reply names, and how it was read.

    In order: the number after "most consistent (response is)", a bare number, the one
    response the reply mentions ("Response 3"). A number outside ``1..count``, several
    different responses and no number at all give None, with the reason.
    """
    found: list[tuple[int, str]] = []
    m = _MOST_CONSISTENT_RE.search(reply)
    if m:
        found.append((int(m.group(1)), "named as most consistent"))
    else:
        m = _BARE_NUMBER_RE.match(reply)
        if m:
            found.append((int(m.group(1)), "bare number"))
        else:
            mentioned = sorted({int(x) for x in _RESPONSE_RE.findall(reply)})
            if len(mentioned) > 1:
                return None, f"mentions several responses ({', '.join(map(str, mentioned))})"
            if mentioned:
                found.append((mentioned[0], "the one response mentioned"))
    if not found:
        return None, "no response number in the reply"
    number, how = found[0]
    if not 1 <= number <= count:
        return None, f"chose response {number}, but there are {count}"
    return number, how


def _shown(text: str, limit: int) -> str:
    """A response as the selection prompt shows it: its end when it is too long (the
    end is where the answer is)."""
    text = text.strip()
    return text if len(text) <= limit else "..." + text[-limit:]


def usc_messages(question: str, responses: Sequence[str]) -> tuple[Message, ...]:
    parts = [f"Question:\n{question.strip()}\n\nResponses:\n"]
    parts.extend(f"\nResponse {i}:\n{r}\n" for i, r in enumerate(responses, start=1))
    parts.append(f"\n{USC_INSTRUCTION}")
    return (Message("user", "".join(parts)),)


SHOW_MODES = ("text", "answer")


@register("universal_self_consistency")
@dataclass(frozen=True)
class UniversalSelfConsistency:
    """USC: n samples, then the model picks the one most consistent with the others.

    ``show``: ``text`` shows each candidate's whole response (its last ``max_chars``
    characters; a reasoning model's final answer, its thinking left out), ``answer``
    only its extracted answer. Candidates with no extracted
    answer are not shown (picking one could only give no answer). The selection is one
    greedy call of at most ``select_tokens`` tokens, on the ledger as a ``score`` event;
    it is skipped when every shown candidate has the same normalised answer
    (``skip_unanimous``) or only one is shown. ``meta["selection"]`` has the reply, the
    chosen candidate (0-based index into the candidates) and, when the reply could not
    be used, the fallback (the largest cluster of normalised answers) and the reason.
    """

    n: int = 8
    temperature: float = 0.7
    top_p: float = 0.95
    show: str = "text"
    max_chars: int = 1500
    select_tokens: int = 32
    skip_unanimous: bool = True

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ConfigError(f"universal_self_consistency: n must be >= 1, got {self.n}")
        if self.show not in SHOW_MODES:
            raise ConfigError(
                f"universal_self_consistency: show must be text or answer, got {self.show!r}"
            )
        if self.max_chars < 1 or self.select_tokens < 1:
            raise ConfigError(
                "universal_self_consistency: max_chars and select_tokens must be >= 1, got "
                f"{self.max_chars}, {self.select_tokens}"
            )
        check_sampling(self.temperature, self.top_p)

    async def __call__(self, problem: Problem, ctx: Context) -> Result:
        t0 = time.perf_counter()
        comps = await sample(problem, ctx, self.n, self.temperature, self.top_p)
        cands = make_candidates(ctx, comps)
        answer, votes, meta = await select_consistent(
            problem, cands, ctx, show=self.show, max_chars=self.max_chars,
            select_tokens=self.select_tokens, skip_unanimous=self.skip_unanimous,
        )  # fmt: skip
        return make_result("universal_self_consistency", ctx, t0, answer, cands, votes, meta)


async def select_consistent(
    problem: Problem,
    cands: Sequence[Candidate],
    ctx: Context,
    *,
    show: str = "text",
    max_chars: int = 1500,
    select_tokens: int = 32,
    skip_unanimous: bool = True,
) -> tuple[str | None, dict[str, float], dict[str, Any]]:
    """USC's selection among candidates already drawn (``UniversalSelfConsistency``
    says how): the chosen answer, the votes of the clusters of normalised answers, and
    the ``meta`` (``selection``, ``clusters`` and, when a budget refused the call,
    ``stopped``)."""
    text_clusters = await TextClusterer().cluster(problem, [c.answer for c in cands], ctx)
    _, votes, fallback_index = cluster_vote(cands, text_clusters)
    shown = [i for i, c in enumerate(cands) if c.answer is not None]
    selection: dict[str, Any] = {"shown": shown}
    stopped: dict[str, str] = {}
    if not shown:
        selection.update(chosen=None, reason="no candidate has an answer")
    elif len(shown) == 1 or (skip_unanimous and len(votes) == 1):
        selection.update(
            chosen=shown[0],
            reason="one candidate" if len(shown) == 1 else "all answers agree",
        )
    else:
        responses = [
            # a reasoning model's thinking is not shown: only what it answered
            _shown(final_answer(cands[i].text) if show == "text" else str(cands[i].answer),
                   max_chars)
            for i in shown
        ]  # fmt: skip
        request = GenRequest(
            messages=usc_messages(problem.question, responses),
            max_tokens=select_tokens,
            temperature=0.0,
        )
        try:
            (out,) = await ctx.generate([request], kind="score", label="usc")
        except BudgetExceeded as e:
            stopped = stopped_by_budget(e)
            selection.update(
                chosen=fallback_index, fallback="text_majority", reason=stopped["stop_reason"]
            )
        else:
            reply = out[0].text
            number, how = parse_choice(final_answer(reply), len(shown))
            selection["reply"] = reply
            if number is None:
                selection.update(chosen=fallback_index, fallback="text_majority", reason=how)
            else:
                selection.update(chosen=shown[number - 1], reason=how)
    chosen = selection["chosen"]
    answer = None if chosen is None else cands[chosen].answer
    meta = {"selection": selection, "clusters": clusters_meta(cands, text_clusters), **stopped}
    return answer, votes, meta
