"""LlamaCppEngine against a real model: smollm2-135m, small enough for CI.

The model is found through ``PONDER_SMOLLM2_GGUF`` (tests/conftest.py points it at
the bundled-model cache), else at /tmp/models/smollm2-135m.gguf; without it, or
without llama-cpp-python, these tests are skipped with the reason.
"""

from __future__ import annotations

import asyncio
import importlib.util
import math
import os
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import pytest

from ponder.core.errors import CapabilityMissing, EngineError, MissingExtra
from ponder.core.types import Completion, GenRequest, Message, Usage
from ponder.engines.llamacpp import LlamaCppEngine, default_extra_buffers

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

FALLBACK_MODEL = Path("/tmp/models/smollm2-135m.gguf")
HAVE_LLAMA_CPP = importlib.util.find_spec("llama_cpp") is not None
CHAT = (Message("user", "Name three colors."),)
RAW_PROMPTS = (
    "The capital of France is",
    "def fibonacci(n):",
    "Once upon a time, in a small village,",
)
QUESTIONS = ("What is the largest planet?", "Write a haiku about rain.")

T = TypeVar("T")


@pytest.fixture(scope="module")
def model_path() -> Path:
    if not HAVE_LLAMA_CPP:
        pytest.skip("llama-cpp-python is not installed: pip install 'ponder[local]'")
    env = os.environ.get("PONDER_SMOLLM2_GGUF")
    for candidate in (Path(env) if env else None, FALLBACK_MODEL):
        if candidate is not None and candidate.is_file():
            return candidate
    pytest.skip(
        "smollm2-135m GGUF not found: run `ponder models pull smollm2-135m` "
        "or set PONDER_SMOLLM2_GGUF to its path"
    )


@pytest.fixture(scope="module")
def engine(model_path: Path) -> Iterator[LlamaCppEngine]:
    eng = LlamaCppEngine(model_path, n_ctx=1024, n_parallel=4)
    yield eng
    asyncio.run(eng.aclose())


async def one(engine: LlamaCppEngine, request: GenRequest) -> list[Completion]:
    [completions] = await engine.generate([request])
    return completions


def in_own_thread(fn: Callable[[], T]) -> T:
    """Run llama.cpp work of the high-level API in a thread that then exits, so its
    OpenMP threads do not linger and slow the engine's worker (see llamacpp.py)."""
    out: list[T] = []
    thread = threading.Thread(target=lambda: out.append(fn()))
    thread.start()
    thread.join()
    return out[0]


async def test_declares_its_capabilities(engine: LlamaCppEngine, model_path: Path) -> None:
    caps = engine.capabilities
    assert caps.native_n and caps.logprobs and caps.prefix_reuse
    assert caps.top_logprobs == 20 and caps.fork and caps.embeddings
    assert engine.name == model_path.stem
    assert engine.n_ctx >= 1024 and engine.n_parallel == 4


async def test_n_samples_share_one_prefill_with_exact_usage(engine: LlamaCppEngine) -> None:
    req = GenRequest(messages=CHAT, n=3, max_tokens=16, temperature=0.9, seed=3)
    n_prompt = len(engine.tokenize(req))
    before = engine.stats
    comps = await one(engine, req)
    after = engine.stats

    assert len(comps) == 3
    first, *siblings = comps
    # the prompt is computed at most once (a slot may already hold part of it)
    assert first.usage.prompt_tokens + first.usage.cached_tokens == n_prompt
    assert first.usage.calls == 1
    assert after.prefill_tokens - before.prefill_tokens == first.usage.prompt_tokens
    for c in siblings:
        assert c.usage == Usage(0, n_prompt, c.usage.completion_tokens, 0)
    for c in comps:
        assert 1 <= c.usage.completion_tokens <= 16
        assert c.finish_reason == "stop" or c.usage.completion_tokens == 16
    total = sum((c.usage for c in comps), Usage())
    assert total.prompt_tokens + total.cached_tokens == 3 * n_prompt
    assert total.calls == 1


async def test_more_samples_than_slots_queue_for_a_slot(model_path: Path) -> None:
    async with LlamaCppEngine(model_path, n_ctx=512, n_parallel=2) as eng:
        req = GenRequest(prompt="A list of fruits:", n=5, max_tokens=8, temperature=1.0, seed=0)
        comps = await one(eng, req)
        assert len(comps) == 5
        assert eng.stats.prefill_tokens == len(eng.tokenize(req))  # once, for five samples
        assert eng.stats.max_batch == 2
        assert [c.usage.calls for c in comps] == [1, 0, 0, 0, 0]


