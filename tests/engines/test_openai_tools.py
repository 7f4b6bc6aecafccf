"""OpenAIEngine and tools, against httpx.MockTransport: tools and tool_choice passed
through, the server's tool_calls read back, calls left in the text read as Hermes,
multi-turn messages on the wire, and tools rendered by a client-side chat template."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.engines.test_openai_engine import BASE, Recorder

from ponder.core.errors import CapabilityMissing, EngineError
from ponder.core.types import GenRequest, Message, Tool, ToolCall, ToolChoice
from ponder.engines.openai import OpenAIEngine
from ponder.engines.pool import EnginePool

WEATHER = Tool("get_weather", "The weather.", json.dumps({"type": "object"}))
CHAT = (Message("user", "Weather in Paris?"),)
QWEN_LIKE = (
    "{% if tools %}<tools>{% for t in tools %}{{ t | tojson }}{% endfor %}</tools>"
    "Call with <tool_call></tool_call>.\n{% endif %}"
    "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}"
    "{% for c in m.tool_calls or [] %}<tool_call>{{ c.function | tojson }}</tool_call>{% endfor %}"
    "\n{% endfor %}<|assistant|>"
)


def reply(message: dict[str, Any], finish: str = "stop") -> dict[str, Any]:
    return {
        "choices": [{"index": 0, "message": {"role": "assistant", **message},
                     "finish_reason": finish}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 7},
    }  # fmt: skip


def engine(recorder: Recorder, **kwargs: Any) -> OpenAIEngine:
    return OpenAIEngine("m", base_url=BASE, transport=recorder.transport, **kwargs)


async def test_tools_go_to_the_server_and_its_calls_come_back() -> None:
    upstream = {"id": "call_up", "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}  # fmt: skip
    rec = Recorder(lambda body, i: reply({"content": None, "tool_calls": [upstream]}, "tool_calls"))
    req = GenRequest(messages=CHAT, tools=(WEATHER,), tool_choice=ToolChoice("required"))
    [[done]] = await engine(rec).generate([req])
    assert done.tool_calls == (ToolCall("get_weather", '{"city": "Paris"}', "call_up"),)
    assert done.text == "" and done.finish_reason == "stop"
    body = rec.bodies[0]
    assert body["tools"] == [WEATHER.to_dict()] and body["tool_choice"] == "required"


async def test_a_conversation_with_calls_goes_on_the_wire_as_openai_writes_it() -> None:
    rec = Recorder(lambda body, i: reply({"content": "It is 21 degrees."}))
    turns = (
        *CHAT,
        Message("assistant", "", (ToolCall("get_weather", '{"city": "Paris"}', "c1"),)),
        Message("tool", '{"t": 21}', tool_call_id="c1"),
    )
    [[done]] = await engine(rec).generate([GenRequest(messages=turns, tools=(WEATHER,))])
    assert done.text == "It is 21 degrees." and done.tool_calls == ()
    wire = rec.bodies[0]["messages"]
    assert wire[1]["tool_calls"][0]["function"]["arguments"] == '{"city": "Paris"}'
    assert wire[2] == {"role": "tool", "content": '{"t": 21}', "tool_call_id": "c1"}
    # a request without tools sends none
    await engine(rec).generate([GenRequest(messages=CHAT)])
    assert "tools" not in rec.bodies[1] and "tool_choice" not in rec.bodies[1]


async def test_calls_a_server_left_in_the_text_are_read_as_hermes() -> None:
    # llama-cpp-python's server renders a GGUF's template with the tools but returns the
    # model's markup as content
    text = (
        'Sure.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
    )
    rec = Recorder(lambda body, i: reply({"content": text}))
    [[done]] = await engine(rec).generate([GenRequest(messages=CHAT, tools=(WEATHER,))])
    assert done.text == "Sure." and done.tool_calls == (
        ToolCall("get_weather", '{"city": "Oslo"}'),
    )
    # with tool_choice none the text is the answer, markup or not
    none = GenRequest(messages=CHAT, tools=(WEATHER,), tool_choice=ToolChoice("none"))
    [[done]] = await engine(rec).generate([none])
    assert done.tool_calls == () and done.text == text


async def test_a_malformed_upstream_call_is_an_engine_error() -> None:
    bad = {"content": None, "tool_calls": [{"type": "function", "function": {"arguments": "{}"}}]}
    rec = Recorder(lambda body, i: reply(bad))
    with pytest.raises(EngineError, match="could not read a tool call"):
        await engine(rec).generate([GenRequest(messages=CHAT, tools=(WEATHER,))])


async def test_a_client_side_template_renders_tools_and_forces_a_named_call() -> None:
    rest = '{"city": "Rome"}}\n</tool_call>'
    rec = Recorder(lambda body, i: {
        "choices": [{"index": 0, "text": rest, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 30, "completion_tokens": 8},
    })  # fmt: skip
    eng = engine(rec, chat_template=QWEN_LIKE)
    req = GenRequest(
        messages=CHAT, tools=(WEATHER,), tool_choice=ToolChoice("function", "get_weather")
    )
    [[done]] = await eng.generate([req])
    assert done.tool_calls == (ToolCall("get_weather", '{"city": "Rome"}'),)
    sent = rec.bodies[0]
    assert rec.paths[0].endswith("/completions") and "tools" not in sent
    assert '"name": "get_weather"' in sent["prompt"].split("<|assistant|>")[0]
    assert sent["prompt"].endswith(
        '<|assistant|><tool_call>\n{"name": "get_weather", "arguments": '
    )
    # a template that shows no tools cannot take them
    with pytest.raises(CapabilityMissing, match="shows no tools"):
        await engine(rec, chat_template="chatml").generate(
            [GenRequest(messages=CHAT, tools=(WEATHER,))]
        )
    assert eng.capabilities.tools


async def test_a_pool_of_servers_takes_tools_as_its_members_do() -> None:
    members = [OpenAIEngine("m", base_url=BASE), OpenAIEngine("m", base_url="http://other:8000")]
    pool = EnginePool(members)
    assert pool.capabilities.tools
    await pool.aclose()
