"""The hybrid CoT + PAL vote replayed on hand-made banks, worked out by hand."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests._stores import config, sampled

from ponder.analysis.hybrid import cross_check, hybrid_table, load_pair
from ponder.cli import main
from ponder.runs.store import RunStore


def _store(path: Path, strategy: str, problems: dict[str, list[str | None]], **usage: int) -> Path:
    with RunStore(path) as store:
        store.init_or_check(config(strategy, n=len(next(iter(problems.values())))))
        for i, (pid, answers) in enumerate(problems.items()):
            store.put(sampled(pid, answers, idx=i, **usage))
    return path


def _pair(tmp_path: Path) -> tuple[Path, Path]:
    # CoT (prompt 10, 20 a sample): p0 split B, A; p1 right; p2 only in CoT
    cot = _store(
        tmp_path / "cot.db",
        "majority",
        {"p0": ["B", "A"], "p1": ["A", "A"], "p2": ["A", "A"]},
        prompt=10,
        completion=20,
    )
    # PAL (prompt 10, 5 a sample): p0 says A twice; p1 fails to answer once
    pal = _store(
        tmp_path / "pal.db", "pal", {"p0": ["A", "A"], "p1": [None, "A"]}, prompt=10, completion=5
    )
    return cot, pal


def test_the_hybrid_vote_and_its_tokens_worked_by_hand(tmp_path: Path) -> None:
    pair = load_pair(*_pair(tmp_path))
    assert pair.problem_ids == ("p0", "p1")
    cells = [(0, 2), (1, 2), (2, 0), (2, 2)]
    rows = {r.name: r for r in hybrid_table(pair, cells, orderings=400)}
    # PAL alone, 2 samples: p0 A; p1 A (None casts no vote) -> 1.0 at 10 + 2 * 5 tokens
    assert rows["hybrid[0,2]"].accuracy == 1.0
    assert rows["hybrid[0,2]"].tokens == 20.0
    # 20 tokens: CoT majority at n = 1 (30 tokens) is the cheapest that spends as much;
    # it is right on p1 and on half of p0's orders
    assert rows["hybrid[0,2]"].majority_n == 1
    assert rows["hybrid[0,2]"].majority_accuracy == pytest.approx(0.75, abs=0.05)
    assert rows["hybrid[0,2]"].diff == pytest.approx(0.25, abs=0.05)
    # one CoT and two PAL: p0 is A 2 (+1 if the CoT sample is A) against at most B 1
    assert rows["hybrid[1,2]"].accuracy == 1.0
    assert rows["hybrid[1,2]"].tokens == 50.0  # 10 + 20 and 10 + 2 * 5
    assert rows["hybrid[1,2]"].majority_n == 2  # CoT at n = 2 spends 10 + 2 * 20 = 50
    assert rows["hybrid[1,2]"].diff == pytest.approx(0.25, abs=0.05)
    # CoT alone at 2: p0's 1-1 tie goes to the first in the order: half right
    assert rows["hybrid[2,0]"].accuracy == pytest.approx(0.75, abs=0.05)
    assert rows["hybrid[2,0]"].majority_n == 2
    assert rows["hybrid[2,0]"].diff == 0.0
    # 50 + 20 tokens: no n of the CoT bank spends as much
    assert rows["hybrid[2,2]"].majority_n is None


def test_bad_cells_and_disjoint_banks_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cot, pal = _pair(tmp_path)
    with pytest.raises(ValueError, match="cells must have"):
        hybrid_table(load_pair(cot, pal), [(3, 1)])
    with pytest.raises(ValueError, match="cells must have"):
        hybrid_table(load_pair(cot, pal), [(0, 0)])
    other = _store(tmp_path / "other.db", "pal", {"q9": ["A"]})
    with pytest.raises(ValueError, match="share no finished problem"):
        load_pair(cot, other)
    assert main(["bank", "hybrid", str(cot), str(pal), "--cells", "1,1", "--orderings", "10"]) == 0
    assert "| hybrid[1,1] |" in capsys.readouterr().out
    assert main(["bank", "hybrid", str(cot), str(pal), "--cells", "1"]) == 2
    assert "K,M pairs" in capsys.readouterr().err


def test_the_execution_cross_check_as_a_signal_worked_by_hand(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cot, pal = _pair(tmp_path)
    # the greedy program says A on p0 (right) and B on p1 (wrong)
    program = tmp_path / "pal1.db"
    with RunStore(program) as store:
        store.init_or_check(config("pal", n=1))
        store.put(sampled("p0", ["A"], idx=0))
        store.put(sampled("p1", ["B"], idx=1))
    check = cross_check(cot, program)
    assert (check.problems, check.samples) == (2, 4)
    # p0: B (wrong, 0) and A (right, 1) -> within AUC 1; p1 has no wrong sample
    assert check.within_auc == 1.0 and check.within_problems == 1
    # pooled: labels 0 1 1 1, signal 0 1 0 0: of the three (right, wrong) pairs one is
    # ranked right and two are tied, which count half: (1 + 0.5 + 0.5) / 3
    assert check.pooled_auc == pytest.approx(2 / 3)
    assert check.program_accuracy == 0.5 and check.program_answered == 1.0
    argv = ["bank", "hybrid", str(cot), str(pal), "--cells", "1,1", "--orderings", "5",
            "--program", str(program)]  # fmt: skip
    assert main(argv) == 0
    assert "execution cross-check on 2 problems" in capsys.readouterr().out
