"""One behaviour suite, run against every engine: the scripted fake, the embedded
llama.cpp engine and a real OpenAI-compatible server (both with smollm2-135m)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ponder.core.engine import Engine
from ponder.core.types import GenRequest, Message
from ponder.engines.scripted import ScriptedEngine

pytestmark = pytest.mark.timeout(300)

CHAT = (Message("user", "Count from one to twenty in words, separated by commas."),)


@pytest.fixture(params=["scripted", "llamacpp", "openai"])
async def engine(request: pytest.FixtureRequest) -> AsyncIterator[Engine]:
    kind = request.param
    eng: Engine
    if kind == "scripted":
        eng = ScriptedEngine(["one, two, three, four, five, six, seven, eight, nine, ten"])
    elif kind == "llamacpp":
        request.applymarker(pytest.mark.integration)
        from ponder.engines.llamacpp import LlamaCppEngine

        path: Path = request.getfixturevalue("smollm2_path")
        eng = LlamaCppEngine(path, n_ctx=2048, n_parallel=4)
    else:
        request.applymarker(pytest.mark.integration)
        from ponder.engines.openai import OpenAIEngine

        url: str = request.getfixturevalue("llama_server_url")
        eng = OpenAIEngine("smollm2", base_url=url, timeout=60, max_retries=1)
    yield eng
    await eng.aclose()


async def test_n_completions_per_request_in_order_with_exact_usage(engine: Engine) -> None:
    reqs = [
        GenRequest(messages=CHAT, n=3, max_tokens=3, temperature=0.8, seed=1),
        GenRequest(messages=CHAT, n=2, max_tokens=7, temperature=0.8, seed=2),
    ]
    out = await engine.generate(reqs)
    assert [len(o) for o in out] == [3, 2]
    for req, comps in zip(reqs, out, strict=True):
        for c in comps:
            assert 0 < c.usage.completion_tokens <= req.max_tokens + 1  # +1: a server's stop token
        # every sibling saw the whole prompt, computed once or shared
        seen = [c.usage.prompt_tokens + c.usage.cached_tokens for c in comps]
        assert seen[0] > 0 and seen == [seen[0]] * len(comps)
        assert sum(c.usage.calls for c in comps) >= 1
    assert max(c.usage.completion_tokens for c in out[0]) <= 4
    assert any(c.finish_reason == "length" for c in out[1])


async def test_stop_strings_are_cut(engine: Engine) -> None:
    (comps,) = await engine.generate(
        [GenRequest(messages=CHAT, max_tokens=40, stop=("three",), temperature=0.0)]
    )
    assert "three" not in comps[0].text


async def test_logprobs_on_request(engine: Engine) -> None:
    (comps,) = await engine.generate(
        [GenRequest(messages=CHAT, max_tokens=5, top_logprobs=3, temperature=0.0)]
    )
    lps = comps[0].logprobs
    assert lps is not None and len(lps) >= 1
    for t in lps:
        assert t.logprob <= 1e-6
        assert 1 <= len(t.top) <= 3
        values = [lp for _, lp in t.top]
        assert values == sorted(values, reverse=True)
    (plain,) = await engine.generate([GenRequest(messages=CHAT, max_tokens=3)])
    assert plain[0].logprobs is None
