"""The sequential strategies on the real smollm2-135m model: structure, not correctness
(the model is far too weak to be right); tiny token limits keep it fast."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

from ponder.core.budget import Ledger
from ponder.core.types import Usage
from ponder.strategies import BudgetForcing, Context, Revise
from ponder.tasks import DemoTask

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

if importlib.util.find_spec("llama_cpp") is None:
    pytest.skip(
        "llama-cpp-python is not installed: pip install 'ponder[local]'", allow_module_level=True
    )

from ponder.engines.llamacpp import LlamaCppEngine  # noqa: E402


@pytest.fixture(scope="module")
def engine(smollm2_path: Path) -> Iterator[LlamaCppEngine]:
    eng = LlamaCppEngine(smollm2_path, n_ctx=1024, n_parallel=4)
    yield eng
    asyncio.run(eng.aclose())


def context(engine: LlamaCppEngine, max_tokens: int) -> Context:
    return Context(engine=engine, task=DemoTask(), ledger=Ledger(), max_tokens=max_tokens, seed=1)


async def test_revise_runs_two_chains_of_two(engine: LlamaCppEngine) -> None:
    problem = DemoTask().load(limit=1)[0]
    ctx = context(engine, max_tokens=24)
    res = await Revise(n=4, chains=2, context_attempts=1)(problem, ctx)

    assert len(res.candidates) == 4
    assert res.meta["chains"] == [[0, 2], [1, 3]]
    assert [a["depth"] for a in res.meta["attempts"]] == [0, 0, 1, 1]
    assert len(ctx.ledger.events) == 2  # one call per depth
    assert all(c.usage.completion_tokens <= 24 for c in res.candidates)
    assert res.usage.completion_tokens > 0
    # depth 0 is one request sampled twice, depth 1 two requests: three engine calls
    assert res.usage.calls == 3
    assert res.usage == sum((c.usage for c in res.candidates), Usage())
    assert res.usage == ctx.ledger.total()
    # revision prompts hold the earlier attempt, so they are longer than the first prompt
    first = res.candidates[0].usage
    revised = res.candidates[2].usage
    assert revised.prompt_tokens + revised.cached_tokens > first.prompt_tokens + first.cached_tokens


async def test_budget_forcing_caps_thinking_and_ends_with_an_answer(engine: LlamaCppEngine) -> None:
    problem = DemoTask().load(limit=1)[0]
    ctx = context(engine, max_tokens=32)
    strategy = BudgetForcing(max_thinking_tokens=12, num_waits=1, max_answer_tokens=12)
    res = await strategy(problem, ctx)

    meta = res.meta
    assert meta["thinking_tokens"] <= 12
    assert meta["waits_used"] in (0, 1)
    # an answer was extracted, or the run went on to the forced-answer call
    assert res.answer is not None or meta["forced_answer"]
    (cand,) = res.candidates
    assert cand.text.startswith("<think>") and "</think>\n\nFinal answer:" in cand.text
    if meta["forced_answer"]:
        assert "The final answer is \\boxed{" in cand.text
    calls = 1 + meta["waits_used"] + 1 + int(meta["forced_answer"])
    assert [e.label for e in ctx.ledger.events].count("think") == 1 + meta["waits_used"]
    assert res.usage.calls == calls
    assert res.usage.completion_tokens == meta["thinking_tokens"] + meta["answer_tokens"]
    assert res.usage == cand.usage == ctx.ledger.total()
    assert res.usage.prompt_tokens > 0
