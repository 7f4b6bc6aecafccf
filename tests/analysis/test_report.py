from __future__ import annotations

import base64
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from ponder.analysis.report import run_label, summarize_run, write_report
from ponder.core.errors import ConfigError
from ponder.core.types import Candidate, Usage
from ponder.runs.store import Record, RunStore

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def config(strategy: str, model: str = "tiny-model", **options: Any) -> dict[str, Any]:
    return {
        "task": "toy",
        "model": model,
        "strategy": {"name": strategy, "options": options},
        "max_tokens": 64,
        "seed": 0,
        "ponder_version": "0.1.0",
        "created": "2025-01-01T00:00:00+00:00",
    }


def make_store(
    path: Path,
    cfg: dict[str, Any],
    samples: Sequence[Sequence[str | None]],
    *,
    scores: bool = False,
    errors: int = 0,
) -> Path:
    with RunStore(path) as store:
        store.init_or_check(cfg)
        for i, answers in enumerate(samples):
            cands = tuple(
                Candidate(
                    f"answer: {a}",
                    a,
                    Usage(20 if j == 0 else 0, 0 if j == 0 else 20, 10 + j),
                    score=0.5 if scores else None,
                )
                for j, a in enumerate(answers)
            )
            store.put(
                Record(
                    problem_id=f"p{i}",
                    idx=i,
                    question=f"question {i}",
                    reference="A",
                    answer=answers[0],
                    correct=answers[0] == "A",
                    candidates=cands,
                    answer_correct={a: a == "A" for a in answers if a is not None},
                    usage=sum((c.usage for c in cands), Usage()),
                )
            )
        for k in range(errors):
            store.put(
                Record(
                    problem_id=f"e{k}",
                    idx=1000 + k,
                    question="q",
                    reference="A",
                    answer=None,
                    correct=False,
                    error="EngineTimeout: slow",
                )
            )
    return path


MAJORITY = [["A", "B", "A", "A"], ["B", "B", "A", "C"], ["A", None, "B", "A"], ["C", "A", "A", "B"]]


def test_report_writes_png_html_and_json(tmp_path: Path) -> None:
    voted = make_store(tmp_path / "maj.db", config("majority", n=4), MAJORITY, errors=2)
    single = make_store(tmp_path / "one.db", config("single"), [["A"], ["B"], ["A"], ["A"]])
    paths = write_report([voted, single], tmp_path / "report", bootstrap=200)

    png = paths.png.read_bytes()
    assert paths.png.name == "accuracy_vs_tokens.png" and png.startswith(PNG_MAGIC)

    page = paths.html.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert "majority n=4 · tiny-model" in page and "single · tiny-model" in page
    # two own points, one curve, the efficiency table (majority is the reference), and
    # both runs' pass@k
    assert page.count("<table>") == 6
    assert "<th>95% CI</th>" in page and "2 errors" in page
    embedded = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert embedded is not None and base64.b64decode(embedded.group(1)) == png
    assert not re.search(r'(src|href)="(https?:)?//', page), "no external assets"

    numbers = json.loads(paths.json.read_text())
    maj, one = numbers["runs"]
    assert maj["curve_method"] == "majority" and [p["n"] for p in maj["curve"]] == [1, 2, 3, 4]
    assert maj["errors"] == 2 and maj["finished"] == 4
    assert maj["point"]["accuracy"] == pytest.approx(0.5)
    assert one["curve"] is None and one["point"]["accuracy"] == pytest.approx(0.75)
    tokens = [p["tokens"] for p in maj["curve"]]
    assert tokens == sorted(tokens)


def test_everything_in_the_page_is_escaped(tmp_path: Path) -> None:
    nasty = "<script>alert('x')</script>"
    db = make_store(tmp_path / "x.db", config("majority", model=nasty, n=2), [["A", "B"]])
    page = write_report([db], tmp_path / "out", bootstrap=50).html.read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_a_curve_that_cannot_be_drawn_becomes_a_note(tmp_path: Path) -> None:
    db = make_store(tmp_path / "bon.db", config("best_of_n", n=2), [["A", "B"], ["B", "A"]])
    run = summarize_run(db, bootstrap=50)
    assert run.curve is None and run.point is not None
    assert any("scores" in note for note in run.notes)
    scored = make_store(
        tmp_path / "bon2.db", config("best_of_n", n=2), [["A", "B"], ["B", "A"]], scores=True
    )
    assert summarize_run(scored, bootstrap=50).curve_method == "best_of_n"
    paths = write_report([db, scored], tmp_path / "out", bootstrap=50)
    assert "no scaling curve" in paths.html.read_text()


