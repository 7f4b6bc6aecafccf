"""The value objects that flow between engines, strategies, verifiers and the runner."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

FinishReason = Literal["stop", "length", "confidence"]
"""Why a completion ended: ``"stop"`` (end of generation or a stop string),
``"length"`` (the token limit), ``"confidence"`` (a ``ConfidenceStop`` cut it)."""


@dataclass(frozen=True)
class Usage:
    """What a piece of work cost.

    ``prompt_tokens`` are prompt tokens the engine actually computed (prefilled);
    ``cached_tokens`` are prompt tokens it did not compute because they were shared
    with a sibling sequence or served from a prefix cache; ``completion_tokens`` are
    generated tokens. Usages add up with ``+``.
    """

    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0

    @property
    def total_tokens(self) -> int:
        """Tokens the engine processed: prefilled prompt plus generated."""
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.cached_tokens + other.cached_tokens,
            self.completion_tokens + other.completion_tokens,
            self.calls + other.calls,
        )

    def __radd__(self, other: object) -> Usage:
        # lets sum() start from 0
        if other == 0:
            return self
        if isinstance(other, Usage):
            return other + self
        return NotImplemented

    def to_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "cached_tokens": self.cached_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "calls": self.calls,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Usage:
        return cls(
            int(d.get("prompt_tokens", 0)),
            int(d.get("cached_tokens", 0)),
            int(d.get("completion_tokens", 0)),
            int(d.get("calls", 0)),
        )


@dataclass(frozen=True)
class Message:
    role: Literal["system", "user", "assistant"]
    content: str

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class Problem:
    """One question. ``answer`` is the reference answer, never shown to a strategy."""

    id: str
    question: str
    answer: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ConfidenceStop:
    """Stop a sequence mid-generation when its confidence drops: DeepConf's online
    early stop (Fu et al. 2025, "Deep Think with Confidence").

    Each generated token's confidence is ``TokenLogprob.confidence``: minus the mean
    logprob of the request's ``top_logprobs`` alternatives at that position. After
    each token, once ``window`` tokens have been generated, the sequence ends with
    ``finish_reason="confidence"`` when the mean confidence of its last ``window``
    tokens (its current group confidence) is below ``threshold``. The token that
    tipped it is kept. Stop strings are checked before, the token limit after; an
    end-of-generation token ends the sequence as usual and is never scored.
    """

    window: int
    threshold: float

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"confidence stop window must be >= 1, got {self.window}")
        if not math.isfinite(self.threshold):
            raise ValueError(f"confidence stop threshold must be finite, got {self.threshold}")

    def cut(self, confidences: Sequence[float]) -> int | None:
        """How many tokens a sequence with these token confidences keeps under this
        rule: the first ``t >= window`` whose last ``window`` confidences average below
        ``threshold``; None when no window does (the sequence runs on)."""
        total = 0.0
        for t, c in enumerate(confidences, start=1):
            total += c
            if t > self.window:
                total -= confidences[t - 1 - self.window]
            if t >= self.window and total / self.window < self.threshold:
                return t
        return None


@dataclass(frozen=True)
class GenRequest:
    """One generation request: a chat (``messages``) or a raw ``prompt``, sampled ``n`` times.

    ``seed`` makes sampling repeatable where the engine supports it; sibling
    sequences of one request get seeds ``seed, seed + 1, ...``.
    ``top_logprobs`` > 0 asks for that many alternatives per token (implies ``logprobs``).
    ``continuation`` is text the assistant has already written: the engine renders the
    chat (or takes the raw prompt), appends it, and the model goes on from there; the
    completion holds only the new text. Search and budget forcing build on it.
    ``confidence_stop`` cuts a sequence whose confidence drops (see ``ConfidenceStop``);
    it reads the ``top_logprobs`` alternatives, so it needs ``top_logprobs >= 1``, and
    engines without ``capabilities.confidence_stop`` refuse it.
    ``hidden`` asks for each completion's final hidden states (``Completion.hidden``),
    read from the decode calls that generate it; engines without
    ``capabilities.hidden_states`` refuse it.
    """

    messages: tuple[Message, ...] | None = None
    prompt: str | None = None
    n: int = 1
    max_tokens: int = 512
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    logprobs: bool = False
    top_logprobs: int = 0
    continuation: str = ""
    confidence_stop: ConfidenceStop | None = None
    hidden: bool = False

    def __post_init__(self) -> None:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("GenRequest needs exactly one of messages or prompt")
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.confidence_stop is not None and self.top_logprobs < 1:
            raise ValueError(
                "confidence_stop reads token confidence from the top alternatives; "
                "set top_logprobs >= 1"
            )

    @property
    def wants_logprobs(self) -> bool:
        return self.logprobs or self.top_logprobs > 0


@dataclass(frozen=True)
class TokenLogprob:
    """The chosen token's log-probability, with the top alternatives when asked for."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()

    @property
    def confidence(self) -> float:
        """DeepConf's token confidence: minus the mean logprob of the top alternatives
        (the chosen token's own logprob when there are none); high when the
        distribution is peaked."""
        if not self.top:
            return -self.logprob
        return -sum(lp for _, lp in self.top) / len(self.top)


