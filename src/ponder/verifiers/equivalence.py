"""Which answers mean the same: normalised text, and clusters of a problem's answers.

Free-form answers are rarely spelled alike ("Paris", "paris.", "The city of Paris"), so
voting on exact strings splits one answer into many. A clusterer groups answers that
mean the same and majority voting counts clusters instead of strings:

- ``text``: equal after ``normalize_answer`` (case, accents, punctuation, articles,
  spacing);
- ``embed``: cosine similarity of sentence embeddings at or above a threshold
  (``ponder.verifiers.embedding``; the model's tokens and seconds go on the ledger);
- ``judge``: the generating model asked whether two answers say the same thing (its
  tokens go on the ledger as ``score`` events).

Every method first groups answers with equal normalised text (free and certain), then
merges those groups leader-style in sample order: a group joins the existing cluster
whose representative (its first member) it matches, or starts a new one. The judge is
therefore asked about each new group against each cluster so far, at most
``groups * clusters`` questions, batched per group; embedding needs one call for every
group at once. Answers that are None (nothing extracted) belong to no cluster.

On all-MiniLM-L6-v2, paraphrased sentences score about 0.85-0.95, the same entity
written two ways 0.9 or more ("Albert Einstein" / "Einstein" 0.91), and different short
answers 0.4-0.78 ("Paris" / "London" 0.58, "42" / "43" 0.77): the default threshold
0.8 sits between, with little room for numbers, where ``text`` or ``judge`` is safer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from ponder.core.errors import ConfigError
from ponder.core.types import Message, Problem, Usage
from ponder.grading.freeform import ask_yes_no, normalize_answer

if TYPE_CHECKING:
    from ponder.core.context import Context
    from ponder.verifiers.embedding import TextEmbedder

__all__ = [
    "CLUSTER_METHODS",
    "AnswerClusterer",
    "Clustering",
    "EmbeddingClusterer",
    "JudgeClusterer",
    "TextClusterer",
    "make_clusterer",
]

ClusterMethod = Literal["text", "embed", "judge"]
CLUSTER_METHODS: tuple[ClusterMethod, ...] = ("text", "embed", "judge")


@dataclass(frozen=True)
class Clustering:
    """Clusters of a problem's answers.

    ``labels[i]`` is the cluster of answer ``i`` (None for an answer that is None);
    cluster ``k`` is represented by answer ``representatives[k]``, its first member in
    sample order, and clusters are numbered in the order they started. ``meta`` says
    what the method did (calls, similarities, unclear verdicts).
    """

    labels: tuple[int | None, ...]
    representatives: tuple[int, ...]
    meta: Mapping[str, Any] = field(default_factory=dict)

    def members(self, k: int) -> list[int]:
        return [i for i, label in enumerate(self.labels) if label == k]

    def sizes(self) -> list[int]:
        return [len(self.members(k)) for k in range(len(self.representatives))]


class AnswerClusterer(Protocol):
    """Groups a problem's answers by meaning; any compute it spends is on ``ctx.ledger``."""

    @property
    def name(self) -> str: ...

    async def cluster(
        self, problem: Problem, answers: Sequence[str | None], ctx: Context
    ) -> Clustering: ...


def _text_groups(answers: Sequence[str | None]) -> tuple[list[int | None], list[int]]:
    """Answers grouped by normalised text: each answer's group and each group's first."""
    index: dict[str, int] = {}
    labels: list[int | None] = []
    firsts: list[int] = []
    for i, a in enumerate(answers):
        if a is None:
            labels.append(None)
            continue
        key = normalize_answer(a)
        if key not in index:
            index[key] = len(firsts)
            firsts.append(i)
        labels.append(index[key])
    return labels, firsts


def _merge(
    labels: Sequence[int | None], firsts: Sequence[int], joins: Sequence[int | None]
) -> tuple[tuple[int | None, ...], tuple[int, ...]]:
    """Text groups merged into clusters: group ``g`` joins the cluster started by group
    ``joins[g]`` (an earlier group that started one), or starts its own when None."""
    cluster_of: list[int] = []
    representatives: list[int] = []
    for g, join in enumerate(joins):
        if join is None:
            cluster_of.append(len(representatives))
            representatives.append(firsts[g])
        else:
            if not join < g:
                raise ValueError(f"group {g} cannot join group {join}, which comes later")
            cluster_of.append(cluster_of[join])
    merged = tuple(None if g is None else cluster_of[g] for g in labels)
    return merged, tuple(representatives)


@dataclass(frozen=True)
class TextClusterer:
    """Answers equal after ``normalize_answer`` form a cluster; costs nothing."""

    @property
    def name(self) -> str:
        return "text"

    async def cluster(
        self, problem: Problem, answers: Sequence[str | None], ctx: Context
    ) -> Clustering:
        labels, firsts = _text_groups(answers)
        return Clustering(tuple(labels), tuple(firsts), {"method": "text"})


