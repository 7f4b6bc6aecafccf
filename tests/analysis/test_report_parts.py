"""The report's parts on their own: ``html_table`` (every table of the page) and
``summarize_runs`` (the numbers ``write_report`` writes out)."""

from __future__ import annotations

from pathlib import Path

from tests.analysis.test_report import MAJORITY, config, make_store

from ponder.analysis.page import html_table
from ponder.analysis.summary import ReportData, summarize_run, summarize_runs


def test_html_table_keeps_cells_as_given() -> None:
    out = html_table(("run", "a &amp; b"), [("<em>x</em>", "1"), ("y", "2")])
    assert out == (
        "<table><thead><tr><th>run</th><th>a &amp; b</th></tr></thead>"
        "<tbody><tr><td><em>x</em></td><td>1</td></tr><tr><td>y</td><td>2</td></tr>"
        "</tbody></table>"
    )


def test_html_table_without_rows_has_an_empty_body() -> None:
    assert html_table(["n"], []) == (
        "<table><thead><tr><th>n</th></tr></thead><tbody></tbody></table>"
    )


def test_summarize_runs_compares_with_the_baseline_and_the_majority_reference(
    tmp_path: Path,
) -> None:
    single = make_store(tmp_path / "single.db", config("single"), [[a[0]] for a in MAJORITY])
    vote = make_store(tmp_path / "vote.db", config("majority", n=4), MAJORITY)
    data = summarize_runs([single, vote], bootstrap=20, seed=1, baseline=single)
    assert isinstance(data, ReportData)
    assert [r.path for r in data.runs] == [single, vote]
    assert data.reference is not None and data.reference.n == 4  # the vote's last point
    assert data.baseline_label == data.runs[0].label
    assert data.runs[0].paired is None  # the baseline is not compared with itself
    assert data.runs[1].paired is not None
    assert all(r.efficiency is not None for r in data.runs)
    assert data.notes == ()
    numbers = data.to_dict()
    assert numbers["baseline"] == {"path": str(single), "label": data.baseline_label}
    assert (numbers["bootstrap"], numbers["seed"]) == (20, 1)
    assert [r["path"] for r in numbers["runs"]] == [str(single), str(vote)]


def test_summarize_runs_notes_a_missing_reference_and_keeps_the_runs_as_read(
    tmp_path: Path,
) -> None:
    single = make_store(tmp_path / "single.db", config("single"), [[a[0]] for a in MAJORITY])
    data = summarize_runs([single], bootstrap=10)
    assert data.reference is None
    assert data.notes[0].startswith("no efficiency table")
    assert data.runs[0] == summarize_run(single, bootstrap=10)
    assert data.to_dict()["baseline"] is None
