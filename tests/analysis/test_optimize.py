"""Compute-optimal policies fitted on hand-made stores, every number worked out by hand.

The calibration: a majority run of 4 samples (prompt 10 tokens charged once, 5 tokens per
sample) and a single run (12 tokens per problem), on six problems; "A" is correct.

    problem  samples   agreement of 2   majority correct at n=1..4   single
    p0       A A A A   1.0              1 1 1 1                       1
    p1       A A B B   1.0              1 1 1 1 (2-2 tie: A first)    1
    p2       B A A A   0.5              0 0 1 1                       1
    p3       A B A B   0.5              1 1 1 1                       0
    p4       B C A A   0.5              0 0 0 1                       1
    p5       B B B A   1.0              0 0 0 0                       0

With a pilot of 2 samples: P = 10 + 2 * 5 = 20 tokens. Policy tokens E: majority n <= 2
reuses the pilot, 20; n = 3: 20 + a new request's prompt 10 + 5 = 35; n = 4: 40;
single: 20 + 12 = 32. Own tokens T: majority 10 + 5n = 15, 20, 25, 30; single 12.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from tests._stores import config, point, sampled, write

from ponder.analysis.calibration import load_calibration
from ponder.analysis.optimize import (
    default_budgets,
    evaluate_policy,
    fit_policy,
    optimize,
    summary_text,
)
from ponder.core.errors import ConfigError
from ponder.strategies.optimal.policy import Policy

SAMPLES = {
    "p0": ["A", "A", "A", "A"],
    "p1": ["A", "A", "B", "B"],
    "p2": ["B", "A", "A", "A"],
    "p3": ["A", "B", "A", "B"],
    "p4": ["B", "C", "A", "A"],
    "p5": ["B", "B", "B", "A"],
}
SINGLE = {"p0": True, "p1": True, "p2": True, "p3": False, "p4": True, "p5": False}
IDS = sorted(SAMPLES)


@pytest.fixture
def stores(tmp_path: Path) -> tuple[Path, Path]:
    maj = write(
        tmp_path / "maj.db",
        config("majority", n=4, temperature=0.7, top_p=0.95),
        [sampled(pid, answers, idx=i) for i, (pid, answers) in enumerate(SAMPLES.items())],
    )
    single = write(
        tmp_path / "single.db",
        config("single", temperature=0.0, top_p=1.0),
        [point(pid, ok, 12, idx=i) for i, (pid, ok) in enumerate(SINGLE.items())],
    )
    return maj, single


def labels(policy: Policy, budget: float) -> list[str]:
    return [c.config.label for c in policy.cells if c.budget == budget]


def test_configurations_outcomes_and_tokens(stores: tuple[Path, Path]) -> None:
    maj, single = stores
    cal = load_calibration([single, maj], pilot=2)
    # the pilot store comes first, whatever the order given
    assert [c.label for c in cal.configs][:4] == [f"majority n={n}" for n in (1, 2, 3, 4)]
    assert cal.configs[4].strategy == "single" and not cal.configs[4].reuses_pilot
    assert all(c.reuses_pilot for c in cal.configs[:4])
    assert dict(cal.configs[2].options) == {"n": 3, "temperature": 0.7, "top_p": 0.95}
    assert cal.problem_ids == tuple(IDS)
    assert cal.signal.tolist() == [1.0, 1.0, 0.5, 0.5, 0.5, 1.0]
    assert cal.correct.astype(int).tolist() == [
        [1, 1, 0, 1, 0, 0],
        [1, 1, 0, 1, 0, 0],
        [1, 1, 1, 1, 0, 0],
        [1, 1, 1, 1, 1, 0],
        [1, 1, 1, 0, 1, 0],
    ]
    assert cal.pilot_tokens.tolist() == [20.0] * 6
    assert cal.policy_tokens[:, 0].tolist() == [20, 20, 35, 40, 32]
    assert cal.own_tokens[:, 0].tolist() == [15, 20, 25, 30, 12]
    assert cal.pilot.samples == 2 and cal.pilot.store == str(maj)
    assert (cal.pilot.temperature, cal.pilot.top_p, cal.pilot.scorer) == (0.7, 0.95, None)
    assert cal.oracle == str(maj)


def test_cells_pick_the_best_accuracy_that_fits_ties_to_fewer_tokens(
    stores: tuple[Path, Path],
) -> None:
    cal = load_calibration(list(stores), pilot=2)
    policy = fit_policy(cal, IDS, [20, 32, 35, 40], bins=2)
    # signals 1,1,.5,.5,.5,1: threshold v(3) = 1.0; bin 1 = p0 p1 p5, bin 2 = p2 p3 p4
    assert policy.bins.thresholds == (1.0,)
    # bin 1: every configuration scores 2/3, so the cheapest (majority n=1, E=20) wins
    # bin 2 accuracy: n=1 1/3, n=2 1/3, n=3 2/3, n=4 1, single 2/3
    assert labels(policy, 20) == ["majority n=1", "majority n=1"]
    assert labels(policy, 32)[1].startswith("single")
    assert labels(policy, 35)[1].startswith("single")  # ties n=3 at 2/3 with fewer tokens
    assert labels(policy, 40) == ["majority n=1", "majority n=4"]
    cell = policy.cell(2, 40)
    assert (cell.accuracy, cell.tokens, cell.problems, cell.fits) == (1.0, 40.0, 3, True)
    assert policy.cell(1, 40).accuracy == pytest.approx(2 / 3)
    # a budget between columns uses the largest one below it
    assert policy.cell(2, 39).config.label.startswith("single")
    with pytest.raises(ConfigError, match="below the policy's smallest budget 20"):
        policy.cell(2, 19.5)
    with pytest.raises(ConfigError, match="budget 19 is below every configuration"):
        fit_policy(cal, IDS, [19, 40], bins=2)


def test_a_bin_where_nothing_fits_takes_its_cheapest_and_says_so(tmp_path: Path) -> None:
    # p1's samples are long (prompt 40): its pilot alone costs 40 + 2 * 5 = 50
    maj = write(
        tmp_path / "maj.db",
        config("majority", n=2, temperature=0.7, top_p=0.95),
        [sampled("p0", ["A", "A"]), sampled("p1", ["A", "B"], prompt=40, idx=1)],
    )
    cal = load_calibration([maj], pilot=2)
    policy = fit_policy(cal, ["p0", "p1"], [25], bins=2)
    easy, hard = policy.cell(1, 25), policy.cell(2, 25)
    assert easy.fits and easy.tokens == 20
    assert not hard.fits and hard.tokens == 50 and hard.config.label == "majority n=1"


def test_mean_allocation_lets_the_settled_bin_pay_for_the_hard_one(
    stores: tuple[Path, Path],
) -> None:
    cal = load_calibration(list(stores), pilot=2)
    # bins as above, 3 problems each. Bin 1: every configuration 2/3, cheapest n=1 (E 20).
    # Bin 2 (E, right of 3): n=1 (20, 1), n=2 (20, 1), n=3 (35, 2), n=4 (40, 3),
    # single (32, 2). Mean budget B allows 6B tokens in all; bin 1 takes 3 * 20 = 60.
    mean = fit_policy(cal, IDS, [20, 25, 26, 30], bins=2, allocation="mean")
    by_bin = fit_policy(cal, IDS, [20, 25, 26, 30], bins=2)
    assert mean.allocation == "mean" and by_bin.allocation == "bin"
    # 30: 60 + 3 * 40 = 180 = 6 * 30, so bin 2 runs n=4, over 30 in its own bin
    assert labels(mean, 30) == ["majority n=1", "majority n=4"]
    assert labels(by_bin, 30) == ["majority n=1", "majority n=1"]
    # 26: 156 leaves 96 = 3 * 32 for bin 2: single fits exactly, n=3 (105) does not
    assert labels(mean, 26)[0] == "majority n=1"
    assert labels(mean, 26)[1].startswith("single")
    # 25 and 20: 90 and 60 for bin 2, where only the pilot fits
    assert labels(mean, 25) == labels(mean, 20) == ["majority n=1", "majority n=1"]
    assert all(c.fits for c in mean.cells)
    hard = mean.cell(2, 30)
    assert (hard.accuracy, hard.tokens, hard.problems) == (1.0, 40.0, 3)
    ev = evaluate_policy(mean, cal, IDS, [])
    b30 = {b.budget: b for b in ev.budgets}[30]
    assert (b30.policy_accuracy, b30.policy_tokens) == (5 / 6, 30.0)
    with pytest.raises(ConfigError, match=r"costs 20\.0 tokens per problem on average"):
        fit_policy(cal, IDS, [19, 30], bins=2, allocation="mean")
    with pytest.raises(ConfigError, match="allocation must be one of bin, mean"):
        fit_policy(cal, IDS, [30], bins=2, allocation="median")  # type: ignore[arg-type]


def test_heldout_evaluation_against_the_best_uniform_configuration(
    stores: tuple[Path, Path],
) -> None:
    cal = load_calibration(list(stores), pilot=2)
    train, held = ["p0", "p1", "p3", "p4"], ["p2", "p5"]
    policy = fit_policy(cal, train, [20, 32, 40], bins=2)
    # train signals 1,1,.5,.5: bin 1 = p0 p1, bin 2 = p3 p4
    # bin 2 at 40: n=1..3 score 1/2, n=4 1, single 1/2 -> majority n=4
    assert labels(policy, 40) == ["majority n=1", "majority n=4"]
    assert labels(policy, 32) == ["majority n=1", "majority n=1"]
    ev = evaluate_policy(policy, cal, train, held)
    by_budget = {b.budget: b for b in ev.budgets}
    # held out: p2 (signal .5, bin 2), p5 (signal 1, bin 1)
    # at 40: p2 by majority n=4 right (E 40), p5 by majority n=1 wrong (E 20)
    b40 = by_budget[40]
    assert (b40.policy_accuracy, b40.policy_tokens) == (0.5, 30.0)
    # uniform on train with T: n=4 is the only one at 4/4 -> on p2, p5: 1/2 for T=30
    assert b40.uniform is not None and b40.uniform.label == "majority n=4"
    assert (b40.uniform_accuracy, b40.uniform_tokens) == (0.5, 30.0)
    # at 20 the pilot alone uses the budget; uniform picks single (3/4, fewest tokens)
    b20 = by_budget[20]
    assert (b20.policy_accuracy, b20.policy_tokens) == (0.0, 20.0)
    assert b20.uniform is not None and b20.uniform.strategy == "single"
    assert (b20.uniform_accuracy, b20.uniform_tokens) == (0.5, 12.0)
    assert ev.problems == 2 and ev.on_heldout
    assert ev.difficulty.agreement.problems == 2


def test_optimize_writes_a_policy_that_reads_back(
    stores: tuple[Path, Path], tmp_path: Path
) -> None:
    result = optimize(list(stores), budgets=[20, 40], bins=2, pilot=2, heldout=0.34, seed=3)
    path = result.policy.save(tmp_path / "policy.json")
    data = json.loads(path.read_text())
    assert data["format"] == "ponder-optimal-policy" and data["version"] == 1
    assert data["pilot"]["samples"] == 2 and data["pilot"]["signal"] == "agreement"
    assert data["calibration"]["heldout_problems"] == 2
    assert [s["roles"] for s in data["calibration"]["stores"]] == [["pilot", "oracle"], []]
    assert len(data["table"]) == 2 * result.policy.bins.count
    cell = data["table"][0]
    assert set(cell) == {
        "bin", "budget", "config", "reuses_pilot", "source", "accuracy", "tokens",
        "problems", "fits",
    }  # fmt: skip
    assert data["evaluation"]["evaluated_on"] == "heldout"
    again = Policy.load(path)
    assert again.cells == result.policy.cells and again.bins == result.policy.bins
    text = summary_text(result)
    assert "held-out problems (2)" in text and "budget 40" in text


def test_default_budgets_span_the_configurations_in_log_steps(stores: tuple[Path, Path]) -> None:
    cal = load_calibration(list(stores), pilot=2)
    # mean E per configuration: 20, 20, 35, 40, 32 -> from 20 to 40 in 6 log steps
    raw = [20 * 2 ** (j / 5) for j in range(6)]
    assert default_budgets(cal, IDS) == [float(math.ceil(x - 1e-9)) for x in raw]
    assert default_budgets(cal, IDS)[0] == 20 and default_budgets(cal, IDS)[-1] == 40


def test_scored_runs_give_every_rule_and_charge_scoring(tmp_path: Path) -> None:
    # best_of_n over 3 samples: prompt 10 once, 4 tokens each, a verifier spent 30 (10 each)
    scores = {"p0": [0.5, 1.0, 0.25], "p1": [0.75, 0.25, 0.5]}
    answers = {"p0": ["B", "A", "A"], "p1": ["A", "B", "B"]}
    store = write(
        tmp_path / "bon.db",
        config("best_of_n", n=3, temperature=0.7, top_p=0.95, scorer="judge"),
        [
            sampled(p, answers[p], scores=scores[p], completion=4, scoring=30, idx=i)
            for i, p in enumerate(answers)
        ],
    )
    scored = load_calibration([store], pilot=2, signal="score")
    names = [c.label for c in scored.configs]
    assert names == (
        [f"majority n={n}" for n in (1, 2, 3)]
        + [f"best_of_n n={n} judge" for n in (1, 2, 3)]
        + [f"weighted_majority n={n} judge" for n in (1, 2, 3)]
    )
    assert "scorer" not in scored.configs[0].options
    assert scored.configs[3].options["scorer"] == "judge"
    assert scored.signal.tolist() == [0.75, 0.5]
    # P = 10 + 2*4 + 2*10 = 38 (the pilot is scored)
    assert scored.pilot_tokens.tolist() == [38.0, 38.0]
    # majority: 38, 38, 38 + 10 + 4; best_of_n: 38, 38, 52 + 10 (only sample 3 to score)
    assert scored.policy_tokens[:6, 0].tolist() == [38, 38, 52, 38, 38, 62]
    assert scored.own_tokens[:6, 0].tolist() == [14, 18, 22, 24, 38, 52]
    # best_of_n: p0 picks sample 2 (A, 1.0) from n=2; p1 sample 1 (A, .75) throughout
    assert scored.correct[3:6].astype(int).tolist() == [[0, 1], [1, 1], [1, 1]]
    # weighted at 3: p0 A 1.25 vs B .5 -> A; p1 A .75 vs B .75 -> A reached it first
    assert scored.correct[8].tolist() == [True, True]
    plain = load_calibration([store], pilot=2, signal="agreement")
    # P = 18 (unscored pilot); best_of_n scores all n it reads: 18 + 10n, 18 + 14 + 30
    assert plain.policy_tokens[3:6, 0].tolist() == [28, 38, 62]
    assert plain.policy_tokens[2, 0] == 32


@pytest.mark.parametrize(
    ("case", "match"),
    [
        ("empty", "has no finished records"),
        ("problems", "same finished problems: .* lacks 1 \\(first: 'p5'\\)"),
        ("task", "from one task; they differ"),
        ("pilot", "fewer than the pilot's 5"),
        ("score", "the score signal needs"),
        ("no_sampling", "no calibration store can give the pilot"),
        ("optimal", "cannot calibrate a policy"),
        ("twice", "is given twice"),
    ],
)
def test_bad_calibrations_are_clear_errors(
    stores: tuple[Path, Path], tmp_path: Path, case: str, match: str
) -> None:
    maj, single = stores
    kwargs: dict[str, object] = {"pilot": 2}
    if case == "empty":
        paths = [maj, write(tmp_path / "e.db", config("majority", n=2), [])]
    elif case == "problems":
        fewer = [point(p, True, 12) for p in IDS[:5]]
        paths = [maj, write(tmp_path / "f.db", config("single"), fewer)]
    elif case == "task":
        other = [point(p, True, 12) for p in IDS]
        paths = [maj, write(tmp_path / "t.db", config("single", task="gsm8k"), other)]
    elif case == "pilot":
        paths, kwargs = [maj], {"pilot": 5}
    elif case == "score":
        paths, kwargs = [maj], {"pilot": 2, "signal": "score"}
    elif case == "no_sampling":
        paths = [single]
    elif case == "optimal":
        runs = [point(p, True, 12) for p in IDS]
        paths = [maj, write(tmp_path / "o.db", config("optimal", policy="x", budget=1), runs)]
    else:
        paths = [maj, maj]
    with pytest.raises(ConfigError, match=match):
        load_calibration(paths, **kwargs)  # type: ignore[arg-type]


def test_budgets_must_be_distinct_and_positive(stores: tuple[Path, Path]) -> None:
    cal = load_calibration(list(stores), pilot=2)
    for bad in ([], [0, 20], [20, 20]):
        with pytest.raises(ConfigError, match="distinct positive"):
            fit_policy(cal, IDS, bad)
    assert np.isclose(cal.policy_tokens.min(), 20)


def test_pilot_and_oracle_stores_can_be_named(stores: tuple[Path, Path]) -> None:
    maj, single = stores
    # a named pilot store joins the calibration stores when it is not listed
    cal = load_calibration([single], pilot=2, pilot_from=maj)
    assert [s.path for s in cal.stores] == [str(maj), str(single)]
    assert cal.stores[0].roles == ("pilot", "oracle") and len(cal.configs) == 5
    with pytest.raises(ConfigError, match=r"the pilot store .* holds a 'single' run"):
        load_calibration([maj, single], pilot=2, pilot_from=single)
    with pytest.raises(ConfigError, match=r"the oracle store .* holds a 'single' run"):
        load_calibration([maj, single], pilot=2, oracle=single)
