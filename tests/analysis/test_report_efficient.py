"""The report's overthinking table and its comparison with a baseline, on hand-made
stores of a math task."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from ponder.analysis.report import run_label, write_report
from ponder.core.types import Candidate, Usage
from ponder.runs.store import Record, RunStore

CHAIN = (
    "She has 16 - 3 - 4 = 9 eggs left.\n"
    "She sells them for 9 * 2 = 18 dollars.\n"
    "Checking again, 9 eggs at 2 dollars each is 18 dollars.\n"
    "The answer is \\boxed{18}."
)


def config(strategy: str, **options: Any) -> dict[str, Any]:
    return {
        "task": "gsm8k",
        "model": "tiny",
        "strategy": {"name": strategy, "options": options},
        "max_tokens": 64,
        "seed": 0,
        "ponder_version": "0.1.0",
        "created": "2025-01-01T00:00:00+00:00",
    }


def store(path: Path, cfg: dict[str, Any], rows: list[tuple[str, bool, int, str]]) -> Path:
    with RunStore(path) as s:
        s.init_or_check(cfg)
        for i, (pid, correct, tokens, text) in enumerate(rows):
            answer = "18" if correct else "20"
            usage = Usage(prompt_tokens=30, completion_tokens=tokens)
            s.put(
                Record(
                    problem_id=pid,
                    idx=i,
                    question="q",
                    reference="18",
                    answer=answer,
                    correct=correct,
                    candidates=(Candidate(text, answer, usage),),
                    answer_correct={answer: correct},
                    usage=usage,
                )
            )
    return path


def test_overthinking_and_baseline_tables(tmp_path: Path) -> None:
    short = CHAIN.split("\nChecking")[0]
    cot_rows = [("p0", True, 60, CHAIN), ("p1", True, 60, CHAIN), ("p2", False, 60, "20")]
    probe_rows = [("p0", True, 30, short), ("p1", False, 30, "20"), ("p2", False, 30, "20")]
    cot = store(tmp_path / "cot.db", config("single"), cot_rows)
    probe = store(tmp_path / "probe.db", config("probe_exit", chunk=16, agree=2), probe_rows)
    program = "```python\nprint(18)\n```"
    pal = store(tmp_path / "pal.db", config("pal", n=1), [("p0", True, 20, program)])
    paths = write_report([cot, probe, pal], tmp_path / "out", bootstrap=100, baseline=cot)

    numbers = json.loads(paths.json.read_text())
    by_label = {r["label"]: r for r in numbers["runs"]}
    cot_run = by_label["single · tiny"]
    over = cot_run["overthinking"]
    assert (over["candidates"], over["found"], over["tokens"]) == (3, 3, 180)
    # each checked chain spends the "Checking again" line after its answer settled
    cut = CHAIN.index("18 dollars.") + len("18 dollars.")
    per_chain = round(60 * len(CHAIN[cut:]) / len(CHAIN))
    assert over["after_settled"] == 2 * per_chain and over["token_count"] == "characters"
    assert cot_run["paired"] is None  # the baseline itself
    assert by_label["pal n=1 · tiny"]["overthinking"] is None

    compared = by_label["probe_exit k=16 m=2 · tiny"]["paired"]
    assert compared["baseline"] == "single · tiny" and compared["problems"] == 3
    assert compared["accuracy_diff"] == -1 / 3 and compared["tokens_saved"] == 30.0
    assert (compared["wins"], compared["losses"]) == (0, 1)
    assert by_label["pal n=1 · tiny"]["paired"]["problems"] == 1
    assert numbers["baseline"]["label"] == "single · tiny"

    page = paths.html.read_text(encoding="utf-8")
    assert "Overthinking: tokens generated after the answer was there" in page
    assert "Against the baseline: single · tiny" in page
    assert "overthinking per problem" in page and "<td>p2</td>" in page


def test_cli_prints_overthinking_and_the_comparison(tmp_path: Path) -> None:
    cot = store(tmp_path / "cot.db", config("single"), [("p0", True, 60, CHAIN)])
    other = store(tmp_path / "maj.db", config("majority", n=1), [("p0", True, 50, CHAIN)])
    proc = subprocess.run(
        [sys.executable, "-m", "ponder.cli", "report", str(cot), str(other),
         "--out", str(tmp_path / "r"), "--bootstrap", "50", "--baseline", str(cot)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "overthinking: single · tiny: " in proc.stdout
    assert "after the answer settled" in proc.stdout
    assert "against single · tiny: majority n=1 · tiny: accuracy +0.000" in proc.stdout
    assert "80.0 tokens/problem against 90.0, saved 10.0" in proc.stdout


def test_no_overthinking_for_code_or_free_form_answers(tmp_path: Path) -> None:
    rows = [("p0", True, 60, CHAIN)]
    code = store(tmp_path / "code.db", config("single") | {"task": "humaneval"}, rows)
    free = store(
        tmp_path / "free.db",
        config("single") | {"task": "jsonl", "extra": {"answers": {"type": "free"}}},
        rows,
    )
    math = store(tmp_path / "math.db", config("single") | {"task": "jsonl"}, rows)
    paths = write_report([code, free, math], tmp_path / "out", bootstrap=10)
    overs = [r["overthinking"] for r in json.loads(paths.json.read_text())["runs"]]
    assert overs[0] is None and overs[1] is None and overs[2]["candidates"] == 1


def test_probe_exit_label_names_its_chunk_and_agreement() -> None:
    assert run_label(config("probe_exit", chunk=32, agree=3)) == "probe_exit k=32 m=3 · tiny"
