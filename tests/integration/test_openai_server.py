"""OpenAIEngine against a real llama.cpp server (``python -m llama_cpp.server``) started on
127.0.0.1 with smollm2-135m. The server ignores ``n``, so these tests also exercise the
fallback to concurrent single requests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ponder.core.types import Completion, GenRequest, Message
from ponder.engines.openai import OpenAIEngine

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture
async def engine(llama_server_url: str) -> AsyncIterator[OpenAIEngine]:
    eng = OpenAIEngine("smollm2", base_url=llama_server_url, timeout=60, max_retries=1)
    yield eng
    await eng.aclose()


def _check_usage(completions: list[Completion]) -> None:
    for c in completions:
        assert c.usage.calls == 1
        assert c.usage.prompt_tokens + c.usage.cached_tokens > 0
        assert c.usage.completion_tokens > 0


async def test_chat_n3_falls_back_to_single_requests(engine: OpenAIEngine) -> None:
    req = GenRequest(
        messages=(Message("user", "Name a colour."),),
        n=3,
        max_tokens=12,
        temperature=0.9,
        seed=5,
    )
    (comps,) = await engine.generate([req])
    assert len(comps) == 3
    assert all(c.text for c in comps)
    _check_usage(comps)
    assert not engine.capabilities.native_n  # learned from the single-choice answer
    # Repeatability is not asserted: llama-cpp-python's server samples differently for
    # the same seed when the whole prompt is already in its cache (seen with 0.3.36).

    (again,) = await engine.generate([req])  # straight to singles now
    assert len(again) == 3
    _check_usage(again)


async def test_completions_n3(engine: OpenAIEngine) -> None:
    req = GenRequest(prompt="The capital of France is", n=3, max_tokens=8, temperature=0.9, seed=1)
    (comps,) = await engine.generate([req])
    assert len(comps) == 3
    _check_usage(comps)


async def test_chat_logprobs(engine: OpenAIEngine) -> None:
    req = GenRequest(messages=(Message("user", "Say hello."),), max_tokens=8, top_logprobs=3)
    (comps,) = await engine.generate([req])
    lps = comps[0].logprobs
    assert lps is not None
    assert len(lps) == comps[0].usage.completion_tokens
    for t in lps:
        assert t.logprob <= 0
        assert 1 <= len(t.top) <= 3
        assert [lp for _, lp in t.top] == sorted((lp for _, lp in t.top), reverse=True)
    # greedy: the chosen token is the most likely one
    assert all(t.top[0] == (t.token, t.logprob) for t in lps)


async def test_completion_logprobs(engine: OpenAIEngine) -> None:
    req = GenRequest(prompt="1, 2, 3,", max_tokens=6, logprobs=True)
    (comps,) = await engine.generate([req])
    lps = comps[0].logprobs
    assert lps is not None
    assert len(lps) == comps[0].usage.completion_tokens == 6
    assert "".join(t.token for t in lps) == comps[0].text
    assert all(t.top == () for t in lps)  # no alternatives were asked for


async def test_stop_string(engine: OpenAIEngine) -> None:
    req = GenRequest(prompt="Count: 1, 2, 3, 4,", max_tokens=32, stop=("7",))
    (comps,) = await engine.generate([req])
    c = comps[0]
    assert c.finish_reason == "stop"
    assert "7" not in c.text
    assert "5" in c.text  # it did count on, up to the stop string


async def test_max_tokens_gives_length(engine: OpenAIEngine) -> None:
    req = GenRequest(messages=(Message("user", "Write a long story."),), max_tokens=5)
    (comps,) = await engine.generate([req])
    assert comps[0].finish_reason == "length"
    assert comps[0].usage.completion_tokens == 5
