"""Tool calls through ``ponder serve``.

A chat request with ``tools`` (and ``tool_choice``, ``parallel_tool_calls``) runs its
strategy as any other: ``ToolEngine`` wraps the engine for the request, shows the
tools with every sample of the client's own chat (a judge's or a verifier's calls go
without them), and writes each sample's calls (``Completion.tool_calls``, read by the
engine in its model's format, or returned by the upstream server) into its text in
one canonical form, the Hermes markup
(``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``, ``tool_format.HERMES``).
Every strategy then sees calls as text, and the chat task votes on them by
``call_key``: the same functions with the same arguments, parsed as JSON and their
keys sorted, are the same answer, however a sample spaced or ordered them.

Text against calls (``settle``), the rule the ``ponder.tools`` field states: the
kind most samples took wins (tool calls or text; a tie keeps the strategy's choice);
within it the strategy's own choice stands when it is of that kind, and otherwise the
answer of that kind with the most votes (then the most samples) is chosen.
``tool_choice`` ``"required"`` or a named function takes calls whenever any sample made
one (a sample whose markup did not parse is text), and ``"none"`` always takes text.
The reply carries the chosen sample's calls as ``message.tool_calls`` (fresh ids,
``type: "function"``, arguments as a JSON string) with ``finish_reason:
"tool_calls"``, and its other text as ``content`` (null when there is none).

Conversations go on: an assistant message may carry ``tool_calls`` (its content null),
and a ``tool`` message answers one by its ``tool_call_id``; both reach the model's
template (or the upstream server) as the OpenAI API writes them. Anything malformed is
a ``ToolRequestError`` (HTTP 400).
"""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ponder.core.engine import Capabilities, Embedder, Embedding, Engine, prompt_token_bound
from ponder.core.errors import CapabilityMissing
from ponder.core.types import (
    Completion,
    GenRequest,
    Message,
    Result,
    Role,
    Tool,
    ToolCall,
    ToolChoice,
)
from ponder.engines.tool_format import HERMES, arguments_value

__all__ = [
    "RULE",
    "ToolEngine",
    "ToolRequest",
    "ToolRequestError",
    "call_key",
    "message_tool_fields",
    "read_tools",
    "settle",
    "tool_reply",
]

RULE = (
    "kinds first: the kind most samples took (tool calls or text; a tie keeps the "
    "strategy's choice; tool_choice 'required' or a named function takes tool calls "
    "whenever a sample made one, 'none' takes text), then the strategy's choice if it is "
    "of that kind, else that kind's answer with the most votes"
)
"""The selection rule between text and tool calls, as the ``ponder.tools`` field says it."""

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class ToolRequestError(ValueError):
    """A request's tools, tool choice or tool messages are malformed."""


@dataclass(frozen=True)
class ToolRequest:
    """What a request says about tools: the tools, the choice, and whether a reply may
    make several calls at once (``parallel_tool_calls``)."""

    tools: tuple[Tool, ...]
    choice: ToolChoice = field(default_factory=ToolChoice)
    parallel: bool = True


def _tool(raw: Any, where: str) -> Tool:
    if not isinstance(raw, Mapping) or raw.get("type", "function") != "function":
        raise ToolRequestError(f"{where} must be an object with type 'function'")
    function = raw.get("function")
    if not isinstance(function, Mapping):
        raise ToolRequestError(f"{where} needs a 'function' object")
    name = function.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ToolRequestError(
            f"{where}.function.name must be 1 to 64 letters, digits, '_' or '-', got {name!r}"
        )
    description = function.get("description", "")
    if not isinstance(description, str):
        raise ToolRequestError(f"{where}.function.description must be a string")
    parameters = function.get("parameters")
    if parameters is not None and not isinstance(parameters, Mapping):
        raise ToolRequestError(f"{where}.function.parameters must be a JSON Schema object")
    strict = function.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise ToolRequestError(f"{where}.function.strict must be true or false")
    schema = "" if parameters is None else json.dumps(parameters, ensure_ascii=False)
    return Tool(name, description, schema, strict)


