"""Selection rules replayed on hand-made banks whose outcomes are worked out by hand."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from tests._stores import config, sampled

from ponder.analysis.selection import (
    Bank,
    Rule,
    agreement_share,
    compare_rules,
    cross_fit_combined,
    fit_combined,
    load_bank,
    parse_rule,
    replay,
    select,
    signal_aucs,
    vote_weight,
)
from ponder.cli import main
from ponder.runs.store import RunStore
from ponder.verifiers.combined import CombinedVerifier
from ponder.verifiers.features import FEATURE_NAMES


def _features(conf: float, tokens: float) -> dict[str, float]:
    """Every feature at ``conf`` except the length."""
    return {name: (tokens if name == "tokens" else conf) for name in FEATURE_NAMES}


def _bank(path: Path, problems: Sequence[tuple[Sequence[str | None], Sequence[float]]]) -> Path:
    """A bank of ``(answers, confidences)`` per problem; ``A`` is right; a sample's
    length is 100 minus ten times its confidence."""
    with RunStore(path) as store:
        store.init_or_check(config("majority", n=len(problems[0][0])))
        for i, (answers, confs) in enumerate(problems):
            store.put(sampled(f"p{i}", answers, idx=i))
            store.put_features(
                f"p{i}", {j: _features(c, 100 - 10 * c) for j, c in enumerate(confs)}
            )
    return path


def _three(tmp_path: Path) -> Bank:
    """p0: majority says B (B, B, A), but A is the most confident sample; p1: all
    right; p2: majority A, but the most confident sample says C."""
    return load_bank(
        _bank(
            tmp_path / "b.db",
            [
                (["B", "B", "A"], [1.0, 1.0, 5.0]),
                (["A", "A", "A"], [1.0, 2.0, 3.0]),
                (["A", "A", "C"], [1.0, 1.0, 3.0]),
            ],
        )
    )


def test_rules_parse_and_bad_rules_are_refused() -> None:
    assert parse_rule("majority") == Rule("majority")
    assert parse_rule("weighted[tail_32]") == Rule("weighted", "tail_32")
    assert parse_rule("best_of_n[combined]") == Rule("best_of_n", "combined")
    assert parse_rule("filter[lowest_group, 0.1]") == Rule("filter", "lowest_group", 0.1)
    assert parse_rule("filter[lowest_group,0.1]").name == "filter[lowest_group,0.1]"
    assert parse_rule("weighted[joint,0.5]") == Rule("weighted", "joint", power=0.5)
    assert parse_rule("weighted[joint, 0.5]").name == "weighted[joint,0.5]"
    assert parse_rule("weighted[joint,1]").name == "weighted[joint]"
    for bad in ("vote", "weighted[nope]", "filter[tail]", "filter[tail,0]", "filter[tail,x]",
                "weighted[tokens]", "best_of_n[tail", "best_of_n[tail,2]", "weighted[tail,0]",
                "weighted[tail,-1]", "weighted[tail,x]", "weighted[tail,1,2]"):  # fmt: skip
        with pytest.raises(ValueError):
            parse_rule(bad)


def test_vote_weights_are_positive_and_nan_weighs_nothing() -> None:
    got = vote_weight("mean_logprob", np.array([0.0, math.log(0.5), math.nan]))
    assert got.tolist() == pytest.approx([1.0, 0.5, 0.0])
    assert vote_weight("tail", np.array([2.0, math.nan])).tolist() == [2.0, 0.0]
    with pytest.raises(ValueError):
        vote_weight("tokens", np.array([1.0]))


def test_each_rule_at_full_n_worked_by_hand(tmp_path: Path) -> None:
    bank = _three(tmp_path)
    signals = dict(bank.features)
    rules = [parse_rule(r) for r in ("majority", "best_of_n[tail]", "weighted[tail]",
                                     "filter[tail,0.5]", "filter[tail,0.1]",
                                     "best_of_n[tokens]")]  # fmt: skip
    got = {c.rule: c for c in compare_rules(bank, signals, rules, [3], orderings=20, bootstrap=200)}
    # majority: p1, p2 right -> 2/3
    assert got["majority"].accuracy == pytest.approx(2 / 3)
    # best-of-3 by confidence: A (p0), A (p1), C (p2) -> 2/3; same wins/losses as swaps
    assert got["best_of_n[tail]"].accuracy == pytest.approx(2 / 3)
    assert got["best_of_n[tail]"].wins == pytest.approx(1.0)
    assert got["best_of_n[tail]"].losses == pytest.approx(1.0)
    # weighted: p0 A 5 vs B 2 -> A; p2 A 2 vs C 3 -> C -> 2/3
    assert got["weighted[tail]"].accuracy == pytest.approx(2 / 3)
    # keep ceil(1.5) = 2: p0 keeps A(5) and a B(1) -> A; p2 keeps C(3) and an A(1) -> C
    assert got["filter[tail,0.5]"].accuracy == pytest.approx(2 / 3)
    # keep 1: best-of-n
    assert got["filter[tail,0.1]"].accuracy == pytest.approx(2 / 3)
    # tempered, sqrt of the weights: p0 A 2.24 vs B 2 -> A; p2 A 2 vs C 1.73 -> A: 3/3,
    # where plain weights and majority each miss one; a fourth root lets p0's B win again
    tempered = {c.rule: c.accuracy for c in compare_rules(
        bank, signals, [parse_rule("weighted[tail,0.5]"), parse_rule("weighted[tail,0.25]")],
        [3], orderings=20, bootstrap=200)}  # fmt: skip
    assert tempered == pytest.approx({"weighted[tail,0.5]": 1.0, "weighted[tail,0.25]": 2 / 3})
    # the shortest sample is the most confident one here
    assert got["best_of_n[tokens]"].accuracy == pytest.approx(2 / 3)
    assert got["majority"].diff == 0.0
    assert got["majority"].diff_ci == (0.0, 0.0)
    # every rule at one n pays the same tokens: the prompt once and three samples
    assert {c.tokens for c in got.values()} == {10 + 3 * 5}


def test_smaller_n_averages_over_orderings_and_the_interval_is_paired(tmp_path: Path) -> None:
    # one problem, two samples: B (conf 1) and A (conf 9); at n = 1 majority is right when
    # the order draws A first (about half the orders); best-of-1 is the same sample
    bank = load_bank(_bank(tmp_path / "b.db", [(["B", "A"], [1.0, 9.0])] * 4))
    rules = [Rule("majority"), Rule("best_of_n", "tail")]
    rows = compare_rules(bank, dict(bank.features), rules, [1, 2], orderings=400, bootstrap=500)
    by = {(c.rule, c.n): c for c in rows}
    assert by[("majority", 1)].accuracy == pytest.approx(0.5, abs=0.06)
    assert by[("best_of_n[tail]", 1)].diff == pytest.approx(0.0)
    # at n = 2 majority ties 1-1 and the tie goes to the first in the order: half right;
    # best-of-2 always takes A
    assert by[("best_of_n[tail]", 2)].accuracy == 1.0
    assert by[("best_of_n[tail]", 2)].diff == pytest.approx(0.5, abs=0.06)
    low, high = by[("best_of_n[tail]", 2)].diff_ci
    assert 0.3 < low <= high < 0.7
    with pytest.raises(ValueError, match=r"n must be in 1\.\.2"):
        compare_rules(bank, dict(bank.features), rules, [3])


def test_replay_per_problem_agrees_with_the_comparison_and_subset_picks_rows(
    tmp_path: Path,
) -> None:
    bank = _three(tmp_path)
    rules = [Rule("majority"), parse_rule("filter[tail,0.5]")]
    got = replay(bank, dict(bank.features), rules, orderings=50, seed=3)
    rows = compare_rules(bank, dict(bank.features), rules, [1, 2, 3], orderings=50, seed=3)
    for c in rows:
        assert got.correct[c.rule][:, c.n - 1].mean() == pytest.approx(c.accuracy)
        assert got.tokens[:, c.n - 1].mean() == pytest.approx(c.tokens)
    # at full n: majority misses p0; the filter gets p0 (A, weight 5) but misses p2 (C)
    assert got.correct["majority"][:, 2].tolist() == [0.0, 1.0, 1.0]
    assert got.correct["filter[tail,0.5]"][:, 2].tolist() == [1.0, 1.0, 0.0]
    # the prompt once, then 5 tokens a sample, whatever the order
    assert got.tokens[0].tolist() == [15.0, 20.0, 25.0]
    # a subset in another order keeps each problem's own samples, grades and features
    sub = bank.subset(["p2", "p0"])
    assert sub.problem_ids == ("p2", "p0")
    assert sub.shape == (2, 3)
    assert sub.features["tail"][0].tolist() == [1.0, 1.0, 3.0]
    again = replay(sub, dict(sub.features), rules, orderings=50, seed=3)
    assert again.correct["filter[tail,0.5]"][:, 2].tolist() == [0.0, 1.0]
    with pytest.raises(KeyError, match="no problem 'p9'"):
        bank.subset(["p0", "p9"])


def test_a_bank_without_features_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    with RunStore(path) as store:
        store.init_or_check(config("majority", n=2))
        store.put(sampled("p0", ["A", "B"]))
        store.put_features("p0", {0: _features(1.0, 10.0)})
    with pytest.raises(ValueError, match="1 of 2 samples have no features"):
        load_bank(path)


def test_signal_aucs_pooled_and_within_problems(tmp_path: Path) -> None:
    bank = load_bank(
        _bank(
            tmp_path / "b.db",
            [
                (["A", "B", "B"], [3.0, 1.0, 2.0]),  # A ranked first: within AUC 1
                (["A", "B", "A"], [1.0, 2.0, 3.0]),  # A at 1 and 3, B at 2: within 0.5
                (["A", "A", "A"], [1.0, 1.0, 1.0]),  # no wrong sample: no within AUC
            ],
        )
    )
    pick = {"tail": bank.features["tail"], "tokens": bank.features["tokens"]}
    aucs = {a.signal: a for a in signal_aucs(bank, pick)}
    assert aucs["tail"].within == pytest.approx(0.75)
    assert aucs["tail"].problems == 2
    # tokens = 100 - 10 conf and enter negated: the same ranking as the confidence
    assert aucs["tokens"].pooled == pytest.approx(aucs["tail"].pooled)
    assert aucs["tokens"].within == pytest.approx(0.75)


def test_agreement_is_the_share_of_the_other_samples_with_the_same_answer(
    tmp_path: Path,
) -> None:
    problems = [(["A", "A", "B", None, "A"], [1.0] * 5), (["B"] * 4 + ["A"], [2.0] * 5)]
    bank = load_bank(_bank(tmp_path / "b.db", problems))
    assert agreement_share(bank).tolist() == [
        [0.5, 0.5, 0.0, 0.0, 0.5],
        [0.75, 0.75, 0.75, 0.75, 0.0],
    ]
    result = select(bank, [Rule("majority")], [5], orderings=2, bootstrap=10)
    assert "agreement" in {a.signal for a in result.aucs}


def test_the_fitted_verifier_is_scikit_learns_model_in_plain_numbers() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2))
    y = x[:, 0] + 0.3 * rng.normal(size=200) > 0
    model = fit_combined(x, y, ("tail", "mean_logprob"))
    z = (x - x.mean(axis=0)) / x.std(axis=0)
    ref = LogisticRegression(C=1.0, max_iter=1000).fit(z, y)
    probs = model.probabilities([{"tail": a, "mean_logprob": b} for a, b in x])
    assert probs == pytest.approx(ref.predict_proba(z)[:, 1].tolist(), abs=1e-4)
    with pytest.raises(ValueError, match="right and wrong"):
        fit_combined(x, np.ones(200, dtype=bool), ("tail", "mean_logprob"))


def _separable(path: Path, problems: int) -> Path:
    """Right samples are confident (3) and wrong ones not (1), with majority often wrong."""
    return _bank(path, [(["B", "B", "A", "A"], [1.0, 1.0, 3.0, 3.0])] * problems)


def test_cross_fitted_scores_come_from_other_problems_and_rank_well(tmp_path: Path) -> None:
    bank = load_bank(_separable(tmp_path / "b.db", 10))
    scores = cross_fit_combined(bank)
    assert scores.shape == (10, 4)
    assert (scores[:, 2:] > scores[:, :2]).all()
    one = load_bank(_separable(tmp_path / "one.db", 1))
    with pytest.raises(ValueError, match="at least 2 problems"):
        cross_fit_combined(one)


def test_select_fits_on_train_and_says_so(tmp_path: Path) -> None:
    train = load_bank(_separable(tmp_path / "train.db", 6))
    test = load_bank(_separable(tmp_path / "test.db", 4))
    result = select(
        test, [Rule("majority"), Rule("best_of_n", "combined")], [4], train=[train],
        orderings=10, bootstrap=100,
    )  # fmt: skip
    assert result.verifier is not None
    assert result.verifier.trained_on["samples"] == 24
    assert "fitted on" in result.combined_from
    best = next(c for c in result.comparisons if c.rule == "best_of_n[combined]")
    assert best.accuracy == 1.0
    # majority ties 2-2 at n = 4 and the tie goes to the answer that got there first
    assert next(c for c in result.comparisons if c.rule == "majority").accuracy < 1.0
    # chosen on train, where best-of-n by the cross-fitted verifier beats majority too
    assert result.chosen == "best_of_n[combined]"
    assert {c.problems for c in result.train_comparisons} == {6}


def test_cli_select_prints_tables_and_writes_json_and_the_verifier(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train = _separable(tmp_path / "train.db", 6)
    test = _separable(tmp_path / "test.db", 4)
    out, model = tmp_path / "sel.json", tmp_path / "combined.json"
    argv = ["bank", "select", str(test), "--train", str(train), "--n", "2", "4",
            "--rules", "majority", "best_of_n[combined]", "--orderings", "10",
            "--bootstrap", "50", "--json", str(out), "--save-verifier", str(model)]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "| best_of_n[combined] (chosen on train) | 1.000 |" in text
    assert "n = 4" in text and "n = 2" in text
    data = json.loads(out.read_text())
    assert {c["n"] for c in data["comparisons"]} == {2, 4}
    assert CombinedVerifier.load(model).trained_on["problems"] == 6
    png = tmp_path / "sel.png"
    argv = ["bank", "select", str(test), "--train", str(train), "--rules", "majority",
            "best_of_n[combined]", "--orderings", "5", "--bootstrap", "20", "--plot", str(png),
            "--plot-rules", "majority", "--json", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    curves = json.loads(out.read_text())["curves"]
    # majority as asked, and the rule chosen on train; every n from 1 to 4
    assert set(curves) == {"majority", "best_of_n[combined]"}
    assert [c["n"] for c in curves["majority"]] == [1, 2, 3, 4]
    capsys.readouterr()
    assert main(["bank", "select", str(test), "--save-verifier", str(model)]) == 2
    assert "needs --train" in capsys.readouterr().err
    assert main(["bank", "select", str(test), "--rules", "weighted[nope]"]) == 2
