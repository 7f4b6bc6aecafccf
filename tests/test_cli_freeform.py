"""The command line's free-form options, on the scripted engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import ponder.cli as cli
import ponder.cli.args as cli_args
from ponder.core.types import GenRequest
from ponder.engines.scripted import ScriptedEngine
from ponder.runs.store import RunStore

DATA = Path(__file__).parent / "data" / "freeform_qa.jsonl"


def scripted(monkeypatch: pytest.MonkeyPatch, engine: ScriptedEngine) -> ScriptedEngine:
    monkeypatch.setattr(cli_args, "engine", lambda args: engine)
    return engine


def test_strategies_lists_the_free_form_strategies(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["strategies"]) == 0
    out = capsys.readouterr().out
    assert "semantic_majority" in out and "cluster='text'" in out and "threshold=0.8" in out
    assert "universal_self_consistency" in out and "show='text'" in out


def test_eval_free_answers_graded_by_the_judge(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def respond(req: GenRequest, _i: int) -> str:
        assert req.messages is not None
        prompt = req.messages[-1].content
        if "Proposed answer" in prompt:
            return "Yes" if "Proposed answer:\nThe Bard" in prompt else "No"
        if "Hamlet" in prompt:
            return "Answer: The Bard"
        return "Answer: no idea"

    engine = scripted(monkeypatch, ScriptedEngine(respond))
    out = tmp_path / "run.db"
    code = cli.main([
        "eval", "--task", "jsonl", "--data", str(DATA), "--limit", "3", "--answer-type", "free",
        "--grader", "judge", "--strategy", "semantic_majority", "--n", "2", "--out", str(out),
        "--no-progress",
    ])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    hamlet = [r for r in RunStore(out, create=False).records() if "Hamlet" in r.question]
    assert len(hamlet) == 1 and hamlet[0].answer == "The Bard" and hamlet[0].correct
    judged = sum(1 for r in engine.requests if "Proposed answer" in r.messages[-1].content)  # type: ignore[index]
    assert judged == 3  # one distinct answer per problem, none an exact match
    assert f"in {judged} call(s)" in printed and "not in the strategy's tokens" in printed
    with RunStore(out, create=False) as store:
        config = store.config() or {}
    assert config["extra"]["answers"] == {"type": "free", "from": "line", "grader": "judge"}


def test_run_answers_one_free_form_question(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def respond(req: GenRequest, _i: int) -> str:
        assert req.messages is not None
        if "most consistent" in req.messages[-1].content:
            return "Response 2"
        return ["Answer: Paris", "Answer: paris, France"][_i % 2]

    engine = scripted(monkeypatch, ScriptedEngine(respond))
    code = cli.main([
        "run", "What is the capital of France?", "--answer-type", "free",
        "--strategy", "universal_self_consistency", "--n", "2", "--json",
    ])  # fmt: skip
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["answer"] == "paris, France" and data["usage"]["calls"] == 2
    assert "Answer: <your answer>" in engine.requests[0].messages[-1].content  # type: ignore[index]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--task", "demo", "--grader", "judge"], "are options of --task jsonl"),
        (["--task", "jsonl", "--data", str(DATA), "--grader", "judge"], "--answer-type free"),
    ],
)
def test_free_form_options_outside_free_form_are_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], message: str
) -> None:
    assert cli.main(["eval", *argv, "--out", str(tmp_path / "r.db")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r.db").exists()


def test_usc_and_semantic_majority_replay_a_majority_bank(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    drawn = iter(["Answer: Paris", "Answer: paris", "Answer: Lyon"] * 2)

    def respond(req: GenRequest, _i: int) -> str:
        assert req.messages is not None
        prompt = req.messages[-1].content
        if "most consistent" in prompt:
            return "The most consistent response is Response 3"
        if "Answer A:" in prompt:
            return "No"
        return next(drawn)

    engine = scripted(monkeypatch, ScriptedEngine(respond))
    common = ["--task", "jsonl", "--data", str(DATA), "--limit", "1", "--answer-type", "free",
              "--no-progress"]  # fmt: skip
    bank = tmp_path / "bank.db"
    assert (
        cli.main(["eval", *common, "--strategy", "majority", "--n", "3", "--out", str(bank)]) == 0
    )
    usc, sem = tmp_path / "usc.db", tmp_path / "sem.db"
    args = ["eval", *common, "--replay", str(bank), "--n", "3"]
    assert cli.main([*args, "--strategy", "universal_self_consistency", "--out", str(usc)]) == 0
    assert "replay: 3 samples served" in capsys.readouterr().out
    assert cli.main([*args, "--strategy", "semantic_majority", "-o", "cluster=judge",
                     "--out", str(sem)]) == 0  # fmt: skip
    assert "replay: 3 samples served" in capsys.readouterr().out
    sampled = [r for r in engine.requests if "Answer: <your answer>" in r.messages[-1].content]  # type: ignore[index]
    assert len(sampled) == 1  # only the bank's own run sampled
    (bank_record,) = RunStore(bank, create=False).records()
    (usc_record,) = RunStore(usc, create=False).records()
    (sem_record,) = RunStore(sem, create=False).records()
    texts = [c.text for c in bank_record.candidates]
    assert (
        [c.text for c in usc_record.candidates] == texts == [c.text for c in sem_record.candidates]
    )
    assert bank_record.answer == "Paris" and usc_record.answer == "Lyon"
    # the judge said no to every pair: Paris (text-equal to paris) still wins 2 to 1
    assert sem_record.answer == "Paris" and sem_record.meta["asked"] == 1
