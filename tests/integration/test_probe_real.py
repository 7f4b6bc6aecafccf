"""The probe verifier on real hidden states: smollm2-135m through LlamaCppEngine.

A tiny synthetic set stands in for eval rollouts: right solutions do the sum plainly,
wrong ones hedge and give another number. The surface difference is deliberate: the
test checks that the pipeline (embedding with prefix reuse, training, saving, loading
through the registry, scoring through a Context) works on a real model, not how well
a 135M model's states predict correctness.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ponder.analysis.probe_train import Rollout, mc_step_labels, train_probe
from ponder.core.budget import Ledger
from ponder.core.types import Completion, GenRequest, Message, Problem, Usage
from ponder.engines.llamacpp import LlamaCppEngine
from ponder.strategies import Context
from ponder.verifiers.probe import ProbeVerifier, embed_requests
from ponder.verifiers.registry import make_scorer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

SMOLLM2_DIM = 576


class SumTask:
    name = "sums"

    def load(self, limit=None):
        return []

    def messages(self, problem):
        return (Message("user", problem.question),)

    def extract(self, text):
        tail = text.rpartition("answer:")[2].strip().rstrip(".")
        return tail or None

    def is_correct(self, predicted, problem):
        return predicted == problem.answer


def sum_problem(i: int) -> Problem:
    a, b = 3 + i, 11 + 2 * i
    return Problem(f"s{i:02d}", f"What is {a} plus {b}?", str(a + b))


def right(p: Problem, k: int) -> str:
    a, b = p.question.removeprefix("What is ").rstrip("?").split(" plus ")
    opener = ("We add the numbers.", "Adding them up.")[k]
    return f"{opener} {a} plus {b} makes {p.answer}.\n\nSo the answer: {p.answer}"


def wrong(p: Problem, k: int) -> str:
    guess = int(p.answer or 0) + 3 + k
    return f"Hmm, I am not sure, maybe {guess}? Hard to say.\n\nSo the answer: {guess}"


def rollouts(problems: int = 16) -> list[Rollout]:
    out = []
    for i in range(problems):
        p = sum_problem(i)
        for k in range(2):
            out.append(Rollout(p, right(p, k), p.answer, True, model="smollm2-135m"))
            out.append(Rollout(p, wrong(p, k), None, False, model="smollm2-135m"))
    return out


@pytest.fixture(scope="module")
def engine(smollm2_path: Path) -> Iterator[LlamaCppEngine]:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed: pip install 'ponder[local]'")
    eng = LlamaCppEngine(smollm2_path, n_ctx=1024, n_parallel=2)
    yield eng
    asyncio.run(eng.aclose())


async def test_embeddings_are_hidden_states_and_reuse_a_prefix(engine: LlamaCppEngine) -> None:
    assert engine.capabilities.embeddings
    msgs = (Message("user", "What is 4 plus 9?"),)
    requests = [
        GenRequest(messages=msgs, continuation="Four plus nine"),
        GenRequest(messages=msgs, continuation="Four plus nine is thirteen."),
    ]
    ledger = Ledger()
    first = await embed_requests(engine, requests, ledger)
    again = await embed_requests(engine, requests[:1], ledger)
    assert first.shape == (2, SMOLLM2_DIM) and first.dtype == np.float32
    assert np.all(np.isfinite(first))
    assert not np.allclose(first[0], first[1])
    np.testing.assert_allclose(again[0], first[0], rtol=1e-5, atol=1e-5)
    assert [e.usage.calls for e in ledger.events] == [2, 1]
    # the longer prefix extends the shorter one's cells instead of prefilling again
    assert ledger.events[0].usage.cached_tokens > 0


async def test_train_save_load_and_score_through_a_context(
    engine: LlamaCppEngine, tmp_path: Path
) -> None:
    data = rollouts()
    task = SumTask()
    report = await train_probe(data, task=task, engine=engine, heldout=0.25, seed=0)
    assert report.heldout_problems == 4 and report.heldout_rollouts == 16
    assert report.heldout_outcome_auc > 0.9, report.to_dict()
    assert report.feature_usage.calls == 2 * len(data)
    assert report.feature_usage.cached_tokens > 0
    assert report.probe.model == engine.name and report.probe.dim == SMOLLM2_DIM

    path = report.probe.save(tmp_path / "probe.npz")
    probe = make_scorer(f"probe:{path}")
    assert isinstance(probe, ProbeVerifier)
    held = sum_problem(int(probe.heldout_ids[0][1:]))
    ctx = Context(engine=engine, task=task, ledger=Ledger())
    comps = [
        Completion(right(held, 0), "stop", Usage()),
        Completion(wrong(held, 1), "stop", Usage()),
    ]
    good, bad = await ctx.score(held, comps, probe)
    assert 0.0 <= bad.value < good.value <= 1.0
    assert len(good.steps) == 2
    (event,) = ctx.ledger.events
    assert event.kind == "score" and event.usage.calls == 4
    assert event.usage.prompt_tokens > 0


async def test_mc_labels_sample_real_continuations(engine: LlamaCppEngine) -> None:
    p = sum_problem(0)
    bad = Rollout(p, wrong(p, 0), None, False)
    good = Rollout(p, right(p, 0), p.answer, True)
    ledger = Ledger()
    labels = await mc_step_labels(
        engine, SumTask(), [good, bad], [[1, 2], [1, 2]], k=2, max_tokens=24, ledger=ledger
    )
    assert labels[0] == [1.0, 1.0]  # a correct rollout's prefixes reach the answer
    assert labels[1][1] == 0.0 and labels[1][0] in (0.0, 1.0)
    (event,) = ledger.events
    assert event.kind == "generate" and event.usage.calls == 1
    assert 0 < event.usage.completion_tokens <= 2 * 24
