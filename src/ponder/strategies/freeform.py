"""Choosing among free-form answers, where no two are spelled alike.

- ``semantic_majority``: self-consistency over meanings. n samples; their answers are
  clustered (``ponder.verifiers.equivalence``: by normalised text, sentence embeddings
  or the model judging equivalence) and the largest cluster wins, answered by its
  representative (its first member). Ties follow the rule in
  ``ponder.strategies.voting``: the cluster whose k-th member came first.
- ``universal_self_consistency``: USC (Chen et al. 2023, "Universal Self-Consistency
  for Large Language Model Generation"). n samples; then one greedy generation is
  shown every candidate, numbered, and asked which is most consistent with the
  majority of them; its answer is the answer. A reply with no usable number falls
  back to the largest cluster of normalised answers, and ``meta["selection"]`` says so
  and why.

Under a token budget, clustering or a selection that would not fit falls back to the
clusters of normalised answers, and ``meta`` has ``stopped="budget"`` and the
``stop_reason``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ponder.core.context import Context
from ponder.core.errors import BudgetExceeded, ConfigError
from ponder.core.types import Candidate, GenRequest, Message, Problem, Result
from ponder.strategies.base import (
    check_sampling,
    make_candidates,
    make_result,
    register,
    sample,
    stopped_by_budget,
)
from ponder.strategies.voting import majority_vote
from ponder.verifiers.equivalence import (
    CLUSTER_METHODS,
    AnswerClusterer,
    Clustering,
    TextClusterer,
    make_clusterer,
)

__all__ = ["SemanticMajority", "UniversalSelfConsistency", "parse_choice"]


def _cluster_vote(
    cands: Sequence[Candidate], clustering: Clustering
) -> tuple[str | None, dict[str, float], int | None]:
    """The winning cluster's representative answer, the votes per cluster (keyed by
    representative answer) and the winner's representative index."""
    reps = clustering.representatives
    labels = [None if k is None else str(cands[reps[k]].answer) for k in clustering.labels]
    answer, votes = majority_vote(labels)
    if answer is None:
        return None, votes, None
    winner = next(r for r in reps if cands[r].answer == answer)
    return answer, votes, winner


def _clusters_meta(cands: Sequence[Candidate], clustering: Clustering) -> list[dict[str, Any]]:
    return [
        {"answer": cands[r].answer, "members": clustering.members(k)}
        for k, r in enumerate(clustering.representatives)
    ]


@register("semantic_majority")
@dataclass(frozen=True)
class SemanticMajority:
    """Self-consistency over meanings: n samples, answers clustered, the largest wins.

    ``cluster``: ``text`` (normalised text), ``embed`` (sentence embeddings with cosine
    at least ``threshold``, model ``embed_model``; ``pip install 'ponder[embed]'``) or
    ``judge`` (the model asked whether two answers are the same). ``votes`` counts each
    cluster's members under its representative answer; ``meta["clusters"]`` lists the
    members of each.
    """

    n: int = 8
    temperature: float = 0.7
    top_p: float = 0.95
    cluster: str = "text"
    threshold: float = 0.8
    embed_model: str = "all-MiniLM-L6-v2"

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ConfigError(f"semantic_majority: n must be >= 1, got {self.n}")
        if self.cluster not in CLUSTER_METHODS:
            raise ConfigError(
                f"semantic_majority: cluster must be one of {', '.join(CLUSTER_METHODS)}, "
                f"got {self.cluster!r}"
            )
        check_sampling(self.temperature, self.top_p)
        self.clusterer()  # a missing model or package is an error now, not per problem

    def clusterer(self) -> AnswerClusterer:
        return make_clusterer(self.cluster, threshold=self.threshold, embed_model=self.embed_model)

    async def __call__(self, problem: Problem, ctx: Context) -> Result:
        t0 = time.perf_counter()
        comps = await sample(problem, ctx, self.n, self.temperature, self.top_p)
        cands = make_candidates(ctx, comps)
        answers = [c.answer for c in cands]
        stopped: dict[str, str] = {}
        try:
            clustering = await self.clusterer().cluster(problem, answers, ctx)
        except BudgetExceeded as e:
            stopped = {**stopped_by_budget(e), "fallback": "text clusters"}
            clustering = await TextClusterer().cluster(problem, answers, ctx)
        answer, votes, _ = _cluster_vote(cands, clustering)
        meta = {**clustering.meta, "clusters": _clusters_meta(cands, clustering), **stopped}
        return make_result("semantic_majority", ctx, t0, answer, cands, votes, meta)


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
    characters), ``answer`` only its extracted answer. Candidates with no extracted
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
        text_clusters = await TextClusterer().cluster(problem, [c.answer for c in cands], ctx)
        _, votes, fallback_index = _cluster_vote(cands, text_clusters)
        shown = [i for i, c in enumerate(cands) if c.answer is not None]
        selection: dict[str, Any] = {"shown": shown}
        stopped: dict[str, str] = {}
        if not shown:
            selection.update(chosen=None, reason="no candidate has an answer")
        elif len(shown) == 1 or (self.skip_unanimous and len(votes) == 1):
            selection.update(
                chosen=shown[0],
                reason="one candidate" if len(shown) == 1 else "all answers agree",
            )
        else:
            responses = [
                _shown(cands[i].text if self.show == "text" else str(cands[i].answer),
                       self.max_chars)
                for i in shown
            ]  # fmt: skip
            request = GenRequest(
                messages=usc_messages(problem.question, responses),
                max_tokens=self.select_tokens,
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
                number, how = parse_choice(reply, len(shown))
                selection["reply"] = reply
                if number is None:
                    selection.update(chosen=fallback_index, fallback="text_majority", reason=how)
                else:
                    selection.update(chosen=shown[number - 1], reason=how)
        chosen = selection["chosen"]
        answer = None if chosen is None else cands[chosen].answer
        meta = {
            "selection": selection,
            "clusters": _clusters_meta(cands, text_clusters),
            **stopped,
        }
        return make_result("universal_self_consistency", ctx, t0, answer, cands, votes, meta)
