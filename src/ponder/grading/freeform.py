"""Grading free-form answers: the normal form two short answers are compared in, and a
yes/no judge asked through the compute gate (its verdict from the first token's
logprobs when the engine gives them, else from the reply's word).

Used by the free-form task's grader and by semantic clustering
(``ponder.verifiers.equivalence``).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ponder.core.types import Completion, GenRequest, Message, TokenLogprob

if TYPE_CHECKING:
    from ponder.core.context import Context

__all__ = ["Verdict", "ask_yes_no", "normalize_answer", "p_yes", "read_verdict"]

_ARTICLES_RE = re.compile(r"\b(?:a|an|the)\b")
_DIGIT_GROUP_RE = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_DECIMAL_POINT = "\x00"  # stands in for a decimal point while punctuation is removed
_DECIMAL_RE = re.compile(r"(?<=\d)\.(?=\d)")
_SPLITTERS_RE = re.compile(r"[-‐‑‒–—―/_]")
_SPACE_RE = re.compile(r"\s+")


def normalize_answer(text: str) -> str:
    """``text`` as answers are compared: lower case, accents and punctuation removed
    (a decimal point between digits and digit-group commas are kept apart: ``3.5`` stays
    ``3.5``, ``1,000`` becomes ``1000``), dashes and slashes read as spaces, the
    articles a/an/the dropped, spacing collapsed. ``"The  Eiffel-Tower."`` ->
    ``"eiffel tower"``. An answer that is nothing but an article (a multiple-choice
    ``"A"``) keeps it."""
    s = unicodedata.normalize("NFKD", text.casefold())
    s = "".join(ch for ch in s if not unicodedata.combining(ch))
    s = _DIGIT_GROUP_RE.sub("", s)
    s = _DECIMAL_RE.sub(_DECIMAL_POINT, s)
    s = _SPLITTERS_RE.sub(" ", s)
    s = "".join(ch for ch in s if not unicodedata.category(ch).startswith(("P", "S")))
    s = s.replace(_DECIMAL_POINT, ".")
    words = _SPACE_RE.sub(" ", s).strip()
    without_articles = _SPACE_RE.sub(" ", _ARTICLES_RE.sub(" ", words)).strip()
    return without_articles or words


def p_yes(first: TokenLogprob) -> float:
    """P(yes) normalised over yes and no, from one token's alternatives."""
    mass = {"yes": 0.0, "no": 0.0}
    seen: set[str] = set()
    for tok, lp in ((first.token, first.logprob), *first.top):
        word = tok.strip().lower()
        if word in mass and tok not in seen:
            seen.add(tok)
            mass[word] += math.exp(lp)
    total = mass["yes"] + mass["no"]
    return 0.5 if total == 0 else mass["yes"] / total


@dataclass(frozen=True)
class Verdict:
    """A yes/no reply: ``yes`` None when it was neither; ``p_yes`` from the first
    token's alternatives when the engine gave logprobs and they spelled yes or no."""

    yes: bool | None
    p_yes: float | None
    reply: str


_YES = {"yes", "y", "true", "same"}
_NO = {"no", "n", "false", "different"}


def read_verdict(completion: Completion) -> Verdict:
    """The verdict in a one-word reply: from logprobs when informative, else the text."""
    reply = completion.text.strip()
    if completion.logprobs:
        first = completion.logprobs[0]
        words = {t.strip().lower() for t, _ in ((first.token, 0.0), *first.top)}
        if words & {"yes", "no"}:
            p = p_yes(first)
            return Verdict(p > 0.5, p, reply)
    word = re.sub(r"[^a-z]", "", reply.split()[0].lower()) if reply.split() else ""
    if word in _YES:
        return Verdict(True, None, reply)
    if word in _NO:
        return Verdict(False, None, reply)
    return Verdict(None, None, reply)


async def ask_yes_no(
    ctx: Context, prompts: Sequence[Sequence[Message]], *, label: str
) -> list[Verdict]:
    """Ask the engine each prompt at temperature 0 for a one-word answer, in one batch
    recorded as a ``score`` event; logprobs are used when the engine has them."""
    if not prompts:
        return []
    caps = ctx.engine.capabilities
    top = min(10, caps.top_logprobs) if caps.logprobs else 0
    requests = [
        GenRequest(
            messages=tuple(p),
            max_tokens=1 if caps.logprobs else 4,
            temperature=0.0,
            logprobs=caps.logprobs,
            top_logprobs=top,
        )
        for p in prompts
    ]
    outs = await ctx.generate(requests, kind="score", label=label)
    return [read_verdict(out[0]) for out in outs]
