"""The hybrid CoT + PAL vote replayed on hand-made banks, worked out by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests._stores import config, sampled

from ponder.analysis.hybrid import (
    Cell,
    cheapest_reaching,
    choose,
    cross_check,
    grid,
    hybrid_table,
    load_pair,
)
from ponder.cli import main
from ponder.runs.store import RunStore


def _store(
    path: Path,
    strategy: str,
    problems: dict[str, list[str | None]],
    scores: dict[str, list[float]] | None = None,
    **usage: int,
) -> Path:
    with RunStore(path) as store:
        store.init_or_check(config(strategy, n=len(next(iter(problems.values())))))
        for i, (pid, answers) in enumerate(problems.items()):
            own = None if scores is None else scores[pid]
            store.put(sampled(pid, answers, idx=i, scores=own, **usage))
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
    assert "K,M or K,M,W" in capsys.readouterr().err
    # weighted cells need the CoT bank's scores, which this one lacks
    with pytest.raises(ValueError, match="carry none"):
        hybrid_table(load_pair(cot, pal), [(1, 1, 0.5)])


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


def _scored_pair(tmp_path: Path, name: str = "s") -> tuple[Path, Path]:
    # CoT scored: p0 B (0.9, wrong) and A (0.2, right); p1 A twice; 8 scoring tokens a
    # record, 4 a sample
    cot = _store(
        tmp_path / f"{name}-cot.db",
        "best_of_n",
        {"p0": ["B", "A"], "p1": ["A", "A"]},
        scores={"p0": [0.9, 0.2], "p1": [0.5, 0.5]},
        prompt=10,
        completion=20,
        scoring=8,
    )
    pal = _store(
        tmp_path / f"{name}-pal.db", "pal", {"p0": ["A", "A"], "p1": [None, "A"]}, prompt=10,
        completion=5,
    )  # fmt: skip
    return cot, pal


def test_weighted_cells_weigh_cot_by_score_and_programs_by_w_worked_by_hand(
    tmp_path: Path,
) -> None:
    pair = load_pair(*_scored_pair(tmp_path))
    rows = {
        r.name: r for r in hybrid_table(pair, [(1, 1, 0.5), (1, 1, 1.0), (1, 1)], orderings=400)
    }
    # w = 0.5: on p0 the CoT sample B (0.9) outweighs the program's A (0.5), A (0.2) joins
    # it: right on half of p0's orders; p1 always A
    assert rows["hybrid[1,1,0.5]"].accuracy == pytest.approx(0.75, abs=0.05)
    # w = 1: the program's A (1.0) outweighs B (0.9): always right
    assert rows["hybrid[1,1,1]"].accuracy == 1.0
    # unweighted: 1-1 ties go to the CoT sample, right on half of p0's orders, and p1 A
    assert rows["hybrid[1,1]"].accuracy == pytest.approx(0.75, abs=0.05)
    # tokens: CoT 10 + 20, program 10 + 5, and the weighted cells pay 4 scoring tokens
    assert rows["hybrid[1,1]"].tokens == 45.0
    assert rows["hybrid[1,1,1]"].tokens == 49.0
    assert rows["hybrid[1,1,1]"].pal_weight == 1.0


def test_choose_picks_per_n_the_best_cell_within_majority_tokens_on_train(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train = load_pair(*_scored_pair(tmp_path, "train"))
    cells = grid(train, [0.5, 1.0])
    # every K in 0..2 and M in 0..2; weighted ones only with both kinds of sample
    assert Cell(0, 1) in cells and Cell(1, 2, 1.0) in cells and Cell(2, 0, 1.0) not in cells
    assert len(cells) == 8 + 4 * 2
    picked = choose(train, cells, [1, 2], orderings=400)
    # majority n = 1 spends 30 tokens: within it, PAL alone (0,1) at 15 or (0,2) at 20
    # are always right (p0 A; p1's None then A: half of p1's orders for one program)
    assert picked[1].name == "hybrid[0,2]" and picked[1].accuracy == 1.0
    # n = 2 spends 50: (0,2) still the most accurate, and cheaper than the ties
    assert picked[2].name == "hybrid[0,2]"
    with pytest.raises(ValueError, match=r"1\.\.2 samples"):
        choose(train, cells, [3])
    cot, pal = _scored_pair(tmp_path, "test")
    tcot, tpal = _scored_pair(tmp_path, "train2")
    argv = ["bank", "hybrid", str(cot), str(pal), "--train", str(tcot), str(tpal),
            "--at", "1", "2", "--pal-weights", "1", "--orderings", "20",
            "--json", str(tmp_path / "h.json")]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "| 1 | hybrid[0,2] | 1.000 | 1.000 |" in out
    data = json.loads((tmp_path / "h.json").read_text())
    assert [c["n"] for c in data["chosen"]] == [1, 2]
    assert data["chosen"][0]["test"]["rule"] == "hybrid[0,2]"
    assert main([*argv[:4], "--cells", "1,1", "--pal-weights", "1"]) == 2
    assert "--pal-weights" in capsys.readouterr().err


def test_the_bench_keeps_per_n_the_family_best_on_train(tmp_path: Path) -> None:
    import subprocess
    import sys

    train_cot, train_pal = _scored_pair(tmp_path, "train")
    test_cot, test_pal = _scored_pair(tmp_path, "test")
    # a second family whose programs are always wrong on train
    bad = _store(tmp_path / "bad.db", "pal", {"p0": ["B", "B"], "p1": ["B", "B"]})
    script = Path(__file__).resolve().parents[2] / "bench" / "hybrid_choice.py"
    argv = [sys.executable, str(script), str(train_cot), str(test_cot),
            "--pal", "bad", str(bad), str(test_pal), "--pal", "good", str(train_pal),
            str(test_pal), "--pal-weights", "1", "--at", "1", "2", "--orderings", "20",
            "--bootstrap", "50", "--reach", "2", "--json", str(tmp_path / "c.json")]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "c.json").read_text())
    chosen = data["chosen"]
    # the cheapest cell reaching majority-2's train accuracy (about 0.75): programs
    # alone; on test it is compared with majority-2 itself (50 tokens)
    reach = data["reach"]
    assert reach["family"] == "good" and reach["test"]["rule"] in ("hybrid[0,1]", "hybrid[0,2]")
    assert reach["test"]["majority_n"] == 2 and reach["test"]["majority_tokens"] == 50.0
    assert reach["token_ratio"] == 50.0 / reach["test"]["tokens"]
    assert [(c["n"], c["family"], c["test"]["rule"]) for c in chosen] == [
        (1, "good", "hybrid[0,2]"),
        (2, "good", "hybrid[0,2]"),
    ]
    assert "| 1 | hybrid[0,2] | good | 1.000 |" in proc.stdout
    # families must share their train problems
    fewer = _store(tmp_path / "fewer.db", "pal", {"p0": ["A", "A"]})
    argv[argv.index(str(bad))] = str(fewer)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "other train problems" in proc.stderr


def test_the_cheapest_cell_reaching_majority_and_the_comparison_against_a_fixed_n(
    tmp_path: Path,
) -> None:
    # CoT always wrong on p0 and right on p1: majority is 0.5 at every n
    cot = _store(tmp_path / "c.db", "majority", {"p0": ["B", "B"], "p1": ["A", "A"]},
                 prompt=10, completion=20)  # fmt: skip
    pal = _store(tmp_path / "p.db", "pal", {"p0": ["A", "A"], "p1": [None, "A"]}, prompt=10,
                 completion=5)  # fmt: skip
    pair = load_pair(cot, pal)
    majority, row = cheapest_reaching(pair, grid(pair), 2, orderings=50)
    assert (majority.accuracy, majority.tokens) == (0.5, 50.0)
    # one program (15 tokens) is right on p0 and on half of p1's orders: the cheapest
    assert row is not None and row.name == "hybrid[0,1]" and row.tokens == 15.0
    # against majority-2 whatever it spends, not majority at matched tokens (n = 1)
    (fixed,) = hybrid_table(pair, [(0, 1)], orderings=50, against=2)
    (matched,) = hybrid_table(pair, [(0, 1)], orderings=50)
    assert (fixed.majority_n, fixed.majority_tokens) == (2, 50.0) and matched.majority_n == 1
    with pytest.raises(ValueError, match="not 3"):
        hybrid_table(pair, [(0, 1)], against=3)
    # no cell reaches an accuracy no mix has: programs that are always wrong
    wrong = _store(tmp_path / "w.db", "pal", {"p0": ["B", "B"], "p1": ["B", "B"]})
    lost = load_pair(cot, wrong)
    assert cheapest_reaching(lost, [Cell(0, 1)], 2, orderings=10)[1] is None
