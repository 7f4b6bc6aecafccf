"""pass@k with the unbiased estimator, over stored samples, and in the report."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from tests._stores import config, sampled, write

from ponder.analysis.passk import default_ks, pass_at_k, pass_at_k_table
from ponder.analysis.report import summarize_run, write_report


def naive(n: int, c: int, k: int) -> float:
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


@pytest.mark.parametrize(("n", "c", "k"), [(8, 0, 1), (8, 1, 1), (8, 3, 2), (8, 5, 4),
                                           (8, 8, 8), (10, 2, 9), (200, 7, 100)])  # fmt: skip
def test_the_estimator_matches_the_binomial_formula(n: int, c: int, k: int) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(naive(n, c, k), abs=1e-12)


def test_it_is_stable_where_the_coefficients_overflow_floats() -> None:
    # C(2000, 1000) is about 1e600: the binomial form cannot be computed in floats
    assert pass_at_k(2000, 1, 1000) == pytest.approx(0.5)
    assert pass_at_k(2000, 0, 1000) == 0.0 and pass_at_k(2000, 1500, 1000) == 1.0
    assert pass_at_k(5, 1, 1) == pytest.approx(0.2)


def test_bad_counts_are_refused() -> None:
    for n, c, k in [(4, 5, 1), (4, -1, 1), (4, 1, 0), (4, 1, 5)]:
        with pytest.raises(ValueError):
            pass_at_k(n, c, k)


def test_default_ks_double_up_to_n() -> None:
    assert default_ks(1) == [1] and default_ks(8) == [1, 2, 4, 8]
    assert default_ks(6) == [1, 2, 4, 6] and default_ks(2) == [1, 2]


def test_a_run_table_averages_over_problems() -> None:
    records = [
        sampled("p1", ["A", "Z", "Z", "Z"]),
        sampled("p2", ["A", "A", None, "Z"]),
        sampled("p3", ["Z", "Z", "Z", "Z"]),
    ]
    table = pass_at_k_table(records)
    assert [p.k for p in table] == [1, 2, 4]
    assert table[0].value == pytest.approx((1 / 4 + 2 / 4 + 0) / 3)
    assert table[1].value == pytest.approx((naive(4, 1, 2) + naive(4, 2, 2)) / 3)
    assert table[2].value == pytest.approx(2 / 3) and table[2].problems == 3
    assert pass_at_k_table(records, ks=[3])[0].k == 3
    with pytest.raises(ValueError, match=r"k must be in 1\.\.4"):
        pass_at_k_table(records, ks=[5])
    ungraded = dataclasses.replace(records[0], answer_correct={})
    with pytest.raises(ValueError, match="ungraded"):
        pass_at_k_table([ungraded])


def test_the_report_shows_pass_at_k_and_executions(tmp_path: Path) -> None:
    records = [sampled("p1", ["A", "Z"]), sampled("p2", ["Z", "Z"], idx=1)]
    records = [dataclasses.replace(r, meta={"execution": {"executions": 3, "seconds": 0.6}})
               for r in records]  # fmt: skip
    db = write(tmp_path / "maj.db", config("majority", n=2), records)
    run = summarize_run(db, bootstrap=20)
    assert [(p.k, p.value) for p in run.pass_at_k] == [(1, 0.25), (2, 0.5)]
    assert run.execution is not None
    assert (run.execution.executions, run.execution.seconds) == (3.0, pytest.approx(0.6))
    assert run.execution.seconds_each == pytest.approx(0.2)
    paths = write_report([db], tmp_path / "report", bootstrap=20)
    html = paths.html.read_text()
    assert "pass@1" in html and "pass@2" in html and "sandboxed executions per problem" in html
    (data,) = json.loads(paths.json.read_text())["runs"]
    assert data["pass_at_k"] == [{"k": 1, "pass": 0.25, "problems": 2},
                                 {"k": 2, "pass": 0.5, "problems": 2}]  # fmt: skip
    assert data["execution"]["executions_per_problem"] == 3.0


def test_search_runs_get_no_pass_at_k(tmp_path: Path) -> None:
    db = write(tmp_path / "beam.db", config("beam_search", n=2), [sampled("p1", ["A", "Z"])])
    run = summarize_run(db, bootstrap=10)
    assert run.pass_at_k == () and run.execution is None


def test_the_report_says_in_which_isolation_mode_code_ran(tmp_path: Path) -> None:
    metas = [
        {"execution": {"executions": 3, "seconds": 0.6, "isolation": {"bwrap": 3}},
         "grading_isolation": "bwrap"},
        {"execution": {"executions": 2, "seconds": 0.4,
                       "isolation": {"bwrap": 1, "unisolated": 1}},
         "grading_isolation": "unisolated"},
    ]  # fmt: skip
    records = [sampled("p1", ["A", "Z"]), sampled("p2", ["Z", "Z"], idx=1)]
    records = [dataclasses.replace(r, meta=m) for r, m in zip(records, metas, strict=True)]
    db = write(tmp_path / "maj.db", config("majority", n=2), records)
    run = summarize_run(db, bootstrap=20)
    assert run.isolation == {
        "executions": {"bwrap": 4, "unisolated": 1},
        "graded": {"bwrap": 1, "unisolated": 1},
    }
    said = ("4 executions under bwrap; 1 executions under unisolated; 1 problems graded "
            "under bwrap; 1 problems graded under unisolated")  # fmt: skip
    paths = write_report([db], tmp_path / "report", bootstrap=20)
    assert f"code isolation: {said}" in paths.html.read_text()
    (data,) = json.loads(paths.json.read_text())["runs"]
    assert data["isolation"] == run.isolation
    proc = subprocess.run(
        [sys.executable, "-m", "ponder.cli", "report", str(db), "--out", str(tmp_path / "r"),
         "--bootstrap", "20"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"code isolation: {run.label}: {said}" in proc.stdout
    # a run that ran no code says nothing about isolation
    plain = write(tmp_path / "plain.db", config("majority", n=2), [sampled("p1", ["A"])])
    assert summarize_run(plain, bootstrap=20).isolation == {}
