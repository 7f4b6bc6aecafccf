"""Adaptive stopping on the real smollm2-135m model: where the stopping rules stop and
what the stops cost, not correctness (the model is far too weak to be right). The
embedded engine's confidence stop must cut a sequence exactly where
``ConfidenceStop.cut`` says on the same sequence generated without it."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ponder.core.budget import Ledger
from ponder.core.types import ConfidenceStop, GenRequest, Result, Usage
from ponder.strategies import AdaptiveConsistency, Context, DeepConf, majority_vote
from ponder.tasks import DemoTask

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

if importlib.util.find_spec("llama_cpp") is None:
    pytest.skip(
        "llama-cpp-python is not installed: pip install 'ponder[local]'", allow_module_level=True
    )

from ponder.engines.llamacpp import LlamaCppEngine  # noqa: E402

MAX_TOKENS = 32
WINDOW = 8


@pytest.fixture(scope="module")
def engine(smollm2_path: Path) -> Iterator[LlamaCppEngine]:
    # every prompt prefilled in full, so a seed gives the same tokens on every request
    eng = LlamaCppEngine(smollm2_path, n_ctx=512, n_parallel=4, prefix_reuse=False)
    yield eng
    asyncio.run(eng.aclose())


def context(engine: LlamaCppEngine) -> Context:
    return Context(engine=engine, task=DemoTask(), ledger=Ledger(), max_tokens=MAX_TOKENS, seed=7)


def assert_cost_adds_up(res: Result, ctx: Context) -> None:
    assert res.usage == ctx.ledger.total()
    assert res.usage == sum((c.usage for c in res.candidates), Usage())
    assert all(c.usage.completion_tokens <= MAX_TOKENS for c in res.candidates)


async def test_confidence_stop_cuts_where_the_rule_says(engine: LlamaCppEngine) -> None:
    problem = DemoTask().load(limit=1)[0]
    plain = GenRequest(
        messages=DemoTask().messages(problem),
        n=2,
        max_tokens=MAX_TOKENS,
        temperature=0.8,
        seed=11,
        top_logprobs=5,
    )
    (free,) = await engine.generate([plain])
    assert all(c.finish_reason != "confidence" for c in free)
    confs = [t.confidence for t in free[0].logprobs or ()]
    assert len(confs) > WINDOW, "the first sample should run past one window"
    # a threshold just above the lowest window mean before the last token: the first
    # sample is cut before its end
    means = [float(np.mean(confs[t - WINDOW : t])) for t in range(WINDOW, len(confs))]
    rule = ConfidenceStop(WINDOW, min(means) + 1e-6)
    (stopped,) = await engine.generate([GenRequest(**{**plain.__dict__, "confidence_stop": rule})])
    for before, after in zip(free, stopped, strict=True):
        expected = rule.cut([t.confidence for t in before.logprobs or ()])
        if expected is None:
            assert after.text == before.text and after.finish_reason == before.finish_reason
            continue
        assert after.finish_reason == "confidence" and after.stop_sequence is None
        assert after.usage.completion_tokens == expected == len(after.logprobs or ())
        assert before.text.startswith(after.text)
        assert after.logprobs == (before.logprobs or ())[:expected]
    first = stopped[0]
    assert first.finish_reason == "confidence"
    assert WINDOW <= first.usage.completion_tokens < free[0].usage.completion_tokens <= MAX_TOKENS


async def test_adaptive_consistency_stops_by_its_rule_or_the_cap(engine: LlamaCppEngine) -> None:
    problem = DemoTask().load(limit=1)[0]
    ctx = context(engine)
    res = await AdaptiveConsistency(max_n=6, batch=2)(problem, ctx)
    meta = res.meta
    assert meta["samples"] == len(res.candidates) <= 6
    assert len(ctx.ledger.events) == len(meta["history"])  # one request per batch
    assert meta["history"][-1]["samples"] == meta["samples"]
    if meta["stop_reason"] == "cap reached":
        assert meta["samples"] == 6 and all(h["p"] < 0.95 for h in meta["history"])
    else:
        assert meta["stop_reason"].startswith("beta: P(majority stays)")
        assert meta["history"][-1]["p"] >= 0.95
    assert (res.answer, dict(res.votes)) == majority_vote([c.answer for c in res.candidates])
    assert_cost_adds_up(res, ctx)


async def test_deepconf_online_cuts_traces_below_a_fixed_threshold(engine: LlamaCppEngine) -> None:
    problem = DemoTask().load(limit=1)[0]
    ctx = context(engine)
    # no window of this model's tokens is that confident: every trace is cut once its
    # first window fills, so nothing votes and sampling runs to the cap
    strategy = DeepConf(online=True, threshold=100.0, window=WINDOW, top_logprobs=5, max_n=4)
    res = await strategy(problem, ctx)
    cut = [c for c in res.candidates if c.finish_reason == "confidence"]
    assert res.meta["stopped_early"] == len(cut) >= 1
    assert all(c.usage.completion_tokens == WINDOW < MAX_TOKENS for c in cut)
    assert res.meta["stopped_tokens"] == WINDOW * len(cut)
    assert res.meta["samples"] == 4 and res.meta["stop_reason"] == "cap reached"
    assert res.meta["voted"] == [] and res.answer is None
    assert_cost_adds_up(res, ctx)


async def test_deepconf_online_sets_its_threshold_from_the_warmup(engine: LlamaCppEngine) -> None:
    problem = DemoTask().load(limit=1)[0]
    ctx = context(engine)
    strategy = DeepConf(
        online=True, warmup=4, keep=0.5, window=WINDOW, top_logprobs=5, max_n=8, batch=2
    )
    res = await strategy(problem, ctx)
    meta = res.meta
    warm = [c.score for c in res.candidates[:4]]
    assert meta["warmup_confidences"] == warm
    assert meta["threshold"] == pytest.approx(float(np.percentile(warm, 50)))
    later = res.candidates[4:]
    cut = [c for c in later if c.finish_reason == "confidence"]
    assert meta["stopped_early"] == len(cut)
    assert all(WINDOW <= c.usage.completion_tokens < MAX_TOKENS for c in cut)
    # a cut trace's lowest group is below the threshold; voters are at or above it
    assert all(c.score is not None and c.score < meta["threshold"] for c in cut)
    assert all(res.candidates[i].score >= meta["threshold"] for i in meta["voted"])
    assert meta["samples"] == len(res.candidates) <= 8
    assert meta["stop_reason"] == "cap reached" or meta["stop_reason"].startswith("consensus")
    assert_cost_adds_up(res, ctx)