@dataclass(frozen=True)
class EmbeddingClusterer:
    """Text groups merged when their sentence embeddings' cosine similarity reaches
    ``threshold``: each group joins the most similar cluster representative at or above
    it. The embedding call is checked against the budget (one call, no generated
    tokens, at most a token per byte of the answers plus two markers each) and
    recorded as a ``score`` event with the tokens the model read."""

    embedder: TextEmbedder
    threshold: float = 0.8

    def __post_init__(self) -> None:
        if not -1.0 <= self.threshold <= 1.0:
            raise ConfigError(f"embedding threshold must be in [-1, 1], got {self.threshold}")

    @property
    def name(self) -> str:
        return "embed"

    async def cluster(
        self, problem: Problem, answers: Sequence[str | None], ctx: Context
    ) -> Clustering:
        labels, firsts = _text_groups(answers)
        meta: dict[str, Any] = {
            "method": "embed",
            "model": self.embedder.name,
            "threshold": self.threshold,
            "embedded": 0,
        }
        if len(firsts) < 2:
            return Clustering(tuple(labels), tuple(firsts), meta)
        texts = [str(answers[i]) for i in firsts]
        # a tokenizer makes no token of less than one byte, plus its two markers per text
        bound = sum(len(t.encode("utf-8")) + 2 for t in texts)
        ctx.ledger.check(0, calls=1, prompt_tokens=bound)
        t0 = time.perf_counter()
        embedded = await asyncio.to_thread(self.embedder.embed, texts)
        seconds = time.perf_counter() - t0
        ctx.ledger.record(
            "score",
            Usage(prompt_tokens=embedded.tokens, calls=1),
            seconds,
            f"embed:{self.embedder.name}",
        )
        vectors = np.asarray(embedded.vectors, dtype=np.float64)
        if vectors.shape[0] != len(texts):
            raise RuntimeError(
                f"embedder {self.embedder.name} returned {vectors.shape[0]} vectors "
                f"for {len(texts)} texts"
            )
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        unit = vectors / np.where(norms == 0, 1.0, norms)
        sims = unit @ unit.T
        joins: list[int | None] = []
        leaders: list[int] = []  # groups that started a cluster
        best_sims: list[float | None] = []
        for g in range(len(firsts)):
            best = max(leaders, key=lambda h: sims[g, h], default=None)
            if best is not None and sims[g, best] >= self.threshold:
                joins.append(best)
            else:
                joins.append(None)
                leaders.append(g)
            best_sims.append(None if best is None else round(float(sims[g, best]), 4))
        merged, reps = _merge(labels, firsts, joins)
        meta["embedded"] = len(texts)
        # each text group's similarity to its closest cluster representative when it came
        meta["similarity"] = best_sims
        return Clustering(merged, reps, meta)


SAME_ANSWER_SYSTEM = (
    "You compare two answers to a question. Reply with one word: Yes if they give the "
    "same answer, even in other words, No if they give different answers."
)


def same_answer_messages(question: str, first: str, second: str) -> tuple[Message, ...]:
    return (
        Message("system", SAME_ANSWER_SYSTEM),
        Message(
            "user",
            f"Question:\n{question}\n\nAnswer A:\n{first}\n\nAnswer B:\n{second}\n\n"
            "Do answers A and B give the same answer? Answer Yes or No.",
        ),
    )


@dataclass(frozen=True)
class JudgeClusterer:
    """Text groups merged when the model, asked "do A and B give the same answer?",
    says yes: each new group is asked about against every cluster representative so
    far, in one batch, and joins the one it most surely matches (highest P(yes), or
    the first yes without logprobs). A reply that is neither yes nor no counts as no
    and is listed in the clustering's meta (``unclear``)."""

    max_answer_chars: int = 1000

    @property
    def name(self) -> str:
        return "judge"

    async def cluster(
        self, problem: Problem, answers: Sequence[str | None], ctx: Context
    ) -> Clustering:
        labels, firsts = _text_groups(answers)
        joins: list[int | None] = []
        leaders: list[int] = []
        asked = 0
        unclear: list[dict[str, Any]] = []
        for g, i in enumerate(firsts):
            if not leaders:
                joins.append(None)
                leaders.append(g)
                continue
            prompts = [
                same_answer_messages(
                    problem.question,
                    str(answers[firsts[h]])[: self.max_answer_chars],
                    str(answers[i])[: self.max_answer_chars],
                )
                for h in leaders
            ]
            verdicts = await ask_yes_no(ctx, prompts, label="judge:same")
            asked += len(prompts)
            best: int | None = None
            best_p = -1.0
            for h, v in zip(leaders, verdicts, strict=True):
                if v.yes is None:
                    unclear.append({"answer": i, "representative": firsts[h], "reply": v.reply})
                elif v.yes:
                    p = 1.0 if v.p_yes is None else v.p_yes
                    if p > best_p:
                        best, best_p = h, p
            joins.append(best)
            if best is None:
                leaders.append(g)
        merged, reps = _merge(labels, firsts, joins)
        meta: dict[str, Any] = {"method": "judge", "asked": asked, "unclear": unclear}
        return Clustering(merged, reps, meta)


def make_clusterer(
    method: str, *, threshold: float = 0.8, embed_model: str | None = None
) -> AnswerClusterer:
    """The clusterer called ``method`` (``text``, ``embed`` or ``judge``)."""
    if method == "text":
        return TextClusterer()
    if method == "embed":
        from ponder.verifiers.embedding import DEFAULT_EMBED_MODEL, load_sentence_embedder

        return EmbeddingClusterer(
            load_sentence_embedder(embed_model or DEFAULT_EMBED_MODEL), threshold
        )
    if method == "judge":
        return JudgeClusterer()
    raise ConfigError(f"unknown clustering {method!r}; choose from {', '.join(CLUSTER_METHODS)}")