def _choice(raw: Any, names: set[str]) -> ToolChoice:
    if raw is None or raw == "auto":
        return ToolChoice()
    if raw in ("none", "required"):
        return ToolChoice(raw)
    if isinstance(raw, Mapping) and raw.get("type") == "function":
        function = raw.get("function")
        name = function.get("name") if isinstance(function, Mapping) else None
        if isinstance(name, str) and name:
            if name not in names:
                raise ToolRequestError(f"tool_choice names {name!r}, which is not among the tools")
            return ToolChoice("function", name)
    raise ToolRequestError(
        "tool_choice must be 'auto', 'none', 'required' or "
        f'{{"type": "function", "function": {{"name": ...}}}}, got {raw!r}'
    )


def read_tools(body: Mapping[str, Any]) -> ToolRequest | None:
    """The request's tools, choice and parallel flag; None when it has no tools."""
    if body.get("functions") is not None or body.get("function_call") is not None:
        raise ToolRequestError(
            "the legacy 'functions' and 'function_call' fields are not supported; "
            "send 'tools' and 'tool_choice'"
        )
    raw = body.get("tools")
    parallel = body.get("parallel_tool_calls", True)
    if parallel is None:
        parallel = True
    if not isinstance(parallel, bool):
        raise ToolRequestError(f"parallel_tool_calls must be true or false, got {parallel!r}")
    if raw is None:
        if body.get("tool_choice") not in (None, "none", "auto"):
            raise ToolRequestError("tool_choice needs 'tools'")
        return None
    if not isinstance(raw, list) or not raw:
        raise ToolRequestError("'tools' must be a non-empty list of function tools")
    tools = tuple(_tool(t, f"tools[{i}]") for i, t in enumerate(raw))
    names = [t.name for t in tools]
    repeated = sorted(n for n, k in Counter(names).items() if k > 1)
    if repeated:
        raise ToolRequestError(f"tools: each name once, but {', '.join(repeated)} repeats")
    return ToolRequest(tools, _choice(body.get("tool_choice"), set(names)), parallel)


def message_tool_fields(message: Mapping[str, Any], role: Role) -> tuple[tuple[ToolCall, ...], str]:
    """An OpenAI message's ``tool_calls`` (an assistant's) and ``tool_call_id`` (a
    ``tool`` message's, which must have one)."""
    raw = message.get("tool_calls")
    calls: tuple[ToolCall, ...] = ()
    if raw is not None:
        if role != "assistant":
            raise ToolRequestError("only an assistant message carries 'tool_calls'")
        if not isinstance(raw, list):
            raise ToolRequestError("'tool_calls' must be a list")
        try:
            calls = tuple(ToolCall.from_dict(c if isinstance(c, Mapping) else {}) for c in raw)
        except ValueError as e:
            raise ToolRequestError(str(e)) from e
    ident = message.get("tool_call_id")
    if role == "tool":
        if not isinstance(ident, str) or not ident:
            raise ToolRequestError("a tool message needs the 'tool_call_id' it answers")
        return calls, ident
    if ident is not None:
        raise ToolRequestError("only a tool message carries 'tool_call_id'")
    return calls, ""


def call_key(text: str) -> str | None:
    """The vote of a text that makes tool calls: each call as ``name(arguments)``, the
    arguments as canonical JSON (parsed, keys sorted); None for a text without calls."""
    _, calls = HERMES.parse(text)
    if not calls:
        return None
    return "tool_calls: " + "; ".join(
        f"{c.name}({json.dumps(arguments_value(c.arguments), sort_keys=True, ensure_ascii=False)})"
        for c in calls
    )


