"""How engines count a request's prompt tokens before running it (for token budgets)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from tests.runs._toys import ToyTask

from ponder.core.engine import (
    MESSAGE_ALLOWANCE_TOKENS,
    PROMPT_ALLOWANCE_TOKENS,
    Capabilities,
    prompt_token_bound,
    text_token_bound,
)
from ponder.core.types import Completion, GenRequest, Message
from ponder.engines.openai import OpenAIEngine
from ponder.engines.pool import EnginePool
from ponder.engines.scripted import ScriptedEngine
from ponder.runs.replay import ReplayEngine, SampleBank
from ponder.runs.runner import evaluate
from ponder.strategies import make_strategy

CHAT = (Message("system", "Be brief."), Message("user", "Wie viel ist 2·3? 🙂"))


def test_the_text_bound_is_utf8_bytes_plus_the_template_allowances() -> None:
    text = sum(len(m.role.encode()) + len(m.content.encode()) for m in CHAT)
    assert text == 6 + 9 + 4 + 23  # "·" is 2 bytes, the emoji 4
    assert text_token_bound(GenRequest(messages=CHAT)) == (
        text + PROMPT_ALLOWANCE_TOKENS + 2 * MESSAGE_ALLOWANCE_TOKENS
    )
    go_on = GenRequest(messages=CHAT, continuation="So")
    assert text_token_bound(go_on) == text + 2 + PROMPT_ALLOWANCE_TOKENS + 3 * (
        MESSAGE_ALLOWANCE_TOKENS
    )
    raw = GenRequest(prompt="é", continuation="!")
    assert text_token_bound(raw) == 3 + PROMPT_ALLOWANCE_TOKENS


class Plain:
    """An engine that cannot count: the text bound applies."""

    def __init__(self, native_n: bool) -> None:
        self.capabilities = Capabilities(native_n=native_n)
        self.name = "plain"

    async def generate(self, requests: object) -> list[list[Completion]]:
        raise AssertionError("not called")


def test_an_engine_that_cannot_count_is_bounded_once_per_prefill() -> None:
    request = GenRequest(messages=CHAT, n=3)
    once = text_token_bound(request)
    assert prompt_token_bound(Plain(native_n=True), request) == once  # type: ignore[arg-type]
    assert prompt_token_bound(Plain(native_n=False), request) == 3 * once  # type: ignore[arg-type]


async def test_the_scripted_engine_counts_exactly_what_it_charges() -> None:
    for native_n in (True, False):
        engine = ScriptedEngine(["a b c"], native_n=native_n)
        request = GenRequest(messages=CHAT, n=3, continuation="so far")
        (out,) = await engine.generate([request])
        charged = sum(c.usage.prompt_tokens for c in out)
        assert prompt_token_bound(engine, request) == charged


def _server(choices_per_response: int, prompt_tokens: int) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        n = min(json.loads(request.content).get("n", 1), choices_per_response)
        choices = [
            {"index": i, "message": {"content": "ok"}, "finish_reason": "stop"} for i in range(n)
        ]
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": n}
        return httpx.Response(200, json={"choices": choices, "usage": usage})

    return httpx.MockTransport(handle)


async def test_a_server_is_bounded_per_sample_until_it_has_served_n_at_once() -> None:
    request = GenRequest(messages=CHAT, n=4)
    once = text_token_bound(request)
    native = OpenAIEngine("m", base_url="http://x/v1", transport=_server(8, 30))
    assert native.prompt_tokens(request) == 4 * once  # not known yet to honour n
    (out,) = await native.generate([request])
    assert sum(c.usage.prompt_tokens for c in out) == 30 <= 4 * once
    assert native.prompt_tokens(request) == once
    # a server that ignores n prefills the prompt once per sample
    single = OpenAIEngine("m", base_url="http://x/v1", transport=_server(1, 30))
    (out,) = await single.generate([request])
    assert sum(c.usage.prompt_tokens for c in out) == 4 * 30 <= single.prompt_tokens(request)
    assert single.prompt_tokens(request) == 4 * once


def test_a_server_rendering_its_chats_here_is_bounded_on_the_rendered_prompt() -> None:
    engine = OpenAIEngine("m", base_url="http://x/v1", chat_template="chatml")
    request = GenRequest(messages=CHAT, continuation="So")
    rendered = engine.render_chat(CHAT) + "So"
    assert engine.prompt_tokens(request) == len(rendered.encode()) + PROMPT_ALLOWANCE_TOKENS


async def test_a_pool_takes_the_largest_of_its_members_counts() -> None:
    words = ScriptedEngine(["x"], native_n=True)
    per_sample = ScriptedEngine(["x"], native_n=False)
    pool = EnginePool([words, per_sample])
    request = GenRequest(messages=CHAT, n=2)
    assert pool.prompt_tokens(request) == 2 * words.prompt_tokens(request)
    await pool.aclose()


@pytest.mark.integration
async def test_the_embedded_engine_counts_its_prefill_exactly_under_the_text_bound(
    smollm2_path: object,
) -> None:
    from ponder.engines.llamacpp import LlamaCppEngine

    engine = LlamaCppEngine(str(smollm2_path), n_ctx=512, n_parallel=1, prefix_reuse=False)
    try:
        texts = ["What is 17*23?", "Wie viel ist 2·3? 🙂 ¿Y 4÷2?", "三加四等于几？", "x" * 300]
        for text in texts:
            request = GenRequest(messages=(Message("user", text),), max_tokens=1, n=2)
            counted = engine.prompt_tokens(request)
            assert counted <= text_token_bound(request)
            (out,) = await engine.generate([request])
            assert sum(c.usage.prompt_tokens + c.usage.cached_tokens for c in out[:1]) == counted
            assert sum(c.usage.prompt_tokens for c in out) == counted
    finally:
        await engine.aclose()


async def test_a_replay_counts_the_banks_prompt_and_the_models_for_the_rest(
    tmp_path: Path,
) -> None:
    task = ToyTask(size=1)
    (problem,) = task.load()
    await evaluate(
        task=task, problems=[problem], strategy=make_strategy("majority", {"n": 2}),
        engine=ScriptedEngine(["answer: 1"]), store=tmp_path / "bank.db", max_tokens=8,
        progress=False,
    )  # fmt: skip
    bank = SampleBank.from_store(tmp_path / "bank.db")
    (recorded,) = bank.samples.values()
    prompt = recorded[0].usage.prompt_tokens
    model = ScriptedEngine(["answer: 9"], native_n=False)
    replay = ReplayEngine(bank, task, inner=model, extend=True).for_problem(problem)
    request = GenRequest(
        messages=task.messages(problem), n=3, temperature=0.7, top_p=0.95, max_tokens=8
    )
    words = model.prompt_tokens(replace(request, n=1))
    # two served from the bank (its prompt once), one drawn by the model (its prompt)
    assert replay.prompt_tokens(request) == prompt + words
    (out,) = await replay.generate([request])
    assert sum(c.usage.prompt_tokens for c in out) == prompt + words
    # the bank is spent: all from the model, which prefills once per sample
    assert replay.prompt_tokens(request) == 3 * words
    judge = GenRequest(messages=(Message("user", "is it right?"),))
    assert replay.prompt_tokens(judge) == model.prompt_tokens(judge)


@pytest.mark.integration
async def test_a_budget_on_the_embedded_engine_holds_with_prefix_reuse(
    smollm2_path: object,
) -> None:
    from ponder.core.budget import Ledger
    from ponder.engines.llamacpp import LlamaCppEngine
    from ponder.strategies import Context, make_strategy
    from ponder.tasks import make_task

    engine = LlamaCppEngine(str(smollm2_path), n_ctx=1024, n_parallel=2)
    task = make_task("demo")
    try:
        problem = task.load(1)[0]
        ctx = Context(engine=engine, task=task, ledger=Ledger(), max_tokens=24, seed=0)
        # four revisions, each prompt holding the last attempt: more than 300 tokens in all
        with ctx.ledger.budget(total_tokens=300):
            result = await make_strategy("revise", {"n": 4})(problem, ctx)
        assert 0 < result.usage.total_tokens <= 300
        assert result.meta["stopped"] == "budget" and 1 <= len(result.candidates) < 4
    finally:
        await engine.aclose()
