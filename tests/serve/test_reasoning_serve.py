"""Reasoning models through the server: votes on final answers, the chosen sample's
thinking as ``reasoning_content`` (plain and streamed, from the embedded engine's
``<think>`` text and from an upstream server's own field), thinking caps per request."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from tests.engines.test_openai_engine import Recorder, chat_reply
from tests.engines.test_openai_engine import engine as upstream_engine

from ponder.core.types import GenRequest
from ponder.engines.scripted import ScriptedEngine
from ponder.serve import ServeSettings, create_app

openai = pytest.importorskip("openai")
pytest.importorskip("fastapi")

MODEL = "thinker"
ASK = [{"role": "user", "content": "What is 6 times 7?"}]
THOUGHTS = [
    "<think>6*7... maybe \\boxed{36}? no: 42</think>\n\nSo \\boxed{42}.",
    "<think>7*6 = \\boxed{42} surely; or \\boxed{48}</think>\n\nIt is \\boxed{48}.",
    "<think>six sevens, \\boxed{48}? no</think>\n\nThe answer is \\boxed{42}.",
]


def client(engine: Any) -> Any:
    app = create_app(engine, ServeSettings(model=MODEL))
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ponder")
    return openai.AsyncOpenAI(
        api_key="k", base_url="http://ponder/v1", http_client=http, max_retries=0
    )


async def test_votes_on_answers_and_the_winner_thinking_comes_apart() -> None:
    c = client(ScriptedEngine(THOUGHTS))
    out = await c.chat.completions.create(model=f"majority-3/{MODEL}", messages=ASK)
    message = out.choices[0].message
    assert message.content == "So \\boxed{42}."
    assert message.model_extra["reasoning_content"] == "6*7... maybe \\boxed{36}? no: 42"
    # what each sample considered while thinking has no vote
    assert out.model_extra["ponder"]["votes"] == {"42": 2.0, "48": 1.0}


async def test_a_reply_without_thinking_has_no_reasoning_content() -> None:
    c = client(ScriptedEngine(["plain \\boxed{1}"]))
    out = await c.chat.completions.create(model=MODEL, messages=ASK)
    assert out.choices[0].message.content == "plain \\boxed{1}"
    assert "reasoning_content" not in (out.choices[0].message.model_extra or {})


async def test_streamed_thinking_comes_before_the_content() -> None:
    long = "<think>" + "step " * 60 + "</think>\n\n\\boxed{42}"
    c = client(ScriptedEngine([long]))
    stream = await c.chat.completions.create(model=MODEL, messages=ASK, stream=True)
    deltas = [ch.choices[0].delta for ch in [x async for x in stream] if ch.choices]
    thinking = [(d.model_extra or {}).get("reasoning_content") for d in deltas]
    pieces = [t for t in thinking if t]
    assert len(pieces) > 1 and "".join(pieces) == ("step " * 60).strip()
    assert "".join(d.content or "" for d in deltas) == "\\boxed{42}"
    last_thinking = max(i for i, t in enumerate(thinking) if t)
    first_content = min(i for i, d in enumerate(deltas) if d.content)
    assert last_thinking < first_content


async def test_a_thinking_cap_per_request_through_budget_forcing() -> None:
    def model(request: GenRequest, i: int) -> str:
        # a model that would think for 40 words, then answers after the cue
        if request.continuation.endswith("Final answer:"):
            return " \\boxed{42}"
        return " ".join(f"w{k}" for k in range(40)) + " </think>"

    engine = ScriptedEngine(model)
    c = client(engine)
    out = await c.chat.completions.create(
        model=MODEL, messages=ASK,
        extra_body={"ponder": {"strategy": "budget_forcing", "max_thinking_tokens": 5}},
    )  # fmt: skip
    assert engine.requests[0].max_tokens == 5 and engine.requests[0].stop == ("</think>",)
    message = out.choices[0].message
    assert message.model_extra["reasoning_content"] == "w0 w1 w2 w3 w4"
    assert message.content == "Final answer: \\boxed{42}"
    assert out.model_extra["ponder"]["answer"] == "42"
    # the cap is checked like any strategy setting
    with pytest.raises(openai.BadRequestError, match="max_thinking_tokens"):
        await c.chat.completions.create(
            model=MODEL, messages=ASK,
            extra_body={"ponder": {"strategy": "budget_forcing", "max_thinking_tokens": 0}},
        )  # fmt: skip


async def test_an_upstream_reasoning_server_thinking_passes_through() -> None:
    def reply(body: dict[str, Any], i: int) -> dict[str, Any]:
        r = chat_reply(["The answer is 42."], completion=20)
        r["choices"][0]["message"]["reasoning_content"] = "six sevens are forty-two"
        return r

    c = client(upstream_engine(Recorder(reply)))
    out = await c.chat.completions.create(model=MODEL, messages=ASK)
    assert out.choices[0].message.content == "The answer is 42."
    assert out.choices[0].message.model_extra["reasoning_content"] == "six sevens are forty-two"
    assert out.model_extra["ponder"]["answer"] == "42" and out.usage.completion_tokens == 20