def test_same_labels_are_told_apart_and_empty_runs_are_reported(tmp_path: Path) -> None:
    a = make_store(tmp_path / "a.db", config("majority", n=2), [["A", "B"]])
    b = make_store(tmp_path / "b.db", config("majority", n=2), [["B", "A"]])
    empty = make_store(tmp_path / "empty.db", config("single"), [], errors=1)
    paths = write_report([a, b, empty], tmp_path / "out", bootstrap=50, log_x=False)
    labels = [r["label"] for r in json.loads(paths.json.read_text())["runs"]]
    assert labels == [
        "majority n=2 · tiny-model (a)",
        "majority n=2 · tiny-model (b)",
        "single · tiny-model",
    ]
    assert "no finished records" in paths.html.read_text()
    assert paths.png.read_bytes().startswith(PNG_MAGIC)


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        write_report([tmp_path / "missing.db"], tmp_path / "out")
    with pytest.raises(ValueError):
        write_report([], tmp_path / "out")
    assert not (tmp_path / "missing.db").exists()


def test_run_label() -> None:
    assert run_label(config("majority", n=8)) == "majority n=8 · tiny-model"
    assert run_label({}) == "? · ?"
    assert run_label(config("best_of_n", n=4, scorer="judge")) == "best_of_n n=4 judge · tiny-model"
    probe = config("beam_search", n=4, verifier="probe:runs/x/probe.npz")
    assert run_label(probe) == "beam_search n=4 probe:probe.npz · tiny-model"
    assert run_label(config("revise", n=4, scorer="logprob")) == "revise n=4 · tiny-model"
    replayed = {**config("majority", n=2), "extra": {"replay": {"source": "bank.db"}}}
    assert run_label(replayed) == "majority n=2 (replay) · tiny-model"


def test_common_reports_every_run_on_the_problems_all_finished(tmp_path: Path) -> None:
    # the majority run stopped after 2 problems (plus an error record); the single run
    # finished all 4, and its accuracy on the first 2 is 0.5 against 0.75 on all 4
    voted = make_store(tmp_path / "maj.db", config("majority", n=4), MAJORITY[:2], errors=1)
    single = make_store(tmp_path / "one.db", config("single"), [["A"], ["B"], ["A"], ["A"]])
    whole = json.loads(
        write_report([voted, single], tmp_path / "all", bootstrap=50).json.read_text()
    )
    assert [r["finished"] for r in whole["runs"]] == [2, 4]
    assert whole["runs"][1]["point"]["accuracy"] == pytest.approx(0.75)

    paths = write_report([voted, single], tmp_path / "common", bootstrap=50, common=True)
    numbers = json.loads(paths.json.read_text())
    maj, one = numbers["runs"]
    assert maj["finished"] == one["finished"] == 2
    assert maj["errors"] == 0  # the error record's problem is not a common one
    assert one["point"]["accuracy"] == pytest.approx(0.5)
    assert maj["point"]["accuracy"] == pytest.approx(0.5)
    assert "2 problems all of them finished" in " ".join(numbers["notes"])
    assert "2 problems all of them finished" in paths.html.read_text(encoding="utf-8")


def test_common_with_no_shared_problem_is_a_clear_error(tmp_path: Path) -> None:
    a = make_store(tmp_path / "a.db", config("single"), [])
    b = make_store(tmp_path / "b.db", config("single"), [["A"]])
    with pytest.raises(ConfigError, match="no problem is finished in every run"):
        write_report([a, b], tmp_path / "r", bootstrap=50, common=True)


def test_the_cli_passes_common_and_reports_its_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ponder.cli import main

    voted = make_store(tmp_path / "maj.db", config("majority", n=4), MAJORITY[:3])
    single = make_store(tmp_path / "one.db", config("single"), [["A"], ["B"], ["A"], ["A"]])
    out = tmp_path / "r"
    assert main(["report", str(voted), str(single), "--out", str(out), "--common"]) == 0
    runs = json.loads((out / "curve.json").read_text())["runs"]
    assert [r["finished"] for r in runs] == [3, 3]

    empty = make_store(tmp_path / "none.db", config("single"), [])
    assert main(["report", str(empty), str(single), "--out", str(out), "--common"]) == 2
    assert "no problem is finished in every run" in capsys.readouterr().err
