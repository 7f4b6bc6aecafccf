"""The value objects that flow between engines, strategies, verifiers and the runner."""

from __future__ import annotations

import json
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


Role = Literal["system", "user", "assistant", "tool"]
"""Who says a message: ``"tool"`` is a function's result, sent back after the
assistant called it."""


@dataclass(frozen=True)
class ToolCall:
    """A function call the model made: the function's ``name`` and its ``arguments``
    as JSON text (as the OpenAI API carries them, so that arguments a model wrote as
    broken JSON survive unchanged). ``id`` is what the ``tool`` message answering it
    quotes as its ``tool_call_id``; empty until someone gives it one."""

    name: str
    arguments: str = "{}"
    id: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The call as the OpenAI API writes one."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ToolCall:
        """A call as the OpenAI API writes one (``function.arguments`` a JSON string,
        or an object, as chat templates write them); ValueError when it is not one."""
        function = d.get("function")
        if not isinstance(function, Mapping):
            raise ValueError("a tool call needs a 'function' object")
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError("a tool call's function needs a non-empty 'name'")
        arguments = function.get("arguments", "{}")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments, ensure_ascii=False)
        ident = d.get("id") or ""
        if not isinstance(ident, str):
            raise ValueError("a tool call's 'id' must be a string")
        return cls(name, arguments, ident)


@dataclass(frozen=True)
class Tool:
    """A function the model may call: its name, what it does, and its parameters'
    JSON Schema as JSON text (text keeps requests hashable). ``strict`` is OpenAI's
    structured-outputs flag, passed on to servers that take it (None: not sent)."""

    name: str
    description: str = ""
    parameters: str = ""
    strict: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        """The tool as the OpenAI API (and the chat templates that render tools) write one."""
        function: dict[str, Any] = {"name": self.name}
        if self.description:
            function["description"] = self.description
        if self.parameters:
            function["parameters"] = json.loads(self.parameters)
        if self.strict is not None:
            function["strict"] = self.strict
        return {"type": "function", "function": function}


ToolChoiceMode = Literal["auto", "none", "required", "function"]


@dataclass(frozen=True)
class ToolChoice:
    """Whether the model may or must call a tool: ``"auto"`` (it decides), ``"none"``
    (it answers in text; the tools are not shown to it), ``"required"`` (it calls at
    least one), ``"function"`` (it calls the tool named ``name``)."""

    mode: ToolChoiceMode = "auto"
    name: str = ""

    def __post_init__(self) -> None:
        if self.mode not in ("auto", "none", "required", "function"):
            raise ValueError(
                f"tool choice must be auto, none, required or function, not {self.mode!r}"
            )
        if (self.mode == "function") != bool(self.name):
            raise ValueError("a tool choice names a function exactly when its mode is 'function'")

    def to_wire(self) -> str | dict[str, Any]:
        """The choice as the OpenAI API's ``tool_choice`` writes it."""
        if self.mode == "function":
            return {"type": "function", "function": {"name": self.name}}
        return self.mode


@dataclass(frozen=True)
class Message:
    """One turn of a chat. An assistant turn may carry ``tool_calls`` (its content
    then often empty); a ``"tool"`` turn is a function's result, ``tool_call_id``
    naming the call it answers."""

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The turn as the OpenAI API writes it (tool fields only when set, so a plain
        turn's dict, and whatever is hashed from it, is as it always was)."""
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [c.to_dict() for c in self.tool_calls]
        if self.tool_call_id:
            out["tool_call_id"] = self.tool_call_id
        return out


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
    ``tools`` are functions the model may call (rendered by the model's chat template
    or passed to the server), ``tool_choice`` whether it may or must; the calls come
    back as ``Completion.tool_calls``.
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
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice = ToolChoice()

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
        if self.tools and self.messages is None:
            raise ValueError("tools go with a chat (messages), not a raw prompt")
        if self.tool_choice.mode in ("required", "function") and not self.tools:
            raise ValueError(f"tool_choice {self.tool_choice.mode!r} needs tools")
        if self.tool_choice.mode == "function" and self.tool_choice.name not in {
            t.name for t in self.tools
        }:
            raise ValueError(f"tool_choice names {self.tool_choice.name!r}, which is not a tool")

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
    ``confidence_stop``. ``tool_calls`` are the function calls the model made (for a
    request with ``tools``), taken out of ``text``, which keeps any other content."""

    text: str
    finish_reason: FinishReason
    usage: Usage
    logprobs: tuple[TokenLogprob, ...] | None = None
    stop_sequence: str | None = None
    hidden: HiddenStates | None = None
    tool_calls: tuple[ToolCall, ...] = ()


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
