"""Tool calls through `ponder serve` as a real process: on the embedded
qwen2.5-coder-1.5b (its GGUF template shows the tools, ponder reads its calls), asked
by the openai client and by LangChain's ChatOpenAI; and in front of a real llama.cpp
server (llama-cpp-python's, smollm2-135m), whose structured calls ponder passes on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.test_serve_real import serving

from ponder.engines import models

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
openai = pytest.importorskip("openai")

QWEN = "qwen2.5-coder-1.5b"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 24}},
            "required": ["city"],
        },
    },
}
ASK = {"role": "user", "content": "What is the weather like in Paris right now?"}


@pytest.fixture(scope="module")
def qwen_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not models.is_ready(QWEN):
        pytest.skip(f"{QWEN} is not pulled: run `ponder models pull {QWEN}`")
    tmp = tmp_path_factory.mktemp("serve_tools")
    with serving(tmp, "--model", str(models.model_path(QWEN)), "--served-model-name", "qwen",
                 "--n-ctx", "2048") as url:  # fmt: skip
        yield url


def test_the_embedded_model_calls_a_tool_by_vote_and_goes_on_with_its_result(
    qwen_url: str,
) -> None:
    c = openai.OpenAI(base_url=qwen_url, api_key="k", max_retries=0, timeout=600)
    out = c.chat.completions.create(
        model="majority-2/qwen", messages=[ASK], tools=[WEATHER], max_tokens=48,
        temperature=0.7, seed=1,
    )  # fmt: skip
    choice = out.choices[0]
    assert choice.finish_reason == "tool_calls", choice.message
    (made,) = choice.message.tool_calls
    assert made.function.name == "get_weather" and made.id.startswith("call_")
    assert "paris" in json.loads(made.function.arguments)["city"].lower()
    votes = out.model_extra["ponder"]["votes"]
    assert sum(votes.values()) == 2 and all(k.startswith("tool_calls: ") for k in votes)
    # the conversation goes on: the call and its result go back and the model answers
    # (told to answer in text: left to itself, this model tends to call again)
    history: list[Any] = [
        ASK,
        {"role": "assistant", "content": None, "tool_calls": [made.model_dump()]},
        {"role": "tool", "tool_call_id": made.id, "content": '{"temperature_c": 21}'},
    ]  # fmt: skip
    again = c.chat.completions.create(
        model="qwen", messages=history, tools=[WEATHER], tool_choice="none", max_tokens=40
    )
    assert again.choices[0].finish_reason in ("stop", "length")
    assert again.model_extra["ponder"]["tools"]["kind"] == "text"
    assert not again.choices[0].message.tool_calls
    assert "21" in (again.choices[0].message.content or "")


def test_langchain_chats_and_calls_a_tool_through_ponder(qwen_url: str) -> None:
    lc = pytest.importorskip("langchain_openai")
    llm = lc.ChatOpenAI(
        model="qwen", base_url=qwen_url, api_key="k", max_tokens=32, temperature=0,
        max_retries=0, timeout=600,
    )  # fmt: skip
    said = llm.invoke("What is 2 + 3? Answer with the number only.")
    assert "5" in said.content
    called = llm.bind_tools([WEATHER]).invoke("What is the weather like in Paris right now?")
    assert [t["name"] for t in called.tool_calls] == ["get_weather"]
    assert "paris" in called.tool_calls[0]["args"]["city"].lower()
    assert called.response_metadata["finish_reason"] == "tool_calls"


def test_in_front_of_a_llama_cpp_server_the_calls_pass_through(
    llama_server_url: str, tmp_path: Path
) -> None:
    args = ["--model", "smollm2", "--base-url", f"{llama_server_url}/v1",
            "--served-model-name", "smol"]  # fmt: skip
    with serving(tmp_path, *args) as url:
        c = openai.OpenAI(base_url=url, api_key="k", max_retries=0, timeout=300)
        # a named function: llama-cpp-python's server constrains the arguments to the
        # schema and answers with structured tool_calls, which the two samples vote on
        out = c.chat.completions.create(
            model="majority-2/smol", messages=[ASK], tools=[WEATHER], max_tokens=40,
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
        )  # fmt: skip
        choice = out.choices[0]
        assert choice.finish_reason == "tool_calls"
        (made,) = choice.message.tool_calls
        assert made.function.name == "get_weather"
        assert isinstance(json.loads(made.function.arguments)["city"], str)
        extra = out.model_extra["ponder"]
        assert extra["tools"]["samples"] == {"tool_calls": 2, "text": 0}
        assert extra["usage"]["calls"] == 2 and out.usage.completion_tokens > 0
        # and the conversation with the call's result goes through to the server
        history: list[Any] = [
            ASK,
            {"role": "assistant", "content": None, "tool_calls": [made.model_dump()]},
            {"role": "tool", "tool_call_id": made.id, "content": '{"temperature_c": 21}'},
        ]
        again = c.chat.completions.create(
            model="smol", messages=history, tools=[WEATHER], tool_choice="none", max_tokens=16
        )
        assert again.choices[0].message.content and not again.choices[0].message.tool_calls
