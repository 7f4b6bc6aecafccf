"""Adaptive stopping replayed on hand-made banks, worked out by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tests.analysis.test_selection import _bank

from ponder.analysis.selection import load_bank
from ponder.analysis.stop_replay import (
    StopRule,
    choose,
    live_command,
    majority_at_n,
    paired_against,
    replay_stop,
)
from ponder.cli import main


def test_unanimous_samples_stop_at_the_fewest_allowed(tmp_path: Path) -> None:
    bank = load_bank(_bank(tmp_path / "b.db", [(["A"] * 4, [1.0] * 4)] * 3))
    got = replay_stop(bank, StopRule("majority", 0.9, 2), {}, orderings=5)
    assert got.samples == 2.0
    assert got.accuracy == 1.0
    # the prompt (10 tokens, charged on the first sample) and two samples of 5
    assert got.tokens == 20.0
    base = majority_at_n(bank, orderings=5)
    assert (base.samples, base.tokens, base.accuracy) == (4.0, 30.0, 1.0)
    assert majority_at_n(bank, 1, orderings=5).tokens == 15.0
    with pytest.raises(ValueError, match=r"n must be in 1\.\.4"):
        majority_at_n(bank, 5)


def test_a_split_vote_never_settles_and_draws_every_sample(tmp_path: Path) -> None:
    # A, B, C, D: the leader's share is 1/k, under 0.6 from k = 2 on
    bank = load_bank(_bank(tmp_path / "b.db", [(["A", "B", "C", "D"], [1.0] * 4)] * 2))
    got = replay_stop(bank, StopRule("majority", 0.6, 2), {}, orderings=10)
    assert got.samples == 4.0
    # with a minimum of one sample, one vote is a share of 1: it stops at once
    assert replay_stop(bank, StopRule("majority", 0.6, 1), {}, orderings=10).samples == 1.0


def test_confidence_weights_settle_sooner_when_the_confident_sample_leads(
    tmp_path: Path,
) -> None:
    # A is confident (9), B not (1): weighted, A's share after A, B is 0.9; unweighted 0.5
    bank = load_bank(_bank(tmp_path / "b.db", [(["A", "B", "B", "A"], [9.0, 1.0, 1.0, 9.0])]))
    signals = dict(bank.features)
    weighted = replay_stop(bank, StopRule("tail", 0.85, 2), signals, orderings=400)
    plain = replay_stop(bank, StopRule("majority", 0.85, 2), {}, orderings=400)
    # weighted, any two samples settle it: A, B at 0.9 (right), A, A, and B, B (wrong; a
    # sixth of the orders)
    assert weighted.samples == 2.0
    assert weighted.accuracy == pytest.approx(5 / 6, abs=0.05)
    # unweighted, A, B is a 1-1 split that goes on (two thirds of the orders)
    assert plain.samples > 2.5
    with pytest.raises(ValueError):
        StopRule("tail", 0.0)
    with pytest.raises(ValueError):
        StopRule("tail", 0.5, 0)


def test_choose_takes_the_cheapest_rule_that_keeps_majoritys_accuracy(tmp_path: Path) -> None:
    # p0: unanimous; p1: B, A, A, A - majority at 4 is right, a stop at 1 is wrong in a
    # quarter of the orders
    bank = load_bank(
        _bank(tmp_path / "b.db", [(["A"] * 4, [1.0] * 4), (["B", "A", "A", "A"], [1.0] * 4)])
    )
    rules = [
        StopRule("majority", 1.0, 1),
        StopRule("majority", 1.0, 2),
        StopRule("majority", 0.7, 3),
    ]
    got = choose(bank, rules, {}, orderings=400)
    assert got.baseline.accuracy == 1.0
    by = {r.rule: r for r in got.rows}
    assert by["stop[majority,1,1]"].accuracy == pytest.approx(0.875, abs=0.05)
    # at 1.0 after two: p1 stops at 2 only on A, A (half the orders) and is then right;
    # otherwise a split goes on, and three of four settle it at 0.7
    assert got.chosen in ("stop[majority,1,2]", "stop[majority,0.7,3]")
    chosen = by[got.chosen]
    assert chosen.accuracy == 1.0
    assert chosen.tokens == min(r.tokens for r in got.rows if r.accuracy == 1.0)
    pa = paired_against(chosen, got.baseline, bootstrap=200)
    assert pa["diff"] == 0.0
    assert pa["ratio"] > 1.0
    none = choose(bank, [StopRule("majority", 1.0, 1)], {}, orderings=400)
    assert none.chosen is None


def test_cli_stop_chooses_on_train_and_reports_test(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    problems = [(["A", "A", "B", "A"], [3.0, 3.0, 1.0, 3.0])] * 6
    train = _bank(tmp_path / "train.db", problems)
    test = _bank(tmp_path / "test.db", problems[:4])
    out = tmp_path / "stop.json"
    argv = ["bank", "stop", str(test), "--train", str(train), "--signals", "majority", "tail",
            "--taus", "0.6", "1.0", "--min-samples", "2", "--orderings", "20",
            "--bootstrap", "50", "--json", str(out)]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "(chosen on train)" in text
    data = json.loads(out.read_text())
    assert data["chosen"] is not None
    assert len(data["rules"]) == 4
    assert np.isfinite([r["ratio"] for r in data["rules"]]).all()
    bad = ["bank", "stop", str(test), "--train", str(train), "--signals", "nope"]
    assert main(bad) == 2
    assert "unknown signals" in capsys.readouterr().err


def test_a_rule_gives_up_on_a_scattered_vote_from_four_samples(tmp_path: Path) -> None:
    # six different answers: the leader's share is 1/k; under 0.3 from k = 4 on
    bank = load_bank(_bank(tmp_path / "b.db", [(["A", "B", "C", "D", "E", "F"], [1.0] * 6)]))
    never = replay_stop(bank, StopRule("majority", 0.9, 2), {}, orderings=20)
    gives = replay_stop(bank, StopRule("majority", 0.9, 2, 0.3), {}, orderings=20)
    assert never.samples == 6.0
    assert gives.samples == 4.0
    assert gives.rule == "stop[majority,0.9,2,give_up 0.3]"
    with pytest.raises(ValueError, match="give_up"):
        StopRule("majority", 0.5, 2, 0.5)


def test_a_margin_rule_stops_once_the_leader_is_that_many_votes_ahead(tmp_path: Path) -> None:
    # A A B A A ...: unweighted, the lead is 2 after two samples in the orders that start
    # A A, and never before; a lead of 3 needs the B outnumbered by three
    bank = load_bank(_bank(tmp_path / "b.db", [(["A", "A", "A", "A", "A", "B"], [1.0] * 6)]))
    two = replay_stop(bank, StopRule("majority", 2, 1, by="margin"), {}, orderings=400)
    # the first two samples are both A with probability 5/6 * 4/5 = 2/3 (stop at 2); else
    # one of them is B and the lead of 2 comes at the fourth sample
    assert two.samples == pytest.approx(2 * 2 / 3 + 4 / 3, abs=0.12)
    assert two.rule == "stop[majority,margin 2,1]"
    one = replay_stop(bank, StopRule("majority", 1, 1, by="margin"), {}, orderings=20)
    assert one.samples == 1.0
    with pytest.raises(ValueError, match="margin"):
        StopRule("majority", 0, 1, by="margin")
    # a margin may exceed 1, a share may not
    StopRule("majority", 3, 1, by="margin")
    with pytest.raises(ValueError, match="share"):
        StopRule("majority", 3, 1)


def test_a_weighted_margin_rule_ends_on_one_sample_the_signal_is_sure_of(
    tmp_path: Path,
) -> None:
    # one sample the signal gives 0.95, the others 0.1: a margin of 0.9 settles on the
    # confident sample alone, or after nine agreeing 0.1s (never: there are five)
    answers = ["A", "A", "A", "A", "A", "A"]
    bank = load_bank(_bank(tmp_path / "b.db", [(answers, [1.0] * 6)]))
    score = np.array([[0.95, 0.1, 0.1, 0.1, 0.1, 0.1]])
    r = replay_stop(bank, StopRule("probe", 0.9, 1, by="margin"), {"probe": score}, orderings=600)
    # the confident sample's position is uniform over 1..6; once it is drawn the rule
    # stops, so the samples drawn average 3.5
    assert r.samples == pytest.approx(3.5, abs=0.2)


def test_give_up_after_moves_the_point_where_a_scattered_vote_is_dropped(
    tmp_path: Path,
) -> None:
    bank = load_bank(_bank(tmp_path / "b.db", [(["A", "B", "C", "D", "E", "F"], [1.0] * 6)]))
    rule = StopRule("majority", 0.9, 2, 0.6, give_up_after=2)
    assert replay_stop(bank, rule, {}, orderings=20).samples == 2.0
    assert rule.name == "stop[majority,0.9,2,give_up 0.6 after 2]"
    with pytest.raises(ValueError, match="give_up_after"):
        StopRule("majority", 0.9, 2, 0.3, give_up_after=1)


def test_a_chosen_rule_with_a_scorer_comes_with_its_live_command() -> None:
    rule = StopRule("joint", 0.7, 1, 0.3, by="margin", give_up_after=3)
    assert live_command(rule, 16) == (
        "--strategy weighted_stop --n 16 -o by=margin -o tau=0.7 -o min_n=1 -o give_up=0.3 "
        "-o give_up_after=3 --scorer hidden:PATH (ponder bank select --save-probe PATH)"
    )
    assert live_command(StopRule("mean_logprob", 0.8, 2), 8) == (
        "--strategy weighted_stop --n 8 -o by=share -o tau=0.8 -o min_n=2 --scorer logprob"
    )
    assert live_command(StopRule("majority", 0.8, 2), 8) is None
    assert live_command(StopRule("tail_32", 0.8, 2), 8) is None
