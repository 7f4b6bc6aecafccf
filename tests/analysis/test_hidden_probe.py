"""The hidden-state probe on hand-made banks: it reads a direction that separates right
from wrong samples, fitted on train or cross-fitted, and ranks them inside problems."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from tests.analysis.test_selection import _bank

from ponder.analysis import hidden_probe
from ponder.analysis.selection import (
    Rule,
    bank_signals,
    fit_probe_on_banks,
    load_bank,
    select,
    signal_aucs,
)
from ponder.runs.store import RunStore
from ponder.verifiers.features import FEATURE_NAMES
from ponder.verifiers.hidden import Projection, SampleHidden
from ponder.verifiers.hidden_probe import HiddenProbe

DIM = 4


def _with_hidden(path: Path, problems: list[tuple[list[str], list[float]]], seed: int) -> Path:
    """A bank whose samples' hidden states carry +1 (right) or -1 (wrong) on their first
    coordinate under noise; the features' confidence says nothing (all 1)."""
    _bank(path, problems)
    rng = np.random.default_rng(seed)
    with RunStore(path, create=False) as store:
        for i, (answers, _) in enumerate(problems):
            rows = {}
            for j, a in enumerate(answers):
                last = rng.normal(scale=0.5, size=DIM)
                last[0] += 1.0 if a == "A" else -1.0
                rows[j] = SampleHidden(last.astype(np.float16), last.astype(np.float16))
            store.put_hidden(f"p{i}", rows, Projection(16, DIM))
    return path


def _problems(k: int) -> list[tuple[list[str], list[float]]]:
    # majority is wrong on every problem: B, B, A, C
    return [(["B", "B", "A", "C"], [1.0] * 4)] * k


def test_choose_c_and_cross_fit_on_a_separating_direction() -> None:
    rng = np.random.default_rng(0)
    y = np.tile([True, False], 40)
    x = rng.normal(size=(80, 3))
    x[:, 0] += np.where(y, 1.5, -1.5)
    groups = np.repeat(np.arange(20), 4)
    assert hidden_probe.choose_c(x, y, groups) in hidden_probe.C_GRID
    oof = hidden_probe.cross_fit(x, y, groups)
    assert oof.shape == (80,)
    # a strong penalty shrinks the probabilities, not the ranking
    assert roc_auc_score(y, oof) > 0.9
    with pytest.raises(ValueError, match="right and wrong"):
        hidden_probe.fit_probe(x, np.ones(80, dtype=bool), groups)
    with pytest.raises(ValueError, match="at least 2 problems"):
        hidden_probe.cross_fit(x, y, np.zeros(80, dtype=np.int64))


def test_banks_with_hidden_states_get_probe_and_joint_signals(tmp_path: Path) -> None:
    train = load_bank(_with_hidden(tmp_path / "train.db", _problems(10), seed=1))
    test = load_bank(_with_hidden(tmp_path / "test.db", _problems(6), seed=2))
    assert test.hidden is not None and test.hidden.shape == (6, 4, 2 * DIM)
    signals, _, _ = bank_signals(test, [train])
    aucs = {a.signal: a for a in signal_aucs(test, signals)}
    assert aucs["probe"].within > 0.9
    assert aucs["joint"].within > 0.9
    cross, _, _ = bank_signals(test)
    assert cross["probe"].shape == (6, 4)
    # best-of-4 by the probe finds the minority right answer that majority misses
    result = select(
        test, [Rule("majority"), Rule("best_of_n", "probe")], [4], train=[train],
        orderings=10, bootstrap=50,
    )  # fmt: skip
    by = {c.rule: c for c in result.comparisons}
    assert by["majority"].accuracy == 0.0
    assert by["best_of_n[probe]"].accuracy > 0.8


def test_a_probe_rule_without_hidden_states_is_refused_or_dropped(tmp_path: Path) -> None:
    bare = load_bank(_bank(tmp_path / "bare.db", _problems(4)))
    assert bare.hidden is None
    rules = [Rule("majority"), Rule("weighted", "probe")]
    with pytest.raises(ValueError, match="need hidden states"):
        select(bare, rules, [4], orderings=2, bootstrap=10)
    kept = select(bare, rules, [4], orderings=2, bootstrap=10, drop_unavailable=True)
    assert {c.rule for c in kept.comparisons} == {"majority"}


@pytest.mark.parametrize("signal", ["probe", "joint"])
def test_a_saved_probe_scores_as_the_selection_s_signal(tmp_path: Path, signal: str) -> None:
    """The probe ``--save-probe`` writes, read back from its file, gives each test sample
    the probability the selection's own signal gave it."""
    train = load_bank(_with_hidden(tmp_path / "train.db", _problems(10), seed=1))
    test = load_bank(_with_hidden(tmp_path / "test.db", _problems(6), seed=2))
    probe = fit_probe_on_banks([train], signal)
    probe.save(tmp_path / "probe.json")
    again = HiddenProbe.load(tmp_path / "probe.json")
    assert again == probe
    assert again.projection == Projection(16, DIM)
    assert again.joint == (signal == "joint")
    assert again.trained_on["samples"] == 40 and again.trained_on["signal"] == signal
    signals, _, _ = bank_signals(test, [train])
    assert test.hidden is not None
    rows = np.stack(
        [
            again.row(
                SampleHidden(test.hidden[i, j, :DIM], test.hidden[i, j, DIM:]),
                {name: test.features[name][i, j] for name in FEATURE_NAMES},
            )
            for i in range(6)
            for j in range(4)
        ]
    )
    assert again.probabilities(rows).reshape(6, 4) == pytest.approx(signals[signal], abs=1e-9)


def test_a_probe_needs_banks_with_hidden_states_of_one_projection(tmp_path: Path) -> None:
    bare = load_bank(_bank(tmp_path / "bare.db", _problems(4)))
    with pytest.raises(ValueError, match="hidden states"):
        fit_probe_on_banks([bare])
    with pytest.raises(ValueError, match="one of"):
        fit_probe_on_banks([bare], "combined")
