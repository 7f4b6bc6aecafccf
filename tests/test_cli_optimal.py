"""`ponder optimize`, `--strategy optimal:POLICY --budget`, and the report's new tables."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from tests._stores import config, point, sampled, write

from ponder.cli import build_parser, main
from ponder.cli.args import strategy_options as _strategy_options
from ponder.core.types import GenRequest
from ponder.engines.scripted import ScriptedEngine
from ponder.runs.runner import run_eval
from ponder.runs.store import RunStore
from ponder.strategies import make_strategy
from ponder.tasks import make_task

# never called: all replayed; the model is the bank's, which a replay must name
OFFLINE = ["--base-url", "http://127.0.0.1:9/v1", "--model", "scripted"]


def test_strategy_takes_a_policy_after_a_colon_and_a_budget() -> None:
    args = build_parser().parse_args(
        ["eval", "--out", "x.db", "--strategy", "optimal:runs/p.json", "--budget", "600"]
    )
    assert (args.strategy, args.strategy_arg) == ("optimal", "runs/p.json")
    options = _strategy_options(args)
    assert (options["policy"], options["budget"]) == ("runs/p.json", 600.0)
    args = build_parser().parse_args(
        ["eval", "--out", "x.db", "--strategy", "optimal", "-o", "policy=p.json", "-o", "budget=50"]
    )
    options = _strategy_options(args)
    assert (options["policy"], options["budget"]) == ("p.json", 50.0)
    plain = build_parser().parse_args(["eval", "--out", "x.db", "--strategy", "majority"])
    assert plain.strategy_arg is None and _strategy_options(plain)["budget"] is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("nope", "invalid choice: 'nope'"),
        ("majority:x", "strategy 'majority' takes no ':' argument"),
        ("optimal:", "needs a value after the colon"),
    ],
)
def test_bad_strategy_values_are_usage_errors(value: str, message: str, capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(["eval", "--out", "x.db", "--strategy", value])
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_a_budget_for_another_strategy_limits_each_problem(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ponder.cli.args as cli

    monkeypatch.setattr(cli, "engine", lambda args: ScriptedEngine(["so \\boxed{4}"]))
    out = tmp_path / "x.db"
    common = ["eval", "--task", "demo", "--limit", "2", "--no-progress", "--out", str(out)]
    # adaptive_consistency draws 2 samples at a time: the budget fits the first two batches
    argv = [*common, "--strategy", "adaptive_consistency", "-o", "threshold=0.99"]
    assert main([*argv, "--max-tokens", "8", "--budget", "120"]) == 0
    with RunStore(out, create=False) as store:
        assert store.config()["budget"] == 120  # type: ignore[index]
        records = store.records()
    assert all(r.usage.total_tokens <= 120 and r.ok for r in records)
    assert all(r.meta["stopped"] == "budget" and r.answer == "4" for r in records)
    assert all(r.meta["stop_reason"].startswith("budget: token budget") for r in records)
    assert main([*common, "--strategy", "majority", "--budget", "2.5"]) == 2
    assert "--budget must be a whole number of tokens" in capsys.readouterr().err


def hand_stores(tmp_path: Path) -> list[str]:
    answers = {"p0": "AAAA", "p1": "ABAB", "p2": "BCAA", "p3": "BBBA"}
    maj = write(
        tmp_path / "maj.db",
        config("majority", n=4, temperature=0.7, top_p=0.95),
        [sampled(p, list(a), idx=i) for i, (p, a) in enumerate(answers.items())],
    )
    single = write(
        tmp_path / "single.db",
        config("single", temperature=0.0, top_p=1.0),
        [point(p, p != "p3", 12, idx=i) for i, p in enumerate(answers)],
    )
    return [str(maj), str(single)]


def test_optimize_prints_the_table_and_writes_the_policy(tmp_path: Path, capsys) -> None:
    out = tmp_path / "policy.json"
    argv = [*hand_stores(tmp_path), "--out", str(out), "--pilot", "2", "--bins", "2"]
    assert main(["optimize", *argv, "--budgets", "20,40", "--heldout", "0"]) == 0
    text = capsys.readouterr().out
    assert "budget 40:" in text and "calibration (in-sample) problems (4)" in text
    assert f"wrote {out}" in text
    policy = json.loads(out.read_text())
    assert policy["budgets"] == [20.0, 40.0]
    assert policy["evaluation"]["evaluated_on"] == "calibration (in-sample)"
    assert policy["allocation"] == "bin" and "(allocation bin)" in text
    assert main(["optimize", *argv, "--budgets", "20,40", "--allocate", "mean"]) == 0
    assert "(allocation mean)" in capsys.readouterr().out
    assert json.loads(out.read_text())["allocation"] == "mean"
    assert main(["optimize", *argv, "--budgets", "5"]) == 2
    assert "budget 5 is below every configuration" in capsys.readouterr().err
    assert main(["optimize", *argv, "--budgets", "cheap"]) == 2
    assert "give numbers separated by commas" in capsys.readouterr().err
    assert main(["optimize", str(tmp_path / "none.db"), "--out", str(out)]) == 2
    assert "no run store at" in capsys.readouterr().err


DEMO = make_task("demo")
PROBLEMS = DEMO.load()
PASS = [8, 8, 8, 7, 6, 5, 4, 3, 2, 1, 0, 0]


def demo_responder():
    seen: Counter[int] = Counter()

    def respond(request: GenRequest, _index: int) -> str:
        assert request.messages is not None
        text = "\n".join(m.content for m in request.messages)
        i = next(k for k, p in enumerate(PROBLEMS) if p.question in text)
        j = seen[i]
        seen[i] += 1
        answer = PROBLEMS[i].answer if (3 * j + i) % 8 < PASS[i] else str(900 + j % 2)
        return "step " * (1 + i % 3) + f"so \\boxed{{{answer}}}"

    return respond


def test_eval_replays_an_optimal_policy_and_records_it(tmp_path: Path, capsys) -> None:
    bank = tmp_path / "maj8.db"
    run_eval(
        task=DEMO, problems=PROBLEMS, strategy=make_strategy("majority", {"n": 8}),
        engine=ScriptedEngine(demo_responder()), store=bank, concurrency=1, max_tokens=32,
        progress=False,
    )  # fmt: skip
    policy = tmp_path / "policy.json"
    assert main(["optimize", str(bank), "--out", str(policy), "--pilot", "2"]) == 0
    budget = json.loads(policy.read_text())["budgets"][-1]
    out = tmp_path / "optimal.db"
    argv = [
        "eval", "--task", "demo", "--replay", str(bank), "--strategy", f"optimal:{policy}",
        "--budget", str(budget), "--out", str(out), "--no-progress", *OFFLINE,
    ]  # fmt: skip
    assert main(argv) == 0
    assert "0 requests generated anew" in capsys.readouterr().out
    with RunStore(out, create=False) as store:
        cfg = store.config()
        records = store.records()
    assert cfg is not None
    assert cfg["strategy"] == {
        "name": "optimal",
        "options": {"policy": str(policy), "budget": float(budget)},
    }
    assert len(cfg["extra"]["policy_sha256"]) == 64 and cfg["extra"]["replay"]["samples"] == 8
    assert len(records) == 12 and all(r.ok for r in records)
    # a changed policy file is a different run: resuming into the same store is refused
    data = json.loads(policy.read_text())
    data["calibration"]["note"] = "edited"
    policy.write_text(json.dumps(data))
    assert main(argv) == 2
    assert "policy_sha256" in capsys.readouterr().err


def test_report_adds_bins_and_efficiency(tmp_path: Path, capsys) -> None:
    maj, single = hand_stores(tmp_path)
    out = tmp_path / "report"
    argv = ["report", maj, single, "--out", str(out), "--bootstrap", "0"]
    assert main([*argv, "--bins-from", maj, "--bins", "2", "--reference", single]) == 0
    numbers = json.loads((out / "curve.json").read_text())
    # reference: single's own point, 3/4 at 12 tokens
    assert numbers["reference"] == {
        "label": "single · m",
        "accuracy": 0.75,
        "tokens": 12.0,
        "n": 1,
    }
    runs = {r["label"]: r for r in numbers["runs"]}
    assert runs["single · m"]["efficiency"]["ratio"] == 1.0
    # majority in stored order (bootstrap 0): 2/4, 2/4, 2/4, 3/4 at 15, 20, 25, 30 tokens
    assert runs["majority n=4 · m"]["efficiency"] == {
        "label": "majority n=4 · m",
        "tokens": 30.0,
        "ratio": 2.5,
    }
    # pass rates 1, .5, .5, .25: the threshold is v(2) = .5
    assert numbers["difficulty_bins"]["thresholds"] == [0.5]
    assert numbers["difficulty_bins"]["problems"] == [3, 1]
    bins = runs["single · m"]["bins"]
    assert [(b["problems"], b["accuracy"]) for b in bins] == [(3, 1.0), (1, 0.0)]
    page = (out / "report.html").read_text()
    assert "Accuracy by difficulty bin" in page and "Tokens to reach the reference" in page
    # without --reference the first majority curve's last point is the reference
    assert main(argv) == 0
    numbers = json.loads((out / "curve.json").read_text())
    assert numbers["reference"]["label"] == "majority n=4 · m"
    assert numbers["difficulty_bins"] is None


def test_run_with_a_budget_says_when_it_stopped_early(
    capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ponder.cli.args as cli

    engine = ScriptedEngine(lambda _request, index: f"so \\boxed{{{index % 3}}}")
    monkeypatch.setattr(cli, "engine", lambda args: engine)
    argv = ["run", "What is 2+2?", "--strategy", "esc", "-o", "window=2", "--max-tokens", "8"]
    assert main([*argv, "--budget", "120"]) == 0
    out = capsys.readouterr().out
    assert "stopped early: budget: token budget: " in out
    assert main([*argv, "--budget", "120", "--json"]) == 0
    reply = json.loads(capsys.readouterr().out)
    assert reply["usage"]["total_tokens"] <= 120
    assert reply["stop_reason"].startswith("budget: token budget: ")
