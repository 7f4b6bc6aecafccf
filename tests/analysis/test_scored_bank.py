"""A bank scored by a combined verifier, and a policy fitted on one measured on another."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from tests._stores import config, sampled, write

from ponder.analysis.optimize import on_test_text, optimize
from ponder.analysis.scored_bank import score_bank
from ponder.cli import main
from ponder.core.errors import ConfigError
from ponder.runs.store import RunStore
from ponder.verifiers.combined import CombinedVerifier
from ponder.verifiers.features import FEATURE_NAMES
from ponder.verifiers.hidden import Projection, SampleHidden
from ponder.verifiers.hidden_probe import HiddenProbe

# answers per problem; "A" is right and is sampled with confidence 2, others with 0
TRAIN = {
    "t0": ["A", "A", "A", "A"],
    "t1": ["B", "A", "B", "A"],
    "t2": ["B", "B", "A", "B"],
    "t3": ["A", "B", "C", "A"],
    "t4": ["C", "C", "C", "C"],
    "t5": ["B", "A", "A", "C"],
}
TEST = {
    "s0": ["A", "A", "B", "A"],
    "s1": ["B", "B", "A", "A"],
    "s2": ["B", "C", "B", "A"],
    "s3": ["C", "A", "C", "C"],
}


def _features(answer: str) -> dict[str, float]:
    conf = 2.0 if answer == "A" else 0.0
    return {name: (50.0 if name == "tokens" else conf) for name in FEATURE_NAMES}


def _bank(path: Path, problems: dict[str, list[str]]) -> Path:
    write(
        path,
        config("majority", task="toy", n=4, temperature=0.7, top_p=0.95),
        [sampled(pid, answers, idx=i) for i, (pid, answers) in enumerate(problems.items())],
    )
    with RunStore(path, create=False) as store:
        for pid, answers in problems.items():
            store.put_features(pid, {j: _features(a) for j, a in enumerate(answers)})
    return path


def _verifier(path: Path) -> Path:
    # p = sigmoid(2 * (tail - 1)): 0.881 for a confident sample, 0.119 otherwise
    CombinedVerifier(("tail",), (1.0,), (1.0,), (2.0,), 0.0).save(path)
    return path


def test_a_scored_bank_is_the_weighted_run_of_the_same_samples(tmp_path: Path) -> None:
    bank = _bank(tmp_path / "bank.db", TRAIN)
    verifier = _verifier(tmp_path / "v.json")
    assert score_bank(bank, verifier, tmp_path / "scored.db") == 6
    with RunStore(tmp_path / "scored.db", create=False) as store:
        cfg = store.config()
        records = {r.problem_id: r for r in store.records()}
        features = store.features()
    assert cfg is not None
    assert cfg["strategy"]["name"] == "weighted_majority"
    assert cfg["strategy"]["options"]["scorer"] == f"combined:{verifier}"
    high, low = 1 / (1 + math.exp(-2.0)), 1 / (1 + math.exp(2.0))
    t2 = records["t2"]
    assert [c.score for c in t2.candidates] == pytest.approx([low, low, high, low])
    # weighted: A 0.881 against B 3 * 0.119 = 0.358: the confident minority wins
    assert (t2.answer, t2.correct) == ("A", True)
    assert features["t2"][2]["tail"] == 2.0
    with pytest.raises(ConfigError, match="exists"):
        score_bank(bank, verifier, tmp_path / "scored.db")


def test_cross_fitted_scores_come_from_models_of_the_other_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bank = _bank(tmp_path / "bank.db", TRAIN)
    verifier = _verifier(tmp_path / "v.json")
    argv = ["bank", "score", str(bank), "--verifier", str(verifier), "--out",
            str(tmp_path / "cv.db"), "--cross-fit"]  # fmt: skip
    assert main(argv) == 0
    assert "6 records scored" in capsys.readouterr().out
    with RunStore(tmp_path / "cv.db", create=False) as store:
        cfg = store.config()
        records = {r.problem_id: r for r in store.records()}
    assert cfg is not None and cfg["scored"]["scores"].startswith("cross-fitted")
    # fitted on confident-right / unconfident-wrong samples, every fold ranks A first
    for r in records.values():
        right = [c.score for c in r.candidates if c.answer == "A"]
        wrong = [c.score for c in r.candidates if c.answer != "A"]
        assert all(a > b for a in right for b in wrong)  # type: ignore[operator]
    # and the scores are the fold models', not the file's 0.881 / 0.119
    assert records["t0"].candidates[0].score != pytest.approx(1 / (1 + math.exp(-2.0)))


def test_score_refuses_samples_without_features_and_other_strategies(tmp_path: Path) -> None:
    verifier = _verifier(tmp_path / "v.json")
    bare = write(tmp_path / "bare.db", config("majority", n=2), [sampled("p", ["A", "B"])])
    with pytest.raises(ConfigError, match="without features"):
        score_bank(bare, verifier, tmp_path / "o1.db")
    other = write(tmp_path / "beam.db", config("beam_search", n=2), [sampled("p", ["A"])])
    with pytest.raises(ConfigError, match="only sampling runs"):
        score_bank(other, verifier, tmp_path / "o2.db")


def test_a_policy_fitted_on_a_scored_train_bank_is_measured_on_a_scored_test_bank(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    verifier = _verifier(tmp_path / "v.json")
    train, test = tmp_path / "train.db", tmp_path / "test.db"
    score_bank(_bank(tmp_path / "tr.db", TRAIN), verifier, train)
    score_bank(_bank(tmp_path / "te.db", TEST), verifier, test)
    result = optimize(
        [train], budgets=[20, 40], bins=2, pilot=2, signal="score", heldout=0.0, test=[test]
    )
    on_test = result.test
    assert on_test is not None
    assert on_test.problems == 4
    # the reference is majority over all 4 test samples: s0 A, s1 B-B-A-A tie to B
    # (B reached 2 first), s2 B, s3 C -> 1 of 4
    assert on_test.reference.label == "majority n=4"
    assert on_test.reference_accuracy == 0.25
    assert on_test.reference_tokens == 10 + 4 * 5
    assert [b.budget for b in on_test.budgets] == [20, 40]
    # a policy that reaches 0.25 does so at no more tokens than the reference
    assert on_test.reach is not None
    assert on_test.ratio == pytest.approx(30 / on_test.reach.policy_tokens)
    assert "fewer" in on_test_text(on_test)
    # through the CLI, and a test store without the policy's configurations is refused
    out = tmp_path / "policy.json"
    argv = ["optimize", str(train), "--out", str(out), "--budgets", "20,40", "--bins", "2",
            "--pilot", "2", "--signal", "score", "--heldout", "0", "--test", str(test)]  # fmt: skip
    assert main(argv) == 0
    assert "test problems (4)" in capsys.readouterr().out
    assert json.loads(out.read_text())["pilot"]["signal"] == "score"
    plain = _bank(tmp_path / "plain.db", TEST)
    with pytest.raises(ConfigError, match="score signal needs"):
        optimize([train], budgets=[40], bins=2, pilot=2, signal="score", heldout=0.0,
                 test=[plain])  # fmt: skip


def _with_hidden(path: Path, problems: dict[str, list[str]]) -> Path:
    """The bank, each sample's hidden states +1 (right) or -1 (wrong) in every number."""
    _bank(path, problems)
    with RunStore(path, create=False) as store:
        for pid, answers in problems.items():
            rows = {}
            for j, a in enumerate(answers):
                v = np.full(2, 1.0 if a == "A" else -1.0, dtype=np.float16)
                rows[j] = SampleHidden(v, v)
            store.put_hidden(pid, rows, PROJECTION)
    return path


