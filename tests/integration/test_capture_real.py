"""``ponder eval --features`` and ``--scorer combined:PATH`` on the real smollm2-135m
model: the features captured while sampling against those ``ponder bank features``
computes by prefill for the same samples, and best-of-n ranked by a combined model
over them."""

from __future__ import annotations

import math
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from ponder.runs.store import RunStore
from ponder.verifiers.combined import CombinedVerifier
from ponder.verifiers.features import FEATURE_NAMES

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

# decoding and prefill round differently on llama.cpp's CPU kernels (BENCHMARKS: up to
# about 0.2 per token, a few hundredths on average, on this model); features that are
# means over a sample's tokens differ by about the average, those that read one token
# or a short window (the lowest logprob, the 32-token groups and tail) by up to the
# per-token gap, which test_bank_features_real bounds by 0.5
FEATURE_TOLERANCE = 0.1
TOKEN_TOLERANCE = 0.5
SHORT = {"min_logprob", "lowest_group_32", "bottom10_group_32", "tail_32"}


def ponder(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "ponder.cli", *args], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"ponder {' '.join(args)} failed:\n{proc.stderr[-3000:]}"
    return proc


def _eval(model: Path, data: Path, out: Path, *extra: str) -> None:
    ponder(
        "eval", "--task", "gsm8k", "--data", str(data), "--limit", "2", "--n", "2",
        "--max-tokens", "48", "--model", str(model), "--no-progress", "--features",
        "--out", str(out), *extra,
    )  # fmt: skip


def test_captured_features_equal_the_prefill_pass(
    smollm2_path: Path, shared_data: Path, tmp_path: Path
) -> None:
    data = shared_data / "gsm8k" / "test.jsonl"
    bank = tmp_path / "bank.db"
    _eval(smollm2_path, data, bank, "--strategy", "majority")
    with RunStore(bank, create=False) as store:
        captured = store.features()
        records = store.records()
    assert len(records) == 2
    for record in records:
        assert sorted(captured[record.problem_id]) == [0, 1]
        for i, cand in enumerate(record.candidates):
            row = captured[record.problem_id][i]
            assert set(row) == set(FEATURE_NAMES)
            assert row["tokens"] == cand.usage.completion_tokens
            assert row["mean_logprob"] < 0 and row["self_certainty"] >= 0

    copy = tmp_path / "copy.db"
    with sqlite3.connect(bank) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
        dst.execute("DELETE FROM features")
    out = ponder("bank", "features", str(copy), "--model", str(smollm2_path), "--batch", "1")
    assert "features: 4 samples done (0 had them)" in out.stdout
    with RunStore(copy, create=False) as store:
        prefilled = store.features()
    gaps, short = [], []
    for pid, samples in captured.items():
        for i, row in samples.items():
            again = prefilled[pid][i]
            assert again["tokens"] == row["tokens"]  # the same tokens, retokenised
            gaps += [abs(again[name] - row[name]) for name in FEATURE_NAMES if name not in SHORT]
            short += [abs(again[name] - row[name]) for name in SHORT]
    assert max(gaps) < FEATURE_TOLERANCE, gaps
    assert max(short) < TOKEN_TOLERANCE, short


def test_best_of_n_by_a_combined_model_over_the_captured_features(
    smollm2_path: Path, shared_data: Path, tmp_path: Path
) -> None:
    # a hand-written model: confident, long-tailed samples rank first
    model = CombinedVerifier(
        features=("tokens", "mean_logprob", "tail", "self_certainty"),
        mean=(4.0, -1.0, 10.0, 3.0),
        scale=(1.0, 0.5, 2.0, 1.0),
        coef=(-0.3, 1.2, 0.4, 0.6),
        intercept=0.1,
    )
    path = tmp_path / "combined.json"
    model.save(path)
    out = tmp_path / "best.db"
    data = shared_data / "gsm8k" / "test.jsonl"
    _eval(smollm2_path, data, out, "--strategy", "best_of_n", "--scorer", f"combined:{path}")
    with RunStore(out, create=False) as store:
        features = store.features()
        records = store.records()
    assert len(records) == 2
    for record in records:
        scores = [c.score for c in record.candidates]
        # the scorer read the same top-20 logprobs the capture stored
        expected = [model.probability(features[record.problem_id][i]) for i in range(2)]
        assert scores == pytest.approx(expected, abs=1e-9)
        assert all(s is not None and 0 < s < 1 and not math.isnan(s) for s in scores)
        answers = [c.answer for c in record.candidates]
        # best-of-n's rule: a candidate with an answer first, then the higher score
        best = max(range(2), key=lambda i: (answers[i] is not None, expected[i], -i))
        assert record.answer == answers[best]
