"""The README's command forms, end to end, on the real smollm2-135m model and server."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def ponder(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "ponder.cli", *args], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"ponder {' '.join(args)} failed:\n{proc.stderr[-3000:]}"
    return proc


def test_run_json_on_embedded_model(smollm2_path: Path) -> None:
    out = ponder(
        "run", "What is 2 + 3?", "--model", str(smollm2_path), "--strategy", "majority",
        "--n", "3", "--max-tokens", "48", "--json",
    )  # fmt: skip
    data = json.loads(out.stdout)
    assert {"answer", "votes", "usage", "seconds"} <= set(data)
    assert sum(data["votes"].values()) <= 3
    usage = data["usage"]
    assert usage["calls"] == 1 and usage["cached_tokens"] == 2 * usage["prompt_tokens"]
    assert 0 < usage["completion_tokens"] <= 3 * 48


def test_run_text_output_on_server(llama_server_url: str) -> None:
    out = ponder(
        "run", "What is 2 + 3?", "--base-url", llama_server_url, "--model", "smollm2",
        "--strategy", "majority", "--n", "2", "--max-tokens", "32",
    )  # fmt: skip
    assert "answer:" in out.stdout and "tokens:" in out.stdout


def test_eval_resume_and_report(smollm2_path: Path, tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    args = [
        "eval", "--task", "demo", "--limit", "3", "--model", str(smollm2_path),
        "--strategy", "majority", "--n", "2", "--max-tokens", "48", "--out", str(db),
        "--no-progress",
    ]  # fmt: skip
    ponder(*args)
    ponder(*args)  # resumes: nothing left to do, nothing duplicated
    with sqlite3.connect(db) as con:
        rows = con.execute(
            "select problem_id, count(*) from records group by problem_id"
        ).fetchall()
    assert len(rows) == 3 and all(c == 1 for _, c in rows)
    ponder("report", str(db), "--out", str(tmp_path / "report"))
    assert (tmp_path / "report" / "accuracy_vs_tokens.png").read_bytes()[:4] == b"\x89PNG"
    html = (tmp_path / "report" / "report.html").read_text()
    assert "data:image/png;base64," in html and "majority" in html