PROJECTION = Projection(n_embd=8, dim=2)


def test_a_bank_scored_by_a_hidden_state_probe_keeps_its_hidden_states(tmp_path: Path) -> None:
    bank = _with_hidden(tmp_path / "bank.db", TEST)
    probe = tmp_path / "probe.json"
    # p = sigmoid(the first number of the last row): 0.731 right, 0.269 wrong
    HiddenProbe(PROJECTION, (), (0.0,) * 4, (1.0,) * 4, (1.0, 0.0, 0.0, 0.0), 0.0).save(probe)
    out = tmp_path / "scored.db"
    assert score_bank(bank, probe, out) == 4
    with RunStore(out, create=False) as store:
        records = {r.problem_id: r for r in store.records()}
        config_ = store.config() or {}
        assert store.hidden_projection() == PROJECTION
        assert len(store.hidden_samples()) == 16
    assert config_["strategy"]["options"]["scorer"] == f"hidden:{probe}"
    right, wrong = 1 / (1 + math.exp(-1)), 1 / (1 + math.exp(1))
    s2 = records["s2"]  # B C B A: the right A (0.731) outweighs the two wrong Bs (0.538)
    assert [c.score for c in s2.candidates] == pytest.approx([wrong, wrong, wrong, right])
    assert s2.answer == "A" and s2.correct
    # cross-fitted: a probe of the same form fitted on the other problems' samples
    crossed = tmp_path / "crossed.db"
    bigger = _with_hidden(tmp_path / "train.db", TRAIN)
    assert score_bank(bigger, probe, crossed, cross_fit=True) == 6
    with RunStore(crossed, create=False) as store:
        for r in store.records():
            scores = [c.score or 0.0 for c in r.candidates]
            marks = [c.answer == "A" for c in r.candidates]
            if any(marks) and not all(marks):  # the right samples score above the wrong
                pairs = list(zip(scores, marks, strict=True))
                assert min(s for s, m in pairs if m) > max(s for s, m in pairs if not m)
    # a bank without hidden states, or of another projection, is refused
    with pytest.raises(ConfigError, match="projected by None"):
        score_bank(_bank(tmp_path / "bare.db", TEST), probe, tmp_path / "x.db")
