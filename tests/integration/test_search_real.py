"""Step-level search on real engines with a real verifier (the step judge on the same
model): the embedded smollm2-135m, and a llama.cpp server fed a client-side template.
Structure and accounting, not correctness (the model is far too weak)."""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ponder.core.budget import Ledger
from ponder.strategies import Context, make_strategy
from ponder.tasks import DemoTask

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

if importlib.util.find_spec("llama_cpp") is None:
    pytest.skip(
        "llama-cpp-python is not installed: pip install 'ponder[local]'", allow_module_level=True
    )

from ponder.engines.llamacpp import LlamaCppEngine  # noqa: E402
from ponder.engines.openai import OpenAIEngine  # noqa: E402

OPTIONS = {"verifier": "judge:step", "max_steps": 3, "step_tokens": 24}


def _context(engine: object, max_tokens: int = 64) -> Context:
    return Context(engine=engine, task=DemoTask(), ledger=Ledger(), max_tokens=max_tokens, seed=3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "extra"),
    [
        ("beam_search", {"n": 4, "width": 2}),
        ("lookahead", {"n": 2, "width": 1, "lookahead": 1}),
        ("dvts", {"n": 4, "width": 2}),
        ("mcts", {"iterations": 3, "width": 2}),
    ],
)
async def test_search_on_the_embedded_engine(smollm2_path: Path, name: str, extra: dict) -> None:
    problem = DemoTask().load(limit=1)[0]
    async with LlamaCppEngine(smollm2_path, n_ctx=1024, n_parallel=4) as eng:
        ctx = _context(eng)
        result = await make_strategy(name, {**OPTIONS, **extra})(problem, ctx)
    tree = result.meta["tree"]
    assert result.candidates, "a search always ends with at least one solution"
    assert all(c.text for c in result.candidates)
    assert len(tree) > 1 and tree[0]["parent"] is None
    assert all(n["depth"] <= OPTIONS["max_steps"] for n in tree)
    # generation and verifier both counted; the result's cost is the ledger's
    assert result.usage == ctx.ledger.total()
    assert ctx.ledger.total("score").prompt_tokens > 0
    assert result.meta["steps_scored"] > 0
    # after the first round, expansions continue a slot's cells instead of prefilling
    expansions = [e for e in ctx.ledger.events if e.kind == "generate"]
    if len(expansions) > 1:
        later = expansions[1:]
        assert sum(e.usage.cached_tokens for e in later) > sum(e.usage.prompt_tokens for e in later)


async def test_beam_search_costs_more_prefill_without_reuse(smollm2_path: Path) -> None:
    problem = DemoTask().load(limit=1)[0]
    prefilled = {}
    for reuse in (True, False):
        async with LlamaCppEngine(
            smollm2_path, n_ctx=1024, n_parallel=4, prefix_reuse=reuse
        ) as eng:
            ctx = _context(eng)
            await make_strategy("beam_search", {**OPTIONS, "n": 4, "width": 2})(problem, ctx)
            prefilled[reuse] = ctx.ledger.total("generate").prompt_tokens
    assert prefilled[False] > prefilled[True]


@pytest.fixture
async def server_engine(llama_server_url: str, smollm2_path: Path) -> AsyncIterator[OpenAIEngine]:
    from llama_cpp import Llama

    template = Llama(str(smollm2_path), vocab_only=True, verbose=False).metadata[
        "tokenizer.chat_template"
    ]
    eng = OpenAIEngine(
        "smollm2", base_url=llama_server_url, timeout=60, max_retries=1, chat_template=template
    )
    yield eng
    await eng.aclose()


async def test_beam_search_on_a_server(server_engine: OpenAIEngine) -> None:
    problem = DemoTask().load(limit=1)[0]
    ctx = _context(server_engine, max_tokens=48)
    result = await make_strategy("beam_search", {**OPTIONS, "n": 2, "width": 1})(problem, ctx)
    assert result.candidates
    assert ctx.ledger.total("score").calls > 0
    assert result.usage == ctx.ledger.total()
