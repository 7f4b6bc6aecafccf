"""``ponder bank features --hidden`` on the real smollm2-135m model, and the hidden
states' promise: asking for them changes no logprob."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ponder.core.types import GenRequest, Message
from ponder.engines.llamacpp import LlamaCppEngine
from ponder.runs.store import RunStore
from ponder.verifiers.hidden import hidden_arrays

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

SMOLLM2_N_EMBD = 576


def ponder(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "ponder.cli", *args], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"ponder {' '.join(args)} failed:\n{proc.stderr[-3000:]}"
    return proc


def test_hidden_states_of_a_tiny_bank(smollm2_path: Path, tmp_path: Path) -> None:
    bank = tmp_path / "bank.db"
    ponder(
        "eval", "--task", "demo", "--limit", "2", "--strategy", "majority", "--n", "2",
        "--model", str(smollm2_path), "--max-tokens", "48", "--out", str(bank), "--no-progress",
    )  # fmt: skip
    plain = tmp_path / "plain.db"
    shutil.copy(bank, plain)
    # one slot, one problem at a time: both passes make the same decode calls
    common = ("--model", str(smollm2_path), "--no-progress", "--batch", "1")
    ponder("bank", "features", str(plain), *common)
    out = ponder("bank", "features", str(bank), *common, "--hidden")
    assert "features: 4 samples done (0 had them), hidden states for 4 (128 dims" in out.stdout

    with RunStore(bank, create=False) as store:
        projection = store.hidden_projection()
        arrays = hidden_arrays(store.hidden())
        with_hidden = store.features()
    with RunStore(plain, create=False) as store:
        without = store.features()
        assert store.hidden() == {}
    assert with_hidden == without  # the same logprobs, so the same features, exactly
    assert projection is not None and (projection.n_embd, projection.dim) == (576, 128)
    assert arrays.last.shape == (4, 128) and arrays.mean.shape == (4, 128)
    assert np.all(np.isfinite(arrays.last)) and np.all(np.isfinite(arrays.mean))
    assert np.all(np.linalg.norm(arrays.last, axis=1) > 0)
    assert not np.array_equal(arrays.last, arrays.mean)
    again = ponder("bank", "features", str(bank), *common, "--hidden")
    assert "features: 0 samples done (4 had them)" in again.stdout


def test_hidden_states_leave_the_logprobs_unchanged(smollm2_path: Path) -> None:
    """Every scoring row asks for logits anyway, so turning embeddings on for those calls
    computes the same rows: the logprobs are equal bit for bit, several texts batched."""
    request = GenRequest(
        messages=(Message("user", "What is 17 * 23? Think step by step."),), top_logprobs=5
    )
    texts = [
        "17 * 23 = 17 * 20 + 17 * 3 = 340 + 51 = 391.",
        "The answer is 391, because 23 * 17 is 391.",
        "Yes",
    ]

    async def go() -> None:
        engine = LlamaCppEngine(smollm2_path, n_ctx=512, prefix_reuse=False)
        try:
            plain = await engine.continuation_logprobs(request, texts)
            hidden = await engine.continuation_logprobs(request, texts, hidden=True)
        finally:
            await engine.aclose()
        for a, b in zip(plain, hidden, strict=True):
            assert a.hidden is None
            assert a.logprobs == b.logprobs
            assert a.usage == b.usage  # no token more
            if len(b.logprobs) < 2:
                assert b.hidden is None  # no scored row of its own
                continue
            assert b.hidden is not None and b.hidden.rows == len(b.logprobs) - 1
            assert b.hidden.last.shape == b.hidden.mean.shape == (SMOLLM2_N_EMBD,)
            assert np.all(np.isfinite(b.hidden.last)) and np.all(np.isfinite(b.hidden.mean))
        first, second = hidden[0].hidden, hidden[1].hidden
        assert first is not None and second is not None
        assert not np.array_equal(first.mean, second.mean)

    asyncio.run(go())


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("max_tokens", [8, 160])
def test_generated_hidden_states_are_the_rows_a_prefill_scores(
    smollm2_path: Path, max_tokens: int
) -> None:
    """A greedy generation's hidden states, read while decoding, against the prefill of
    its own tokens: the same rows (one per token but the last, whether the model ended
    the text or the limit did), equal up to how llama.cpp's kernels round a one-token
    row against a many-token one; and the completion's tokens and logprobs unchanged."""
    question = (Message("user", "What is 17 * 23? Answer in one short sentence."),)
    request = GenRequest(messages=question, max_tokens=max_tokens, top_logprobs=5)

    async def go() -> None:
        engine = LlamaCppEngine(smollm2_path, n_ctx=512, prefix_reuse=False)
        try:
            (plain,) = (await engine.generate([request]))[0]
            (hidden,) = (await engine.generate([dataclasses.replace(request, hidden=True)]))[0]
            scored = await engine.continuation_logprobs(request, [hidden.text], hidden=True)
        finally:
            await engine.aclose()
        assert plain.hidden is None
        assert (hidden.text, hidden.logprobs) == (plain.text, plain.logprobs)
        assert (hidden.finish_reason == "length") == (max_tokens == 8)
        assert hidden.hidden is not None and scored[0].hidden is not None
        assert hidden.hidden.rows == len(hidden.logprobs or ()) - 1 == scored[0].hidden.rows
        assert _cosine(hidden.hidden.mean, scored[0].hidden.mean) > 0.999
        assert _cosine(hidden.hidden.last, scored[0].hidden.last) > 0.999

    asyncio.run(go())


