"""How a model writes tool calls in its text, and how ponder reads them back.

A chat template shows a model its tools and asks for calls in some markup; the engine
that renders the template reads the calls out of the generated text with the matching
``ToolFormat``: ``parse`` splits a text into its other content and its calls,
``render`` writes content and calls back in the format (the template of an assistant
turn that made calls), and ``forced_prefix`` is the start of an assistant turn that
commits the model to a call, for ``tool_choice`` ``"required"`` or a named function.

One format so far, ``HERMES`` (Qwen 2.5 and 3, Hermes 2 Pro, and most templates that
copied them): each call is a JSON object ``{"name": ..., "arguments": {...}}`` between
``<tool_call>`` and ``</tool_call>``. A template is matched to its format by
``format_for_template``; another format (Llama 3's bare JSON, Mistral's
``[TOOL_CALLS]``) is a new class here and a line there.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ponder.core.types import Message, ToolCall, ToolChoice

__all__ = [
    "HERMES",
    "HermesFormat",
    "ToolFormat",
    "arguments_value",
    "format_for_template",
    "template_messages",
]


class ToolFormat(Protocol):
    """The markup of one family of models' tool calls."""

    @property
    def name(self) -> str: ...

    def parse(self, text: str) -> tuple[str, tuple[ToolCall, ...]]:
        """``text`` without its calls (stripped), and the calls in order; markup that
        does not hold a well-formed call stays in the content."""
        ...

    def render(self, content: str, calls: Sequence[ToolCall]) -> str:
        """Content and calls as the model writes them; ``parse`` reads it back."""
        ...

    def forced_prefix(self, choice: ToolChoice) -> str:
        """The text an assistant turn starts with so that it is a call as ``choice``
        demands (``""`` when it demands none)."""
        ...


def arguments_value(arguments: str) -> Any:
    """A call's arguments as the JSON value they spell, or the text itself when it is
    not JSON (a model's broken arguments are kept, not dropped)."""
    try:
        return json.loads(arguments)
    except json.JSONDecodeError:
        return arguments


_HERMES_BLOCK = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|\Z)", re.DOTALL)


class HermesFormat:
    """``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``, one block per call.

    A block the model left open at the end of its text (cut by the token limit, or
    ended by its end-of-turn token) counts when its JSON is whole. ``"parameters"`` is
    read for ``"arguments"`` (some fine-tunes write it); arguments written as a JSON
    string are kept as that string.

    A text that is nothing but such objects, without the tags (perhaps in a code
    fence), is calls too: qwen2.5-coder-1.5b answers so, copying its GGUF template,
    whose example call is written ``{{"name": ..., "arguments": ...}}`` without
    tags (the doubled braces are read as single ones)."""

    name = "hermes"

    def parse(self, text: str) -> tuple[str, tuple[ToolCall, ...]]:
        calls: list[ToolCall] = []
        kept: list[str] = []
        end = 0
        for match in _HERMES_BLOCK.finditer(text):
            call = _hermes_call(match.group(1))
            if call is None:
                continue
            kept.append(text[end : match.start()])
            end = match.end()
            calls.append(call)
        kept.append(text[end:])
        if not calls:
            bare = _bare_calls(text)
            return ("", bare) if bare else (text.strip(), ())
        return "".join(kept).strip(), tuple(calls)

    def render(self, content: str, calls: Sequence[ToolCall]) -> str:
        parts = [content] if content else []
        for call in calls:
            body = {"name": call.name, "arguments": arguments_value(call.arguments)}
            parts.append(f"<tool_call>\n{json.dumps(body, ensure_ascii=False)}\n</tool_call>")
        return "\n".join(parts)

    def forced_prefix(self, choice: ToolChoice) -> str:
        if choice.mode == "required":
            return "<tool_call>\n"
        if choice.mode == "function":
            return f'<tool_call>\n{{"name": {json.dumps(choice.name)}, "arguments": '
        return ""


_FENCE = re.compile(r"^```[a-z]*\s*(.*?)\s*```$", re.DOTALL)


def _bare_calls(text: str) -> tuple[ToolCall, ...]:
    """The calls of a text that is only call objects (see ``HermesFormat``); none
    when anything else is in it."""
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1)
    if body.startswith("{{") and body.endswith("}}"):
        body = body[1:-1]
    decoder = json.JSONDecoder()
    calls: list[ToolCall] = []
    at = 0
    while at < len(body):
        try:
            value, at = decoder.raw_decode(body, at)
        except json.JSONDecodeError:
            return ()
        call = _call_object(value, bare=True)
        if call is None:
            return ()
        calls.append(call)
        while at < len(body) and body[at] in " \t\r\n,":
            at += 1
    return tuple(calls)


def _hermes_call(body: str) -> ToolCall | None:
    if body.startswith("{{"):
        body = body[1:]
    try:
        value, _ = json.JSONDecoder().raw_decode(body)
    except json.JSONDecodeError:
        return None
    return _call_object(value, bare=False)


def _call_object(value: Any, *, bare: bool) -> ToolCall | None:
    """A ``{"name": ..., "arguments": ...}`` object as a call; None when it is not one
    (outside the tags an object is a call only when it has arguments, so that an answer
    such as ``{"name": "Ada"}`` stays an answer)."""
    if not isinstance(value, Mapping):
        return None
    if bare and not ("arguments" in value or "parameters" in value):
        return None
    name = value.get("name")
    if not isinstance(name, str) or not name:
        return None
    arguments = value.get("arguments", value.get("parameters", {}))
    if isinstance(arguments, str):
        return ToolCall(name, arguments)
    return ToolCall(name, json.dumps(arguments, ensure_ascii=False))


HERMES = HermesFormat()

_FORMATS: tuple[tuple[str, ToolFormat], ...] = (("<tool_call>", HERMES),)


def format_for_template(template: str) -> ToolFormat | None:
    """The tool-call format a chat template asks its model for (by the markup it
    names), or None when it names none that ponder reads."""
    for marker, found in _FORMATS:
        if marker in template:
            return found
    return None


def template_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Messages as chat templates take them: as the OpenAI API writes them, except
    that a call's arguments are the JSON value, not its text (templates, Qwen's among
    them, write ``arguments | tojson``)."""
    out = []
    for m in messages:
        d = m.to_dict()
        if m.tool_calls:
            d["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": arguments_value(c.arguments)},
                }
                for c in m.tool_calls
            ]
        out.append(d)
    return out