class ToolEngine:
    """``inner`` with the request's tools shown on the samples of its own chat, and
    their calls written into their texts (see the module docstring)."""

    def __init__(self, inner: Engine, prompt: tuple[Message, ...], request: ToolRequest) -> None:
        self._inner = inner
        self._prompt = prompt
        self._request = request

    @property
    def name(self) -> str:
        return self._inner.name

    @property
    def capabilities(self) -> Capabilities:
        return self._inner.capabilities

    def _shown(self, request: GenRequest) -> GenRequest:
        if request.messages != self._prompt:
            return request
        return dataclasses.replace(
            request, tools=self._request.tools, tool_choice=self._request.choice
        )

    def prompt_tokens(self, request: GenRequest) -> int:
        return prompt_token_bound(self._inner, self._shown(request))

    async def generate(self, requests: Sequence[GenRequest]) -> list[list[Completion]]:
        if not self._inner.capabilities.tools:
            raise CapabilityMissing(
                f"engine {self._inner.name} cannot show a model tools (for a GGUF model: "
                "its chat template shows none in a format ponder reads)"
            )
        shown = [self._shown(r) for r in requests]
        out = await self._inner.generate(shown)
        return [
            [self._as_text(c) for c in comps] if r.tools else comps
            for r, comps in zip(shown, out, strict=True)
        ]

    def _as_text(self, completion: Completion) -> Completion:
        calls = completion.tool_calls
        if not self._request.parallel:
            calls = calls[:1]
        if not calls:
            return completion
        text = HERMES.render(completion.text, calls)
        return dataclasses.replace(completion, text=text, tool_calls=calls)

    async def embed(self, requests: Sequence[GenRequest]) -> list[Embedding]:
        if not isinstance(self._inner, Embedder):
            raise CapabilityMissing(f"engine {self._inner.name} does not embed")
        return await self._inner.embed(requests)

    async def aclose(self) -> None:
        return None  # the server owns the inner engine


def _winner_index(result: Result) -> int:
    for i, c in enumerate(result.candidates):
        if result.answer is not None and c.answer == result.answer:
            return i
    return 0


def settle(result: Result, request: ToolRequest) -> Result:
    """``result`` with its answer chosen between text and tool calls by ``RULE``, and
    the decision in ``meta["tools"]`` (for the ``ponder`` field and ``tool_reply``)."""
    calls = [bool(HERMES.parse(c.text)[1]) for c in result.candidates]
    made = sum(calls)
    samples = {"tool_calls": made, "text": len(calls) - made}
    mine = _winner_index(result) if calls else -1
    strategy_kind = "tool_calls" if calls and calls[mine] else "text"
    mode = request.choice.mode
    if mode == "none":
        kind = "text"
    elif mode in ("required", "function"):
        kind = "tool_calls" if made else "text"
    elif samples["tool_calls"] != samples["text"]:
        kind = max(samples, key=lambda k: samples[k])
    else:
        kind = strategy_kind
    answer = result.answer
    if kind != strategy_kind and samples[kind]:
        want = kind == "tool_calls"
        counts = Counter(c.answer for c, call in zip(result.candidates, calls, strict=True)
                         if call == want)  # fmt: skip
        # max keeps the first of equals, and Counter keeps the candidates' order
        answer = max(counts, key=lambda a: (result.votes.get(a, 0.0) if a else 0.0, counts[a]))
    decision = {
        "rule": RULE,
        "samples": samples,
        "kind": kind,
        "overruled": kind != strategy_kind,
        "tool_choice": request.choice.to_wire(),
        "parallel_tool_calls": request.parallel,
    }
    return dataclasses.replace(result, answer=answer, meta={**result.meta, "tools": decision})


def tool_reply(result: Result, text: str) -> tuple[str | None, list[dict[str, Any]]]:
    """The reply message's content and its ``tool_calls`` (with fresh ids) for the
    chosen sample's ``text``: the text itself and no calls unless ``settle`` chose
    calls; content None when calls are all there is."""
    decision = result.meta.get("tools")
    if not isinstance(decision, Mapping) or decision.get("kind") != "tool_calls":
        return text, []
    content, calls = HERMES.parse(text)
    if not decision.get("parallel_tool_calls", True):
        calls = calls[:1]
    if not calls:
        return text, []
    out = [dataclasses.replace(c, id=f"call_{uuid.uuid4().hex[:24]}").to_dict() for c in calls]
    return content or None, out