def test_eval_captures_hidden_states_while_sampling(smollm2_path: Path, tmp_path: Path) -> None:
    """``ponder eval --features --hidden`` stores every sample's hidden states, close to
    what ``ponder bank features --hidden`` finds for the same samples by prefill."""
    bank = tmp_path / "bank.db"
    ponder(
        "eval", "--task", "demo", "--limit", "2", "--strategy", "majority", "--n", "2",
        "--model", str(smollm2_path), "--max-tokens", "48", "--out", str(bank), "--no-progress",
        "--features", "--hidden",
    )  # fmt: skip
    copy = tmp_path / "copy.db"
    with sqlite3.connect(bank) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
        dst.execute("DELETE FROM hidden")
    ponder("bank", "features", str(copy), "--model", str(smollm2_path), "--no-progress",
           "--hidden")  # fmt: skip
    with RunStore(bank, create=False) as store:
        captured = store.hidden()
        projection = store.hidden_projection()
    with RunStore(copy, create=False) as store:
        prefilled = store.hidden()
        assert store.hidden_projection() == projection
    assert projection is not None and (projection.n_embd, projection.dim) == (576, 128)
    assert sorted(captured) == sorted(prefilled) and len(captured) == 2
    for pid, samples in captured.items():
        assert sorted(samples) == sorted(prefilled[pid]) == [0, 1]
        for i, sample in samples.items():
            again = prefilled[pid][i]
            mean = sample.mean.astype(np.float64)
            assert _cosine(mean, again.mean.astype(np.float64)) > 0.98


def test_weighted_majority_by_a_hidden_state_probe_scores_each_sample_by_its_own_rows(
    smollm2_path: Path, tmp_path: Path
) -> None:
    """``--scorer hidden:PATH`` live: the samples are drawn with their hidden states, and
    each sample's score is the probe's probability on them, as on the rows a prefill of
    the same text gives (up to the kernels' rounding); no token is spent on scoring."""
    from ponder.core.context import Context
    from ponder.strategies.weighted_majority import WeightedMajority
    from ponder.tasks import make_task
    from ponder.tasks.select import pick_problems
    from ponder.verifiers.hidden import Projection
    from ponder.verifiers.hidden_probe import HiddenProbe

    projection = Projection(SMOLLM2_N_EMBD, 16)
    rng = np.random.default_rng(0)
    probe = HiddenProbe(
        projection=projection,
        features=(),
        mean=tuple(rng.normal(size=32).tolist()),
        scale=(4.0,) * 32,
        coef=tuple(rng.normal(size=32).tolist()),
        intercept=0.0,
    )
    path = tmp_path / "probe.json"
    probe.save(path)
    task = make_task("demo")
    problem = pick_problems(task, limit=1)[0]

    async def go() -> None:
        engine = LlamaCppEngine(smollm2_path, n_ctx=512)
        try:
            ctx = Context(engine, task, max_tokens=48, seed=0)
            result = await WeightedMajority(n=3, scorer=f"hidden:{path}")(problem, ctx)
            request = GenRequest(messages=task.messages(problem))
            texts = [c.text for c in result.candidates]
            scored = await engine.continuation_logprobs(request, texts, hidden=True)
        finally:
            await engine.aclose()
        assert ctx.ledger.total().calls == 1  # one sampling call, nothing to score
        scores = [c.score for c in result.candidates]
        assert all(s is not None and 0 < s < 1 for s in scores)
        assert len(set(scores)) == 3
        for cand, again in zip(result.candidates, scored, strict=True):
            assert again.hidden is not None
            row = probe.row(projection.project(again.hidden), {})
            assert cand.score == pytest.approx(float(probe.probabilities(row[None])[0]), abs=0.02)

    asyncio.run(go())


