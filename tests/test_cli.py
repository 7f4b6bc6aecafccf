import json
import subprocess
import sys

import pytest

from ponder.cli import main


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("run", "eval", "report", "models", "strategies"):
        assert cmd in out


def test_strategies_lists_registered(capsys):
    assert main(["strategies"]) == 0
    out = capsys.readouterr().out
    for name in ("single", "majority", "best_of_n", "weighted_majority"):
        assert name in out


def test_models_list_marks_default(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PONDER_HOME", str(tmp_path))
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "qwen2.5-coder-1.5b" in out and "[default]" in out and str(tmp_path) in out


def test_unknown_model_is_a_clear_error(capsys):
    assert main(["run", "2+2?", "--model", "no-such-model"]) == 2
    assert "unknown model 'no-such-model'" in capsys.readouterr().err


def test_unknown_task_is_a_clear_error(capsys, tmp_path):
    code = main(["eval", "--task", "nope", "--out", str(tmp_path / "r.db")])
    assert code == 2
    assert "nope" in capsys.readouterr().err


def test_unreachable_server_is_a_clear_error(tmp_path):
    # a closed port on loopback: connection refused, retried, then a clear message
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.run(
        [sys.executable, "-m", "ponder.cli", "run", "2+2?", "--base-url",
         f"http://127.0.0.1:{port}/v1", "--model", "m", "--strategy", "single", "--json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "ponder: error:" in proc.stderr and "127.0.0.1" in proc.stderr
    assert "Traceback" not in proc.stderr
    with pytest.raises(json.JSONDecodeError):
        json.loads(proc.stdout)


def test_replay_extend_without_a_bank_is_a_clear_error(capsys, tmp_path):
    code = main(["eval", "--task", "demo", "--replay-extend", "--out", str(tmp_path / "r.db")])
    assert code == 2
    assert "pass it with --replay BANK.db" in capsys.readouterr().err
    assert not (tmp_path / "r.db").exists()


def test_served_model_names_keep_dots():
    from ponder.serve.app import served_name

    assert served_name("qwen2.5-coder-1.5b") == "qwen2.5-coder-1.5b"
    assert served_name("/models/qwen2.5-coder-1.5b.gguf") == "qwen2.5-coder-1.5b"
    assert served_name("meta-llama/Llama-3.1-8B") == "meta-llama/Llama-3.1-8B"


def test_eval_refuses_unisolated_code_before_any_problem_unless_opted_in(
    capsys, tmp_path, monkeypatch
):
    import os

    import ponder.core.sandbox as sandbox_module
    from ponder.core.execution import default_sandbox
    from ponder.core.sandbox import ALLOW_UNISOLATED_ENV

    data = tmp_path / "toy.jsonl"
    data.write_text(json.dumps({"task_id": "Toy/0", "prompt": "def f():\n", "entry_point": "f",
                                "test": "def check(c):\n    pass\n"}) + "\n")  # fmt: skip
    monkeypatch.setattr(sandbox_module, "_bwrap", lambda: None)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.delenv(ALLOW_UNISOLATED_ENV, raising=False)
    args = ["eval", "--task", "humaneval", "--data", str(data), "--out", str(tmp_path / "r.db"),
            "--model", "no-such-model"]  # fmt: skip
    default_sandbox.cache_clear()
    try:
        assert main(args) == 2
        err = capsys.readouterr().err
        assert "refuses to run model-written code unisolated" in err
        assert "--allow-unisolated-exec" in err and not (tmp_path / "r.db").exists()
        # opted in, the sandbox runs (with a warning) and the run goes on to the model
        with pytest.warns(RuntimeWarning, match="unisolated"):
            assert main([*args, "--allow-unisolated-exec"]) == 2
        assert "unknown model 'no-such-model'" in capsys.readouterr().err
        assert os.environ[ALLOW_UNISOLATED_ENV] == "1"
    finally:
        default_sandbox.cache_clear()
