"""Reading tool calls out of a model's text (Hermes markup), writing them back, and the
tool value objects of core.types."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ponder.core.engine import text_token_bound
from ponder.core.types import GenRequest, Message, Tool, ToolCall, ToolChoice
from ponder.engines.tool_format import (
    HERMES,
    arguments_value,
    format_for_template,
    template_messages,
)

QWEN_CALL = (
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "C"}}\n'
    "</tool_call>"
)


def test_hermes_reads_calls_and_keeps_the_rest() -> None:
    content, calls = HERMES.parse(
        f"Let me look.\n{QWEN_CALL}\n{QWEN_CALL.replace('Paris', 'Rome')}"
    )
    assert content == "Let me look."
    assert [c.name for c in calls] == ["get_weather", "get_weather"]
    assert json.loads(calls[1].arguments) == {"city": "Rome", "unit": "C"}
    assert calls[0].id == ""


def test_hermes_leaves_what_is_not_a_call_in_the_text() -> None:
    # broken JSON, no name, plain text: no calls, text unchanged (but stripped)
    for text in ("<tool_call>{not json</tool_call>", '<tool_call>{"arguments": {}}</tool_call>',
                 "  The answer is 4.  "):  # fmt: skip
        content, calls = HERMES.parse(text)
        assert calls == () and content == text.strip()
    # one good call beside a broken one: the broken one stays as text
    content, calls = HERMES.parse("<tool_call>{oops</tool_call>" + QWEN_CALL)
    assert len(calls) == 1 and content == "<tool_call>{oops</tool_call>"


def test_hermes_reads_an_unclosed_block_parameters_and_string_arguments() -> None:
    _, calls = HERMES.parse('<tool_call>\n{"name": "f", "parameters": {"x": 1}}')
    assert calls == (ToolCall("f", '{"x": 1}'),)
    _, calls = HERMES.parse('<tool_call>{"name": "f", "arguments": "{\\"x\\": 1}"}</tool_call>')
    assert calls == (ToolCall("f", '{"x": 1}'),)
    # trailing junk after the object (a doubled brace, as small models write)
    _, calls = HERMES.parse('<tool_call>{"name": "f", "arguments": {}}}</tool_call>')
    assert calls == (ToolCall("f", "{}"),)


def test_a_text_that_is_only_call_objects_is_calls() -> None:
    # qwen2.5-coder-1.5b copies its template's example: doubled braces, no tags
    doubled = '{{"name": "get_weather", "arguments": {"city": "Paris"}}}'
    assert HERMES.parse(doubled) == ("", (ToolCall("get_weather", '{"city": "Paris"}'),))
    fenced = '```json\n{"name": "f", "arguments": {}}\n{"name": "g", "arguments": {"a": 1}}\n```'
    assert [c.name for c in HERMES.parse(fenced)[1]] == ["f", "g"]
    tagged = '<tool_call>\n{{"name": "f", "arguments": {}}}\n</tool_call>'
    assert HERMES.parse(tagged)[1] == (ToolCall("f", "{}"),)
    # an answer that is JSON but no call, or a call with more text, stays text
    for text in ('{"name": "Ada"}', '{"name": "f", "arguments": {}} and more', "{}", "[1, 2]"):
        assert HERMES.parse(text) == (text, ())


names = st.from_regex(r"[a-z_]{1,12}", fullmatch=True)
values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


@given(
    content=st.text(max_size=30).filter(lambda t: "<tool_call>" not in t),
    calls=st.lists(
        st.tuples(names, st.dictionaries(st.text(max_size=6), values, max_size=3)), max_size=3
    ),
)
def test_render_then_parse_gives_back_content_and_calls(
    content: str, calls: list[tuple[str, dict[str, object]]]
) -> None:
    made = [ToolCall(name, json.dumps(args)) for name, args in calls]
    back_content, back = HERMES.parse(HERMES.render(content, made))
    assert [(c.name, json.loads(c.arguments)) for c in back] == calls
    assert back_content == content.strip()


def test_forced_prefixes_and_template_detection() -> None:
    assert HERMES.forced_prefix(ToolChoice()) == ""
    assert HERMES.forced_prefix(ToolChoice("required")) == "<tool_call>\n"
    prefix = HERMES.forced_prefix(ToolChoice("function", "get_weather"))
    # what the model writes after the prefix completes a call
    _, calls = HERMES.parse(prefix + '{"city": "Oslo"}}\n</tool_call>')
    assert calls == (ToolCall("get_weather", '{"city": "Oslo"}'),)
    assert format_for_template("... within <tool_call></tool_call> XML tags ...") is HERMES
    assert format_for_template("{% for m in messages %}{{ m.content }}{% endfor %}") is None


def test_template_messages_give_templates_argument_objects() -> None:
    turn = Message("assistant", "", (ToolCall("f", '{"x": 1}', "call_1"),))
    answer = Message("tool", "42", tool_call_id="call_1")
    rendered = template_messages([Message("user", "q"), turn, answer])
    assert rendered[0] == {"role": "user", "content": "q"}
    assert rendered[1]["tool_calls"][0]["function"] == {"name": "f", "arguments": {"x": 1}}
    assert rendered[2] == {"role": "tool", "content": "42", "tool_call_id": "call_1"}
    # the wire form keeps arguments as text
    assert turn.to_dict()["tool_calls"][0]["function"]["arguments"] == '{"x": 1}'
    assert arguments_value("{broken") == "{broken"


def test_tool_values_and_their_checks() -> None:
    tool = Tool("f", "does f", json.dumps({"type": "object"}), strict=True)
    assert tool.to_dict() == {
        "type": "function",
        "function": {"name": "f", "description": "does f", "parameters": {"type": "object"},
                     "strict": True},
    }  # fmt: skip
    assert Tool("g").to_dict() == {"type": "function", "function": {"name": "g"}}
    assert ToolChoice("function", "f").to_wire() == {"type": "function", "function": {"name": "f"}}
    assert ToolChoice("required").to_wire() == "required"
    with pytest.raises(ValueError, match="names a function"):
        ToolChoice("function")
    chat = (Message("user", "q"),)
    with pytest.raises(ValueError, match="needs tools"):
        GenRequest(messages=chat, tool_choice=ToolChoice("required"))
    with pytest.raises(ValueError, match="not a tool"):
        GenRequest(messages=chat, tools=(tool,), tool_choice=ToolChoice("function", "g"))
    with pytest.raises(ValueError, match="raw prompt"):
        GenRequest(prompt="q", tools=(tool,))
    # a plain message is what it always was; a request with tools stays hashable
    assert Message("user", "q").to_dict() == {"role": "user", "content": "q"}
    assert hash(GenRequest(messages=chat, tools=(tool,))) is not None
    assert ToolCall.from_dict({"function": {"name": "f", "arguments": {"x": 1}}}).arguments == (
        '{"x": 1}'
    )
    with pytest.raises(ValueError, match="name"):
        ToolCall.from_dict({"function": {"arguments": "{}"}})


def test_the_prompt_bound_counts_tools_and_calls() -> None:
    chat = (Message("user", "q"),)
    plain = text_token_bound(GenRequest(messages=chat))
    tool = Tool("get_weather", "the weather", json.dumps({"type": "object"}))
    assert text_token_bound(GenRequest(messages=chat, tools=(tool,))) > plain + len(
        json.dumps(tool.to_dict())
    )
    called = (Message("assistant", "", (ToolCall("f", '{"x": 1}', "c1"),)),)
    assert text_token_bound(GenRequest(messages=chat + called)) > plain + len('{"x": 1}')