async def test_seeds_reproduce_and_siblings_count_up_from_the_seed(
    engine: LlamaCppEngine,
) -> None:
    def req(seed: int, n: int = 3) -> GenRequest:
        return GenRequest(prompt="Once upon a time", n=n, max_tokens=24, temperature=1.0, seed=seed)

    first = [c.text for c in await one(engine, req(11))]
    again = [c.text for c in await one(engine, req(11))]
    other = [c.text for c in await one(engine, req(500))]
    assert first == again
    assert first != other
    assert len(set(first)) > 1
    # sibling 1 of seed 11 is seed 12, and a sequence's tokens do not depend on its batch
    [alone] = await one(engine, req(12, n=1))
    assert alone.text == first[1]


async def test_stop_string_cuts_the_text(engine: LlamaCppEngine) -> None:
    base = GenRequest(prompt="1, 2, 3, 4,", max_tokens=24)
    [full] = await one(engine, base)
    assert len(full.text) > 12
    stop = full.text[len(full.text) // 2 : len(full.text) // 2 + 3]
    [cut] = await one(engine, replace(base, stop=("never appears", stop)))
    assert cut.finish_reason == "stop"
    assert cut.text == full.text[: full.text.index(stop)]
    assert cut.usage.completion_tokens < full.usage.completion_tokens


async def test_max_tokens_ends_with_length(engine: LlamaCppEngine) -> None:
    [c] = await one(engine, GenRequest(prompt="def main():", max_tokens=5))
    assert c.finish_reason == "length"
    assert c.usage.completion_tokens == 5


async def test_logprobs_on_request_from_the_raw_distribution(engine: LlamaCppEngine) -> None:
    prompt = "The capital of France is"
    [greedy] = await one(engine, GenRequest(prompt=prompt, max_tokens=8, top_logprobs=5))
    assert greedy.logprobs is not None
    assert len(greedy.logprobs) == greedy.usage.completion_tokens
    assert "".join(t.token for t in greedy.logprobs) == greedy.text
    for t in greedy.logprobs:
        values = [v for _, v in t.top]
        assert len(values) == 5
        assert values == sorted(values, reverse=True)
        assert t.logprob <= 0 and all(v <= 0 for v in values)
        assert sum(math.exp(v) for v in values) <= 1 + 1e-6
        assert t.token == t.top[0][0] and t.logprob == pytest.approx(values[0])

    hot = GenRequest(prompt=prompt, max_tokens=8, temperature=1.5, seed=4, logprobs=True)
    [sampled] = await one(engine, hot)
    assert sampled.logprobs is not None
    assert all(t.logprob <= 0 and t.top == () for t in sampled.logprobs)

    [plain] = await one(engine, GenRequest(prompt=prompt, max_tokens=8))
    assert plain.logprobs is None
    with pytest.raises(CapabilityMissing, match="20"):
        await one(engine, GenRequest(prompt=prompt, max_tokens=2, top_logprobs=21))


async def test_concurrent_calls_share_batches_and_match_their_solo_runs(
    model_path: Path,
) -> None:
    async with LlamaCppEngine(model_path, n_ctx=512, n_parallel=4) as eng:
        requests = [GenRequest(prompt=p, max_tokens=16) for p in (*RAW_PROMPTS, "Q: 12 * 7?\nA:")]
        solo = [(await one(eng, r))[0] for r in requests]
        steps = eng.stats.decode_steps
        together = await asyncio.gather(*(eng.generate([r]) for r in requests))
        texts = [out[0][0].text for out in together]
        generated = sum(out[0][0].usage.completion_tokens for out in together)
        assert texts == [c.text for c in solo]
        assert eng.stats.max_batch >= 2
        assert eng.stats.decode_steps - steps < generated  # steps were shared


async def test_greedy_matches_the_high_level_api(
    engine: LlamaCppEngine, model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alone or batched, temperature 0 gives the high-level API's text token for token
    (same flash-attention setting, prompt batch size and weight buffers; see llamacpp.py)."""
    import llama_cpp.llama_cpp as low
    from llama_cpp import Llama

    # the high-level API loads weights as the engine does (no repacking where the
    # build's AMX kernels would crash: see default_extra_buffers)
    defaults = low.llama_model_default_params
    extra = default_extra_buffers(low)

    def model_params() -> Any:
        params = defaults()
        params.use_extra_bufts = extra
        return params

    monkeypatch.setattr(low, "llama_model_default_params", model_params)
    llm: Any = Llama(str(model_path), n_ctx=1024, n_threads=2, verbose=False)
    try:
        for prompt in RAW_PROMPTS:

            def high_level(p: str = prompt) -> Any:
                return llm.create_completion(p, max_tokens=32, temperature=0.0)

            expected = in_own_thread(high_level)["choices"][0]["text"]
            [got] = await one(engine, GenRequest(prompt=prompt, max_tokens=32))
            assert got.text == expected, prompt
        for question in QUESTIONS:
            messages = [Message("user", question).to_dict()]

            def high_level_chat(m: list[dict[str, str]] = messages) -> Any:
                return llm.create_chat_completion(m, max_tokens=32, temperature=0.0)

            expected = in_own_thread(high_level_chat)["choices"][0]["message"]["content"]
            req = GenRequest(messages=(Message("user", question),), n=2, max_tokens=32)
            assert [c.text for c in await one(engine, req)] == [expected, expected], question
    finally:
        llm.close()


async def test_weights_load_with_and_without_repacking(model_path: Path) -> None:
    """``extra_buffers=False`` (plain weights, the fallback for builds whose AMX kernels
    crash) decodes a multi-token prompt; so does the default."""
    for extra in (False, None):
        async with LlamaCppEngine(model_path, n_ctx=256, n_parallel=1, extra_buffers=extra) as e:
            [c] = await one(e, GenRequest(prompt="The capital of France is", max_tokens=6))
            assert c.usage.completion_tokens >= 1 and c.text.strip()


async def test_a_repeated_or_extended_prompt_reuses_the_slot(model_path: Path) -> None:
    async with LlamaCppEngine(model_path, n_ctx=512, n_parallel=2) as eng:
        req = GenRequest(prompt="The three primary colors are", max_tokens=8)
        n_prompt = len(eng.tokenize(req))
        [a] = await one(eng, req)
        [b] = await one(eng, req)
        assert (a.usage.prompt_tokens, a.usage.cached_tokens) == (n_prompt, 0)
        assert (b.usage.prompt_tokens, b.usage.cached_tokens) == (1, n_prompt - 1)
        assert b.text == a.text
        follow_up = GenRequest(prompt=f"{req.prompt}{a.text} Then", max_tokens=4)
        [c] = await one(eng, follow_up)
        assert c.usage.cached_tokens >= n_prompt
        assert c.usage.prompt_tokens + c.usage.cached_tokens == len(eng.tokenize(follow_up))


async def test_prompt_longer_than_the_context_is_a_clear_error(engine: LlamaCppEngine) -> None:
    with pytest.raises(EngineError, match="context"):
        await one(engine, GenRequest(prompt="word " * 3000, max_tokens=4))
    # a prompt that fits leaves only the rest of the context to generate into
    req = GenRequest(prompt="word " * (engine.n_ctx - 20), max_tokens=200)
    room = engine.n_ctx - len(engine.tokenize(req))
    assert 0 < room < 200
    [c] = await one(engine, req)
    assert c.usage.completion_tokens <= room
    assert c.finish_reason == "stop" or c.usage.completion_tokens == room


async def test_cancelled_call_frees_its_slots(model_path: Path) -> None:
    async with LlamaCppEngine(model_path, n_ctx=1024, n_parallel=2) as eng:
        long = GenRequest(prompt="Once upon a time", n=2, max_tokens=900, temperature=1.0, seed=1)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(eng.generate([long]), timeout=0.5)
        [c] = await asyncio.wait_for(one(eng, GenRequest(prompt="Hi", max_tokens=3)), 60)
        assert c.usage.completion_tokens >= 1
        assert eng.stats.decode_steps < 900


async def test_closed_engine_refuses_work(model_path: Path) -> None:
    eng = LlamaCppEngine(model_path, n_ctx=256, n_parallel=1)
    await eng.aclose()
    await eng.aclose()  # idempotent
    with pytest.raises(EngineError, match="closed"):
        await one(eng, GenRequest(prompt="Hi", max_tokens=2))


def test_missing_or_corrupt_model_file_is_an_engine_error(model_path: Path, tmp_path: Path) -> None:
    del model_path  # only for its skip when llama-cpp-python is absent
    with pytest.raises(EngineError, match="not found"):
        LlamaCppEngine(tmp_path / "absent.gguf")
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(b"this is not a GGUF file\n" * 64)
    with pytest.raises(EngineError, match="could not load"):
        LlamaCppEngine(corrupt)


def test_missing_llama_cpp_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes `import llama_cpp` fail
    with pytest.raises(MissingExtra, match=r"ponder\[local\]"):
        LlamaCppEngine(FALLBACK_MODEL)


def test_loading_a_model_prints_nothing_unless_verbose(smollm2_path: Path) -> None:
    """llama.cpp's load chatter stays off stderr by default (a subprocess, so that the
    C library's own writes are seen)."""
    import subprocess

    script = (
        "import asyncio, sys\n"
        "from ponder.engines.llamacpp import LlamaCppEngine\n"
        "e = LlamaCppEngine(sys.argv[1], verbose=sys.argv[2] == '1')\n"
        "asyncio.run(e.aclose())\n"
    )
    quiet, loud = (
        subprocess.run(
            [sys.executable, "-c", script, str(smollm2_path), flag],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        for flag in ("0", "1")
    )
    assert quiet.stderr == ""
    assert "llama_model_loader" in loud.stderr
