"""Tool calls through the server, with the scripted engine writing Qwen's (Hermes)
markup and the official openai client asking: votes on calls, text against calls,
tool_choice, multi-turn conversations, streaming, and bad requests."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from ponder.core.engine import Capabilities
from ponder.core.types import Candidate, GenRequest, Message, Result, ToolCall, Usage
from ponder.engines.scripted import ScriptedEngine
from ponder.serve import ServeSettings, create_app
from ponder.serve.chat import ChatTask
from ponder.serve.tools import ToolEngine, ToolRequest, call_key, read_tools, settle

openai = pytest.importorskip("openai")
pytest.importorskip("fastapi")

MODEL = "tiny"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city now.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


def call(name: str, arguments: str) -> str:
    return f'<tool_call>\n{{"name": "{name}", "arguments": {arguments}}}\n</tool_call>'


def scripted(*texts: str) -> ScriptedEngine:
    return ScriptedEngine(lambda r, i: texts[i % len(texts)])


def client(engine: Any) -> Any:
    app = create_app(engine, ServeSettings(model=MODEL))
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ponder")
    return openai.AsyncOpenAI(api_key="k", base_url="http://ponder/v1", http_client=http,
                              max_retries=0)  # fmt: skip


async def test_samples_vote_on_calls_by_function_and_normalised_arguments() -> None:
    engine = scripted(
        call("get_weather", '{"city": "Paris", "unit": "C"}'),
        call("get_weather", '{"city": "Rome"}'),
        # the same call as the first: keys in another order, other spacing
        call("get_weather", '{ "unit":"C","city":"Paris" }'),
    )
    out = await client(engine).chat.completions.create(
        model=f"majority-3/{MODEL}", messages=ASK, tools=[WEATHER], temperature=0.7
    )
    choice = out.choices[0]
    assert choice.finish_reason == "tool_calls"
    (made,) = choice.message.tool_calls
    assert made.type == "function" and made.id.startswith("call_")
    assert made.function.name == "get_weather"
    assert json.loads(made.function.arguments) == {"city": "Paris", "unit": "C"}
    assert choice.message.content is None
    extra = out.model_extra["ponder"]
    paris = 'tool_calls: get_weather({"city": "Paris", "unit": "C"})'
    assert extra["answer"] == paris and extra["votes"][paris] == 2.0
    assert extra["tools"]["samples"] == {"tool_calls": 3, "text": 0}
    assert extra["tools"]["kind"] == "tool_calls" and not extra["tools"]["overruled"]
    assert "kinds first" in extra["tools"]["rule"]
    # the engine was shown the tool with the client's own chat
    (sent,) = engine.requests
    assert [t.name for t in sent.tools] == ["get_weather"] and sent.tool_choice.mode == "auto"
    assert json.loads(sent.tools[0].parameters)["required"] == ["city"]


async def test_the_kind_most_samples_took_wins_over_a_split_vote() -> None:
    # three samples call (each differently), two answer the same text: the text has the
    # most votes of any one answer, but most samples wanted a call
    engine = scripted(
        call("get_weather", '{"city": "Paris"}'),
        "It is sunny.",
        call("get_weather", '{"city": "paris"}'),
        "It is sunny.",
        call("get_weather", '{"city": "Paris, FR"}'),
    )
    out = await client(engine).chat.completions.create(
        model=f"majority-5/{MODEL}", messages=ASK, tools=[WEATHER], temperature=0.7
    )
    extra = out.model_extra["ponder"]
    assert extra["votes"]["It is sunny."] == 2.0
    assert extra["tools"]["samples"] == {"tool_calls": 3, "text": 2}
    assert extra["tools"]["overruled"] and extra["tools"]["kind"] == "tool_calls"
    # the first of the equally voted calls
    assert json.loads(out.choices[0].message.tool_calls[0].function.arguments) == {"city": "Paris"}
    assert out.choices[0].finish_reason == "tool_calls"


async def test_text_wins_when_most_samples_answer_in_text() -> None:
    engine = scripted("so \\boxed{4}", call("get_time", "{}"), "thus \\boxed{4}")
    out = await client(engine).chat.completions.create(
        model=f"majority-3/{MODEL}", messages=ASK, tools=[WEATHER, TIME], temperature=0.7
    )
    choice = out.choices[0]
    assert choice.finish_reason == "stop" and not choice.message.tool_calls
    assert choice.message.content in ("so \\boxed{4}", "thus \\boxed{4}")
    assert out.model_extra["ponder"]["tools"]["kind"] == "text"


@pytest.mark.parametrize(
    ("tool_choice", "mode", "kind"),
    [
        ("required", "required", "tool_calls"),
        ({"type": "function", "function": {"name": "get_time"}}, "function", "tool_calls"),
        ("none", "none", "text"),
        ("auto", "auto", "text"),
    ],
)
async def test_tool_choice_reaches_the_engine_and_decides_the_kind(
    tool_choice: Any, mode: str, kind: str
) -> None:
    # two texts, one call: auto takes the text, required takes the call
    engine = scripted("It is 9 o'clock.", call("get_time", "{}"), "It is 9 o'clock.")
    out = await client(engine).chat.completions.create(
        model=f"majority-3/{MODEL}", messages=ASK, tools=[WEATHER, TIME],
        tool_choice=tool_choice, temperature=0.7,
    )  # fmt: skip
    assert engine.requests[0].tool_choice.mode == mode
    assert out.model_extra["ponder"]["tools"]["kind"] == kind
    assert bool(out.choices[0].message.tool_calls) == (kind == "tool_calls")


async def test_a_conversation_goes_on_after_a_call_and_its_result() -> None:
    engine = scripted("It is 21 degrees in Paris.")
    c = client(engine)
    history: list[dict[str, Any]] = [
        *ASK,
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temperature": 21}'},
    ]  # fmt: skip
    out = await c.chat.completions.create(model=MODEL, messages=history, tools=[WEATHER])
    assert out.choices[0].message.content == "It is 21 degrees in Paris."
    assert out.choices[0].finish_reason == "stop"
    sent = engine.requests[0].messages
    assert sent[1] == Message(
        "assistant", "", (ToolCall("get_weather", '{"city": "Paris"}', "call_1"),)
    )
    assert sent[2] == Message("tool", '{"temperature": 21}', tool_call_id="call_1")


async def test_parallel_calls_come_back_together_unless_the_client_says_one() -> None:
    both = call("get_weather", '{"city": "Paris"}') + "\n" + call("get_time", "{}")
    c = client(scripted(both))
    out = await c.chat.completions.create(model=MODEL, messages=ASK, tools=[WEATHER, TIME])
    assert [t.function.name for t in out.choices[0].message.tool_calls] == [
        "get_weather",
        "get_time",
    ]
    ids = {t.id for t in out.choices[0].message.tool_calls}
    assert len(ids) == 2
    out = await c.chat.completions.create(
        model=MODEL, messages=ASK, tools=[WEATHER, TIME], parallel_tool_calls=False
    )
    assert [t.function.name for t in out.choices[0].message.tool_calls] == ["get_weather"]


async def test_a_streamed_reply_carries_the_calls() -> None:
    engine = scripted("Checking.\n" + call("get_weather", '{"city": "Paris"}'))
    stream = await client(engine).chat.completions.create(
        model=MODEL, messages=ASK, tools=[WEATHER], stream=True
    )
    chunks = [ch async for ch in stream]
    deltas = [ch.choices[0].delta for ch in chunks if ch.choices]
    text = "".join(d.content or "" for d in deltas)
    calls = [t for d in deltas for t in (d.tool_calls or [])]
    assert text == "Checking."
    assert len(calls) == 1 and calls[0].function.name == "get_weather" and calls[0].index == 0
    assert json.loads(calls[0].function.arguments) == {"city": "Paris"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tools": []}, "non-empty list"),
        ({"tools": [{"type": "function", "function": {"name": "bad name"}}]}, "letters"),
        ({"tools": [WEATHER, WEATHER]}, "repeats"),
        ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "x"}}},
         "not among the tools"),
        ({"tools": [WEATHER], "tool_choice": "always"}, "tool_choice must be"),
        ({"tool_choice": "required"}, "needs 'tools'"),
        ({"messages": [*ASK, {"role": "tool", "content": "21"}]}, "tool_call_id"),
        ({"messages": [{"role": "user", "content": "q", "tool_calls": []}]}, "only an assistant"),
        ({"functions": [WEATHER["function"]]}, "legacy"),
    ],
)  # fmt: skip
async def test_malformed_tool_requests_get_400(kwargs: dict[str, Any], match: str) -> None:
    engine = scripted("x")
    args = {"model": MODEL, "messages": ASK, **kwargs}
    extra = {k: args.pop(k) for k in ("functions",) if k in args}
    with pytest.raises(openai.BadRequestError) as info:
        await client(engine).chat.completions.create(**args, extra_body=extra or None)
    assert match in str(info.value)
    assert engine.requests == []


async def test_an_engine_that_cannot_show_tools_is_a_400() -> None:
    class NoTools(ScriptedEngine):
        @property
        def capabilities(self) -> Capabilities:
            return Capabilities(native_n=True)

    with pytest.raises(openai.BadRequestError, match="cannot show a model tools"):
        await client(NoTools(["x"])).chat.completions.create(
            model=MODEL, messages=ASK, tools=[WEATHER]
        )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(scripted("x"), ServeSettings(model=MODEL))),
        base_url="http://ponder",
    ) as http:
        r = await http.post(
            "/v1/completions", json={"model": MODEL, "prompt": "q", "tools": [WEATHER]}
        )
    assert r.status_code == 400 and "chat/completions" in r.json()["error"]["message"]


async def test_the_tools_go_only_with_the_clients_own_chat() -> None:
    engine = scripted(call("get_time", "{}"))
    prompt = (Message("user", "q"),)
    request = read_tools({"tools": [TIME]})
    assert request is not None
    wrapped = ToolEngine(engine, prompt, request)
    mine, judge = await wrapped.generate(
        [GenRequest(messages=prompt), GenRequest(messages=(Message("user", "judge this"),))]
    )
    assert engine.requests[0].tools and not engine.requests[1].tools
    # the call, in canonical markup, is the sample's text; the judge's text is as written
    assert call_key(mine[0].text) == "tool_calls: get_time({})" and mine[0].tool_calls
    assert judge[0].text == call("get_time", "{}") and not judge[0].tool_calls
    assert wrapped.prompt_tokens(GenRequest(messages=prompt)) == engine.prompt_tokens(
        GenRequest(messages=prompt)
    )


def test_call_keys_and_the_chat_task() -> None:
    a = call("f", '{"b": [1, 2], "a": {"y": 1, "x": 2}}')
    b = call("f", '{"a": {"x": 2, "y": 1}, "b": [1, 2]}')
    assert call_key(a) == call_key(b) == 'tool_calls: f({"a": {"x": 2, "y": 1}, "b": [1, 2]})'
    assert call_key(call("f", '{"b": [2, 1]}')) != call_key(call("f", '{"b": [1, 2]}'))
    assert call_key("no calls here") is None
    assert ChatTask().extract(a) == call_key(a)
    assert ChatTask().extract("so \\boxed{4}") == "4"


def test_settle_without_samples_and_with_a_tie() -> None:
    request = ToolRequest(tools=())
    empty = settle(Result(None, (), {}, Usage(), 0.0), request)
    assert empty.meta["tools"]["samples"] == {"tool_calls": 0, "text": 0}
    text, called = "It is sunny.", call("f", "{}")
    key = call_key(called)
    assert key is not None
    candidates = (Candidate(text, text, Usage()), Candidate(called, key, Usage()))
    tie = Result(key, candidates, {text: 1.0, key: 1.0}, Usage(), 0.0)
    # a tie keeps the strategy's choice
    assert settle(tie, request).answer == call_key(called)
    assert not settle(tie, request).meta["tools"]["overruled"]
