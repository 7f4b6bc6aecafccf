"""Overthinking: the tokens a run generated after its answer was already there.

For each recorded candidate with an answer, two points in its chain of thought:

- *settled*: the earliest point after which the answer read from the text so far is
  the candidate's final answer at every later point;
- *first*: the earliest point at which the answer read from the text so far is the
  final answer, even if the text then moves off it and comes back.

Tokens after the settled point are overthinking for certain (the answer no longer
changed); tokens after the first point are an upper bound (they include checking that
went elsewhere and returned, and a final answer that is a number already written, say
restated from the question).

Two ways to find the points:

- *probe* (candidates of a ``probe_exit`` run, from its recorded probes): the model was
  asked for its answer every ``chunk`` tokens; a point is the generated tokens at a
  probe, exact in tokens, at probe resolution;
- *parse* (every other chain): the text is cut after each line and each sentence (a
  ``.``, ``!`` or ``?`` followed by white space) and the task's extractor reads each
  prefix. At most ``MAX_CUTS`` cuts per text are read (line ends only past that, then
  evenly spaced ones), which bounds the cost. Tokens after a cut are the candidate's
  generated tokens (from its recorded usage) apportioned by characters, unless a
  ``count_tokens`` function (a tokenizer) is given. A chain whose prefixes never give
  its final answer (an answer stated only in a form the extractor reads from the whole
  text, or a program's output) is counted as *not found* and adds no tokens after.

Runs of ``pal`` are skipped: their candidates are programs, whose answer is what they
print, not a point in a text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ponder.core.types import Candidate
from ponder.runs.store import Record

__all__ = [
    "MAX_CUTS",
    "NOT_CHAINS",
    "CandidateOverthinking",
    "ProblemOverthinking",
    "RunOverthinking",
    "answer_points",
    "overthinking",
    "text_cuts",
]

MAX_CUTS = 200
"""Most prefixes of one text read by the extractor (see the module doc)."""

NOT_CHAINS = frozenset({"pal"})
"""Strategies whose candidates are not chains of thought, skipped."""

Method = Literal["probe", "parse"]
_SENTENCE_END_RE = re.compile(r"[.!?](?=\s)")


def text_cuts(text: str, max_cuts: int = MAX_CUTS) -> list[int]:
    """Where ``text`` may be cut: after each line break and each sentence end (``.``,
    ``!``, ``?`` before white space), and at its end; at most ``max_cuts`` of them
    (line ends only when there are more, then evenly spaced ones), in order."""
    lines = {i + 1 for i, ch in enumerate(text) if ch == "\n"}
    sentences = {m.end() for m in _SENTENCE_END_RE.finditer(text)}
    cuts = sorted((lines | sentences | {len(text)}) - {0})
    if len(cuts) > max_cuts:
        cuts = sorted((lines | {len(text)}) - {0})
    if len(cuts) > max_cuts:
        step = len(cuts) / max_cuts
        cuts = sorted({cuts[int(k * step)] for k in range(max_cuts - 1)} | {len(text)})
    return cuts


def answer_points(answers: Sequence[str | None], final: str) -> tuple[int | None, int | None]:
    """Given the answers read at successive points, the index of the first point whose
    answer is ``final`` and of the point from which every answer is ``final``."""
    first = next((i for i, a in enumerate(answers) if a == final), None)
    settled = None
    for i in range(len(answers) - 1, -1, -1):
        if answers[i] != final:
            break
        settled = i
    return first, settled


@dataclass(frozen=True)
class CandidateOverthinking:
    """One candidate: its generated ``tokens`` and how many came after its final answer
    had settled (``after_settled``) and after it first appeared (``after_first``);
    ``found`` is False when no point gave the final answer (both are then 0)."""

    tokens: int
    after_settled: int
    after_first: int
    found: bool
    method: Method


def _probe_points(
    cand: Candidate, probes: Sequence[dict[str, Any]], chain_tokens: int
) -> CandidateOverthinking | None:
    assert cand.answer is not None
    first, settled = answer_points([p.get("answer") for p in probes], cand.answer)
    if first is None or settled is None:
        return None
    return CandidateOverthinking(
        tokens=chain_tokens,
        after_settled=chain_tokens - int(probes[settled]["tokens"]),
        after_first=chain_tokens - int(probes[first]["tokens"]),
        found=True,
        method="probe",
    )


def _parse_points(
    cand: Candidate,
    tokens: int,
    extract: Callable[[str], str | None],
    count_tokens: Callable[[str], int] | None,
    max_cuts: int,
) -> CandidateOverthinking:
    assert cand.answer is not None
    text = cand.text
    cuts = text_cuts(text, max_cuts)
    first, settled = answer_points([extract(text[:c]) for c in cuts], cand.answer)
    if first is None or settled is None:
        return CandidateOverthinking(tokens, 0, 0, False, "parse")

    def after(cut: int) -> int:
        rest = text[cut:]
        if count_tokens is not None:
            return min(tokens, count_tokens(rest)) if rest.strip() else 0
        return round(tokens * len(rest) / len(text)) if text else 0

    return CandidateOverthinking(tokens, after(cuts[settled]), after(cuts[first]), True, "parse")


@dataclass(frozen=True)
class ProblemOverthinking:
    """The candidates of one problem added up (only those with an answer count)."""

    problem_id: str
    correct: bool
    candidates: int
    found: int
    tokens: int
    after_settled: int
    after_first: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "problem_id": self.problem_id,
            "correct": self.correct,
            "candidates": self.candidates,
            "found": self.found,
            "tokens": self.tokens,
            "after_settled": self.after_settled,
            "after_first": self.after_first,
        }


@dataclass(frozen=True)
class RunOverthinking:
    """A run's overthinking per problem and in total. ``tokens`` are the generated
    tokens of the candidates analysed; ``by_method`` counts candidates per method;
    ``token_count`` is ``"characters"`` (apportioned) or ``"tokenizer"``."""

    problems: tuple[ProblemOverthinking, ...]
    by_method: dict[str, int]
    token_count: str

    @property
    def candidates(self) -> int:
        return sum(p.candidates for p in self.problems)

    @property
    def found(self) -> int:
        return sum(p.found for p in self.problems)

    @property
    def tokens(self) -> int:
        return sum(p.tokens for p in self.problems)

    @property
    def after_settled(self) -> int:
        return sum(p.after_settled for p in self.problems)

    @property
    def after_first(self) -> int:
        return sum(p.after_first for p in self.problems)

    def share(self, tokens_after: int) -> float:
        return tokens_after / self.tokens if self.tokens else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "candidates": self.candidates,
            "found": self.found,
            "tokens": self.tokens,
            "after_settled": self.after_settled,
            "after_first": self.after_first,
            "by_method": dict(self.by_method),
            "token_count": self.token_count,
            "problems": [p.to_dict() for p in self.problems],
        }


def candidate_overthinking(
    cand: Candidate,
    meta: dict[str, Any],
    extract: Callable[[str], str | None],
    *,
    count_tokens: Callable[[str], int] | None = None,
    max_cuts: int = MAX_CUTS,
) -> CandidateOverthinking:
    """One candidate with an answer: from the record's probes (``meta["probes"]`` of a
    ``probe_exit`` run) when one gave its answer, else by parsing its text. Its tokens
    are its generated tokens, for a ``probe_exit`` chain those of the chain alone."""
    probes = meta.get("probes")
    if "chain_tokens" in meta:
        chain_tokens = int(meta["chain_tokens"])
        if isinstance(probes, list) and probes:
            found = _probe_points(cand, probes, chain_tokens)
            if found is not None:
                return found
        return _parse_points(cand, chain_tokens, extract, count_tokens, max_cuts)
    return _parse_points(cand, cand.usage.completion_tokens, extract, count_tokens, max_cuts)


def overthinking(
    records: Sequence[Record],
    extract: Callable[[str], str | None],
    *,
    count_tokens: Callable[[str], int] | None = None,
    max_cuts: int = MAX_CUTS,
) -> RunOverthinking:
    """Overthinking of every finished record's candidates that have an answer; see the
    module doc. ``extract`` is the run's task's extractor."""
    rows: list[ProblemOverthinking] = []
    methods: dict[str, int] = {}
    for r in records:
        if not r.ok:
            continue
        per = [
            candidate_overthinking(
                c, dict(r.meta), extract, count_tokens=count_tokens, max_cuts=max_cuts
            )
            for c in r.candidates
            if c.answer is not None
        ]
        for c in per:
            methods[c.method] = methods.get(c.method, 0) + 1
        rows.append(
            ProblemOverthinking(
                problem_id=r.problem_id,
                correct=r.correct,
                candidates=len(per),
                found=sum(c.found for c in per),
                tokens=sum(c.tokens for c in per),
                after_settled=sum(c.after_settled for c in per),
                after_first=sum(c.after_first for c in per),
            )
        )
    return RunOverthinking(
        tuple(rows), dict(sorted(methods.items())), "tokenizer" if count_tokens else "characters"
    )