@dataclass(frozen=True)
class HiddenStates:
    """The model's final hidden state (after the last norm, as ``Embedding``) over a
    scored or generated continuation: at the last scored position and averaged over all
    of them.

    The scored positions are those whose logits give a continuation token's logprob
    after the first: the rows of continuation tokens ``0 .. m - 2`` of an ``m``-token
    continuation (for a generated one, its tokens as generated, whatever ended it).
    ``last`` is the row of token ``m - 2``, the one whose logits predict the final token
    (it has read every token but the last); ``mean`` averages the ``rows`` rows. The
    first token's logprob comes from the prompt's last row, which belongs to the shared
    prompt and is not among them.
    """

    last: npt.NDArray[np.float32]
    mean: npt.NDArray[np.float32]
    rows: int


@dataclass(frozen=True)
class Completion:
    """Generated text. ``stop_sequence`` is the request's stop string that ended it
    (cut from ``text``); None when the model ended it (end of generation), the token
    limit or a confidence stop did. Engines that cannot tell which stop string matched
    set ``""``. ``finish_reason`` is ``"confidence"`` only for requests with a
    ``confidence_stop``."""

    text: str
    finish_reason: FinishReason
    usage: Usage
    logprobs: tuple[TokenLogprob, ...] | None = None
    stop_sequence: str | None = None
    hidden: HiddenStates | None = None


@dataclass(frozen=True)
class Score:
    """A verifier's judgement of one candidate: ``value`` in [0, 1] where higher is better.

    ``steps`` holds per-step scores for process verifiers.
    """

    value: float
    steps: tuple[float, ...] = ()


@dataclass(frozen=True)
class Candidate:
    """One sampled solution as a strategy saw it."""

    text: str
    answer: str | None
    usage: Usage
    score: float | None = None
    finish_reason: str = "stop"

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "answer": self.answer,
            "usage": self.usage.to_dict(),
            "score": self.score,
            "finish_reason": self.finish_reason,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Candidate:
        return cls(
            text=str(d["text"]),
            answer=d.get("answer"),
            usage=Usage.from_dict(d.get("usage", {})),
            score=d.get("score"),
            finish_reason=str(d.get("finish_reason", "stop")),
        )


GradeStatus = Literal["correct", "wrong", "error", "timeout"]
"""How grading one answer ended: ``"correct"`` or ``"wrong"`` (the grader decided),
``"error"`` (the grader failed: it raised, could not run, or was handed an answer it
does not take) or ``"timeout"`` (it did not decide in time). Only ``"correct"``
counts as right."""

GRADE_STATUSES: tuple[GradeStatus, ...] = ("correct", "wrong", "error", "timeout")


@dataclass(frozen=True)
class Grade:
    """The grade of one answer: its status and why, for a grader that failed (or a
    ``"wrong"`` that needs saying, such as no answer at all)."""

    status: GradeStatus
    reason: str = ""

    def __post_init__(self) -> None:
        if self.status not in GRADE_STATUSES:
            raise ValueError(f"grade status must be one of {GRADE_STATUSES}, got {self.status!r}")

    @property
    def correct(self) -> bool:
        return self.status == "correct"

    @property
    def failed(self) -> bool:
        """The grader did not decide: ``"error"`` or ``"timeout"``."""
        return self.status in ("error", "timeout")

    def to_dict(self) -> dict[str, str]:
        return (
            {"status": self.status, "reason": self.reason}
            if self.reason
            else {"status": self.status}
        )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Grade:
        return cls(d["status"], str(d.get("reason", "")))


@dataclass(frozen=True)
class Result:
    """What a strategy returns: the answer, how it was reached, and what it cost."""

    answer: str | None
    candidates: tuple[Candidate, ...]
    votes: Mapping[str, float]
    usage: Usage
    seconds: float
    strategy: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "votes": dict(self.votes),
            "usage": self.usage.to_dict(),
            "seconds": self.seconds,
            "strategy": self.strategy,
            "candidates": [c.to_dict() for c in self.candidates],
            "meta": dict(self.meta),
        }
