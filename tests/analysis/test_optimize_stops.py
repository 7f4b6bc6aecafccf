"""Stopping rules as configurations of the compute-optimal policy (``ponder optimize
--stop-margins``): replayed on the pilot run in stored order, reusing the pilot; every
number worked out by hand on the stores of ``test_optimize``.

Unweighted, margin 2, pilot 2 (min_n raised to 2), samples in stored order:

    problem  samples   stops at   answer   correct   T = 10 + 5m   E
    p0       A A A A   2          A        1         20            20
    p1       A A B B   2          A        1         20            20
    p2       B A A A   4 (lead 2) A        1         30            40
    p3       A B A B   4 (cap)    A (tie)  1         30            40
    p4       B C A A   4 (cap)    A        1         30            40
    p5       B B B A   2          B        0         20            20

E at m = 4: the pilot's 20, a second request's prompt 10 and two samples' 10.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from tests._stores import config, sampled, write

from ponder.analysis.calibration import StopSpec, load_calibration
from ponder.analysis.optimize import optimize
from ponder.cli.optimize import _stops
from ponder.core.errors import ConfigError
from ponder.strategies.optimal.policy import STOP_STRATEGY

SAMPLES = {
    "p0": ["A", "A", "A", "A"],
    "p1": ["A", "A", "B", "B"],
    "p2": ["B", "A", "A", "A"],
    "p3": ["A", "B", "A", "B"],
    "p4": ["B", "C", "A", "A"],
    "p5": ["B", "B", "B", "A"],
}
SAMPLING = {"temperature": 0.7, "top_p": 0.95}


def _store(tmp_path: Path, scores: dict[str, list[float]] | None = None) -> Path:
    strategy = "majority" if scores is None else "weighted_majority"
    opts = {"n": 4, **SAMPLING} | ({} if scores is None else {"scorer": "logprob"})
    return write(
        tmp_path / f"{strategy}.db",
        config(strategy, **opts),
        [
            sampled(pid, answers, idx=i, scores=None if scores is None else scores[pid])
            for i, (pid, answers) in enumerate(SAMPLES.items())
        ],
    )


def test_an_unweighted_margin_stop_is_replayed_in_stored_order_from_the_pilot(
    tmp_path: Path,
) -> None:
    cal = load_calibration([_store(tmp_path)], pilot=2, stops=[StopSpec("margin", 2.0)])
    stop = [i for i, c in enumerate(cal.configs) if c.strategy == STOP_STRATEGY]
    assert len(stop) == 1  # an unscored run gives the unweighted rule only
    i = stop[0]
    c = cal.configs[i]
    assert c.reuses_pilot and c.label == "stop[count,margin 2.0,2] max_n=4"
    assert dict(c.options) == {
        "max_n": 4, "batch": 1, "min_n": 2, "by": "margin", "tau": 2.0, "give_up": 0.0,
        "give_up_after": 4, "scorer": "", **SAMPLING,
    }  # fmt: skip
    assert cal.correct[i].tolist() == [True, True, True, True, True, False]
    assert cal.own_tokens[i].tolist() == [20, 20, 30, 30, 30, 20]
    assert cal.policy_tokens[i].tolist() == [20, 20, 40, 40, 40, 20]


def test_a_scored_run_also_gives_the_rule_weighted_by_its_scorer(tmp_path: Path) -> None:
    # weights: the first sample of p2 (B) is sure, so B leads 0.9 to 0.1 after the pilot
    scores = {p: [0.5] * 4 for p in SAMPLES}
    scores["p2"] = [0.9, 0.1, 0.1, 0.1]
    cal = load_calibration(
        [_store(tmp_path, scores)], pilot=2, stops=[StopSpec("margin", 0.8, give_up=0.0)]
    )
    by_scorer = {
        c.options["scorer"]: i for i, c in enumerate(cal.configs) if c.strategy == STOP_STRATEGY
    }
    assert set(by_scorer) == {"", "logprob"}
    w = by_scorer["logprob"]
    # weights 0.5: a margin of 0.8 needs a lead of two votes (1.0), as above, but p2's
    # sure B leads by 0.8 at once: it stops at 2 with the wrong answer
    assert cal.correct[w].tolist() == [True, True, False, True, True, False]
    assert cal.own_tokens[w].tolist() == [20, 20, 20, 30, 30, 20]
    # the unweighted rule with a margin of 0.8 stops once two votes agree, or at the cap
    u = by_scorer[""]
    assert cal.own_tokens[u].tolist() == [20, 20, 25, 25, 30, 20]


def test_the_policy_may_choose_a_stop_and_its_file_reads_back(tmp_path: Path) -> None:
    store = _store(tmp_path)
    out = optimize(
        [store], pilot=2, bins=1, heldout=0, budgets=[30], stops=[StopSpec("margin", 2.0)]
    )
    # at a mean of 30 tokens the stop (5/6 right at 30) beats majority n=2 (4/6 at 20)
    # and n=3 (4/6 at 35 > 30)
    [cell] = out.policy.cells
    assert cell.config.strategy == STOP_STRATEGY and cell.accuracy == pytest.approx(5 / 6)
    saved = out.policy.save(tmp_path / "policy.json")
    from ponder.strategies.optimal.policy import load_policy

    assert load_policy(saved).cells[0].config == cell.config


def test_the_cli_grid_raises_min_n_to_the_pilot_and_skips_impossible_give_ups() -> None:
    args = argparse.Namespace(
        stop_margins=[1.0], stop_shares=[0.5], stop_min_n=[1, 2, 3], stop_give_up=[0.0, 0.6],
        stop_give_up_after=4, pilot=2,
    )  # fmt: skip
    names = [(s.by, s.tau, s.min_n, s.give_up) for s in _stops(args)]
    assert names == [
        ("margin", 1.0, 2, 0.0), ("margin", 1.0, 2, 0.6), ("margin", 1.0, 3, 0.0),
        ("margin", 1.0, 3, 0.6), ("share", 0.5, 2, 0.0), ("share", 0.5, 3, 0.0),
    ]  # fmt: skip


def test_bad_stop_settings_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="a margin must be > 0"):
        StopSpec("margin", 0.0)
    with pytest.raises(ConfigError, match="give_up"):
        StopSpec("share", 0.5, give_up=0.7)