def test_weighted_stop_by_a_hidden_state_probe_runs_from_the_cli(
    smollm2_path: Path, tmp_path: Path
) -> None:
    """``ponder eval --strategy weighted_stop --scorer hidden:PATH`` on the real model:
    every record says how many samples it drew and why it stopped, and its candidates
    carry the probe's scores; the scorer spends no call."""
    import json

    from ponder.verifiers.hidden import Projection
    from ponder.verifiers.hidden_probe import HiddenProbe

    rng = np.random.default_rng(1)
    path = tmp_path / "probe.json"
    HiddenProbe(
        projection=Projection(SMOLLM2_N_EMBD, 16),
        features=(),
        mean=(0.0,) * 32,
        scale=(1.0,) * 32,
        coef=tuple((0.1 * rng.normal(size=32)).tolist()),
        intercept=0.0,
    ).save(path)
    out = tmp_path / "stop.db"
    ponder(
        "eval", "--task", "demo", "--limit", "2", "--strategy", "weighted_stop", "--n", "4",
        "--scorer", f"hidden:{path}", "-o", "tau=0.9", "-o", "batch=2",
        "--model", str(smollm2_path), "--max-tokens", "32", "--out", str(out), "--no-progress",
    )  # fmt: skip
    with RunStore(out, create=False) as store:
        records = store.records()
    assert len(records) == 2
    for record in records:
        assert record.ok
        assert record.meta["samples"] == len(record.candidates) in (2, 4)
        assert record.meta["scorer"] == f"hidden:{path}"
        assert all(c.score is not None and 0 < c.score < 1 for c in record.candidates)
        # one call per batch of two: the probe generates nothing
        assert record.usage.calls == len(record.candidates) // 2
        assert json.dumps(record.meta["history"])


def test_beam_search_by_a_hidden_state_probe_scores_each_step_by_its_own_rows(
    smollm2_path: Path, tmp_path: Path
) -> None:
    """``--verifier hidden:PATH`` in a search on the real model: every step is drawn with
    its hidden states (continuation requests included), and a first step's score is the
    probe's probability on the rows a prefill of that step gives; the verifier spends no
    call. The steps end at the token limit (a delimiter that never comes): a step cut at
    a stop string keeps the rows of every token drawn, which a prefill of the cut text
    does not have."""
    from ponder.core.context import Context
    from ponder.strategies import make_strategy
    from ponder.tasks import make_task
    from ponder.tasks.select import pick_problems
    from ponder.verifiers.hidden import Projection
    from ponder.verifiers.hidden_probe import HiddenProbe

    projection = Projection(SMOLLM2_N_EMBD, 16)
    rng = np.random.default_rng(2)
    probe = HiddenProbe(
        projection=projection,
        features=(),
        mean=tuple(rng.normal(size=32).tolist()),
        scale=(4.0,) * 32,
        coef=tuple(rng.normal(size=32).tolist()),
        intercept=0.0,
    )
    path = tmp_path / "probe.json"
    probe.save(path)
    task = make_task("demo")
    problem = pick_problems(task, limit=1)[0]

    async def go() -> None:
        engine = LlamaCppEngine(smollm2_path, n_ctx=1024)
        try:
            ctx = Context(engine, task, max_tokens=96, seed=0)
            search = make_strategy(
                "beam_search",
                {"n": 2, "width": 1, "max_steps": 3, "step_tokens": 32,
                 "delimiter": "@@@@", "verifier": f"hidden:{path}"},
            )  # fmt: skip
            result = await search(problem, ctx)
            first = [n for n in result.meta["tree"] if n["depth"] == 1]
            request = GenRequest(messages=task.messages(problem))
            scored = await engine.continuation_logprobs(
                request, [n["step"] for n in first], hidden=True
            )
        finally:
            await engine.aclose()
        assert {e.kind for e in ctx.ledger.events} == {"generate"}
        assert all(0 < (c.score or 0) < 1 for c in result.candidates)
        checked = 0
        for node, again in zip(first, scored, strict=True):
            if node["score"] is None or again.hidden is None:
                continue  # a step the model ended at once has no rows
            row = probe.row(projection.project(again.hidden), {})
            assert node["score"] == pytest.approx(
                float(probe.probabilities(row[None])[0]), abs=0.02
            )
            checked += 1
        assert checked >= 1

    asyncio.run(go())
