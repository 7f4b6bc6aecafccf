"""Hybrid votes (chains of thought and programs) as configurations of the compute-optimal
policy (``ponder optimize --hybrid``): the pilot run's first n chains and the pal run's
first m programs, in stored order, reusing the pilot; every number worked out by hand.

Chains (a majority run, 10 prompt tokens and 5 a sample) and programs (a pal run, the
same costs), pilot 1:

    problem  chains  programs   n=1,m=1  n=2,m=1  n=1,m=2  n=2,m=2
    p0       A B     A None     A  ok    A  ok    A  ok    A  ok
    p1       B B     A A        B (tie)  B        A  ok    B (tie: B reached 2 first)
    p2       A A     B B        A (tie)  A  ok    B        A (tie)

T = chains (10 + 5n) + programs (10 + 5m); E = the pilot (15), the chains after it (a
second request: 10 + 5) and the programs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from tests._stores import config, sampled, write

from ponder.analysis.calibration import HybridSpec, load_calibration
from ponder.analysis.optimize import optimize
from ponder.core.errors import ConfigError
from ponder.core.sandbox import ALLOW_UNISOLATED_ENV
from ponder.strategies.optimal import ComputeOptimal
from ponder.strategies.optimal.policy import HYBRID_STRATEGY, load_policy

CHAINS = {"p0": ["A", "B"], "p1": ["B", "B"], "p2": ["A", "A"]}
PROGRAMS: dict[str, list[str | None]] = {"p0": ["A", None], "p1": ["A", "A"], "p2": ["B", "B"]}
SAMPLING = {"temperature": 0.7, "top_p": 0.95}


@pytest.fixture(autouse=True)
def _opted_in(monkeypatch: pytest.MonkeyPatch) -> None:
    # the configurations are built again (the sandbox checked) where bubblewrap may not run
    monkeypatch.setenv(ALLOW_UNISOLATED_ENV, "1")


def _chains(tmp_path: Path, scores: dict[str, list[float]] | None = None) -> Path:
    strategy = "majority" if scores is None else "weighted_majority"
    opts = {"n": 2, **SAMPLING} | ({} if scores is None else {"scorer": "logprob"})
    return write(
        tmp_path / f"{strategy}.db",
        config(strategy, **opts),
        [sampled(p, a, idx=i, scores=None if scores is None else scores[p])
         for i, (p, a) in enumerate(CHAINS.items())],
    )  # fmt: skip


def _programs(tmp_path: Path) -> Path:
    return write(
        tmp_path / "pal.db",
        config("pal", n=2, temperature=0.7),
        [sampled(p, a, idx=i) for i, (p, a) in enumerate(PROGRAMS.items())],
    )


def _hybrids(cal) -> dict[tuple[int, int, float | None], int]:
    return {
        (c.options["n"], c.options["programs"], c.options.get("program_weight")): i
        for i, c in enumerate(cal.configs)
        if c.strategy == HYBRID_STRATEGY
    }


def test_hybrid_votes_are_replayed_in_stored_order_reusing_the_pilot(tmp_path: Path) -> None:
    cal = load_calibration(
        [_chains(tmp_path), _programs(tmp_path)], pilot=1, hybrid=HybridSpec((1.0,))
    )
    at = _hybrids(cal)
    assert sorted(at) == [(1, 1, None), (1, 2, None), (2, 1, None), (2, 2, None)]  # unscored
    want = {
        (1, 1): ([True, False, True], 30, 30),
        (2, 1): ([True, False, True], 35, 45),
        (1, 2): ([True, True, False], 35, 35),
        (2, 2): ([True, False, True], 40, 50),
    }
    for (n, m), (ok, t, e) in want.items():
        i = at[(n, m, None)]
        assert cal.correct[i].tolist() == ok, (n, m)
        assert cal.own_tokens[i].tolist() == [t] * 3, (n, m)
        assert cal.policy_tokens[i].tolist() == [e] * 3, (n, m)
    c = cal.configs[at[(2, 1, None)]]
    assert c.reuses_pilot and c.source.endswith("pal.db") and "scorer" not in c.options
    # the programs as the pal run drew them: two programs, so sampled at 0.7
    assert c.options["program_temperature"] == 0.7 and c.options["temperature"] == 0.7
    assert c.options["isolation"] == "auto" and c.options["shots"] == 0


def test_a_scored_pilot_run_adds_chains_weighted_by_score_and_programs_by_w(
    tmp_path: Path,
) -> None:
    scores = {"p0": [0.2, 0.9], "p1": [0.5, 0.5], "p2": [0.5, 0.5]}
    cal = load_calibration(
        [_chains(tmp_path, scores), _programs(tmp_path)], pilot=1, hybrid=HybridSpec((0.5, 1.0))
    )
    at = _hybrids(cal)
    # p0, two chains and a program: A 0.2 + w against B 0.9
    assert cal.correct[at[(2, 1, 1.0)]].tolist()[0] is True
    assert cal.correct[at[(2, 1, 0.5)]].tolist()[0] is False
    c = cal.configs[at[(2, 1, 0.5)]]
    assert c.options["scorer"] == "logprob" and c.options["program_weight"] == 0.5


def test_optimize_offers_the_hybrids_and_refuses_them_without_a_pal_run(tmp_path: Path) -> None:
    chains, programs = _chains(tmp_path), _programs(tmp_path)
    result = optimize(
        [chains, programs], pilot=1, bins=1, heldout=0, budgets=[100], hybrid=HybridSpec()
    )
    assert result.calibration.configs[_hybrids(result.calibration)[(1, 2, None)]].reuses_pilot
    # every configuration scores 2 of 3 here, so the cheapest wins: the pilot's majority
    (cell,) = result.policy.cells
    assert cell.config.strategy == "majority" and cell.config.options["n"] == 1
    # a policy whose cell is a hybrid is written, read and built again by optimal
    hybrid = result.calibration.configs[_hybrids(result.calibration)[(2, 2, None)]]
    policy = dataclasses.replace(result.policy, cells=(dataclasses.replace(cell, config=hybrid),))
    path = policy.save(tmp_path / "policy.json")
    built = ComputeOptimal(policy=str(path), budget=100)
    assert load_policy(built.policy).cells[0].config.label.startswith("hybrid n=2")
    with pytest.raises(ConfigError, match="need a pal run"):
        load_calibration([chains], pilot=1, hybrid=HybridSpec())
    with pytest.raises(ConfigError, match="positive"):
        HybridSpec((0.0,))
