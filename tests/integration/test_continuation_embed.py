"""Continuations, stop strings, embeddings and the prefix-reuse switch on real engines:
the embedded smollm2-135m, and a real llama.cpp server fed client-side chat templates."""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from ponder.core.types import GenRequest, Message
from ponder.engines.llamacpp import LlamaCppEngine
from ponder.engines.openai import OpenAIEngine

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

CHAT = (Message("user", "Count from one to ten in words, one per line."),)


@pytest.fixture(scope="module")
def model(smollm2_path: Path) -> Path:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed: pip install 'ponder[local]'")
    return smollm2_path


async def test_continuation_prefills_only_the_new_tokens(model: Path) -> None:
    async with LlamaCppEngine(model, n_ctx=1024, n_parallel=2) as eng:
        [[first]] = await eng.generate([GenRequest(messages=CHAT, max_tokens=12)])
        prompt_len = first.usage.prompt_tokens
        # the slot holds prompt + first's tokens: continuing from its text reuses them
        [[second]] = await eng.generate(
            [GenRequest(messages=CHAT, continuation=first.text, max_tokens=8)]
        )
        held = prompt_len + first.usage.completion_tokens
        assert second.usage.cached_tokens >= held - 2
        assert second.usage.prompt_tokens <= 3
        # the completion is only the new text, and greedy continuation of greedy text
        # is the same text a longer greedy run writes
        [[whole]] = await eng.generate([GenRequest(messages=CHAT, max_tokens=20)])
        assert whole.text.startswith(first.text)
        assert (first.text + second.text).startswith(whole.text[: len(first.text) + 3])


async def test_prefix_reuse_off_prefills_everything(model: Path) -> None:
    async with LlamaCppEngine(model, n_ctx=1024, n_parallel=2, prefix_reuse=False) as eng:
        assert not eng.capabilities.prefix_reuse
        [[first]] = await eng.generate([GenRequest(messages=CHAT, max_tokens=10)])
        [[again]] = await eng.generate(
            [GenRequest(messages=CHAT, continuation=first.text, max_tokens=4, n=1)]
        )
        assert again.usage.cached_tokens == 0
        assert again.usage.prompt_tokens >= first.usage.prompt_tokens + 5
        # siblings of one request still share the prompt
        comps = (await eng.generate([GenRequest(messages=CHAT, max_tokens=4, n=2, seed=1)]))[0]
        assert comps[1].usage.prompt_tokens == 0 and comps[1].usage.cached_tokens > 0


async def test_stop_sequence_tells_stop_string_from_end_of_generation(model: Path) -> None:
    async with LlamaCppEngine(model, n_ctx=1024, n_parallel=2) as eng:
        [[cut]] = await eng.generate([GenRequest(messages=CHAT, max_tokens=40, stop=("\n",))])
        assert cut.finish_reason == "stop" and cut.stop_sequence == "\n"
        assert "\n" not in cut.text
        [[ended]] = await eng.generate(
            [GenRequest(messages=(Message("user", "Say OK."),), max_tokens=40, stop=("zzzz",))]
        )
        assert ended.finish_reason == "stop" and ended.stop_sequence is None
        [[short]] = await eng.generate([GenRequest(messages=CHAT, max_tokens=3, stop=("zz",))])
        assert short.finish_reason == "length" and short.stop_sequence is None


async def test_embed_reuses_the_slot_and_matches_a_fresh_prefill(model: Path) -> None:
    async with LlamaCppEngine(model, n_ctx=1024, n_parallel=2) as eng:
        assert eng.capabilities.embeddings
        [[c]] = await eng.generate([GenRequest(messages=CHAT, max_tokens=16)])
        [e1] = await eng.embed([GenRequest(messages=CHAT, continuation=c.text)])
        assert e1.vector.dtype == np.float32 and e1.vector.ndim == 1
        assert e1.usage.prompt_tokens <= 2 and e1.usage.cached_tokens > 10
        # a different text gives a different vector; the same text the same one
        e2, e3 = await eng.embed(
            [
                GenRequest(messages=CHAT, continuation=c.text),
                GenRequest(messages=(Message("user", "Something else entirely."),)),
            ]
        )
        assert np.allclose(e1.vector, e2.vector, atol=1e-4)
        assert not np.allclose(e1.vector, e3.vector, atol=1e-2)
    async with LlamaCppEngine(model, n_ctx=1024, n_parallel=2, prefix_reuse=False) as fresh:
        [f] = await fresh.embed([GenRequest(messages=CHAT, continuation=c.text)])
        assert f.usage.cached_tokens == 0
        # computed in one pass instead of token by token: equal up to the last bits of
        # 8-bit activation quantization
        cosine = float(f.vector @ e1.vector / np.linalg.norm(f.vector) / np.linalg.norm(e1.vector))
        assert cosine > 0.99


@pytest.fixture
async def templated(llama_server_url: str, model: Path) -> AsyncIterator[OpenAIEngine]:
    from llama_cpp import Llama

    meta = Llama(str(model), vocab_only=True, verbose=False).metadata
    eng = OpenAIEngine(
        "smollm2",
        base_url=llama_server_url,
        timeout=60,
        max_retries=1,
        chat_template=meta["tokenizer.chat_template"],
    )
    yield eng
    await eng.aclose()


async def test_server_continuation_with_client_side_template(templated: OpenAIEngine) -> None:
    [[first]] = await templated.generate([GenRequest(messages=CHAT, max_tokens=12)])
    assert first.text.strip()
    [[second]] = await templated.generate(
        [GenRequest(messages=CHAT, continuation=first.text, max_tokens=8)]
    )
    # greedy: continuing the text gives what a longer greedy answer would have said
    [[whole]] = await templated.generate([GenRequest(messages=CHAT, max_tokens=20)])
    assert whole.text.startswith(first.text)
    assert second.usage.completion_tokens > 0
    # the rendered chat is what the embedded engine renders for the same model
    rendered = templated.render_chat(CHAT)
    assert rendered.endswith("assistant\n") and "Count from one to ten" in rendered
