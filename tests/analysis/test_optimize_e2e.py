"""End to end: real eval runs with the scripted engine, `ponder optimize` on their stores,
then the optimal strategy replayed from the pilot run's samples. Wherever the policy
reuses the pilot, the replayed run must reproduce the calibration's outcome and tokens
exactly; where it picks revise, the revisions are generated anew by the inner engine."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from tests.runs._toys import QUESTION, ToyTask

from ponder.analysis.calibration import load_calibration
from ponder.cli import main
from ponder.core.types import GenRequest
from ponder.engines.scripted import Responder, ScriptedEngine
from ponder.runs.replay import ReplayEngine, SampleBank
from ponder.runs.runner import run_eval
from ponder.runs.store import RunStore
from ponder.strategies import make_strategy
from ponder.strategies.optimal.policy import Policy

TASK = ToyTask(size=16)
# correct samples out of every 8 for problem i: easy first, hopeless last
CORRECT = [8, 8, 8, 8, 7, 7, 6, 6, 5, 5, 4, 4, 3, 2, 1, 0]


def responder() -> Responder:
    """Sample j of problem i is right when (3j + i) mod 8 < CORRECT[i]; wrong answers
    alternate between two values; a revision (a prompt with an earlier attempt) is right."""
    seen: Counter[int] = Counter()

    def respond(request: GenRequest, _index: int) -> str:
        assert request.messages is not None
        m = QUESTION.search(request.messages[0].content)  # revisions end with a request
        assert m is not None
        i = int(m.group(1))
        if any(m.role == "assistant" for m in request.messages):
            return f"on reflection answer: {i + 1}"
        j = seen[i]
        seen[i] += 1
        right = (3 * j + i) % 8 < CORRECT[i]
        answer = i + 1 if right else 1000 + j % 2
        return "let me think " * (1 + i % 3) + f"answer: {answer}"

    return respond


def evaluate(name: str, options: dict[str, object], out: Path, engine: object) -> Path:
    run_eval(
        task=TASK, problems=TASK.load(), strategy=make_strategy(name, options),
        engine=engine, store=out, concurrency=1, max_tokens=32, progress=False,  # type: ignore[arg-type]
    )  # fmt: skip
    return out


def test_optimize_then_replay_the_policy(tmp_path: Path, capsys: object) -> None:
    maj = evaluate("majority", {"n": 8}, tmp_path / "maj8.db", ScriptedEngine(responder()))
    rev = evaluate("revise", {"n": 3}, tmp_path / "rev3.db", ScriptedEngine(responder()))
    policy_path = tmp_path / "policy.json"
    argv = [str(maj), str(rev), "--out", str(policy_path), "--pilot", "2", "--bins", "3"]
    assert main(["optimize", *argv, "--heldout", "0.25"]) == 0
    policy = Policy.load(policy_path)
    written = json.loads(policy_path.read_text())
    assert written["calibration"]["heldout_problems"] == 4
    assert written["pilot"]["store"] == str(maj)

    cal = load_calibration([maj, rev], pilot=2)
    index = {c.key: i for i, c in enumerate(cal.configs)}
    chosen: Counter[str] = Counter()
    for budget in policy.budgets:
        inner = ScriptedEngine(responder())
        replay = ReplayEngine(SampleBank.from_store(maj), TASK, inner=inner)
        out = evaluate(
            "optimal", {"policy": str(policy_path), "budget": budget},
            tmp_path / f"optimal-{budget:g}.db", replay,
        )  # fmt: skip
        with RunStore(out, create=False) as store:
            records = {r.problem_id: r for r in store.records()}
            assert store.config()["strategy"]["options"] == {  # type: ignore[index]
                "policy": str(policy_path),
                "budget": budget,
            }
        for col, pid in enumerate(cal.problem_ids):
            record = records[pid]
            assert record.ok, record.error
            cell = policy.cell(policy.bins.assign(float(cal.signal[col])), budget)
            chosen[cell.config.strategy] += 1
            i = index[cell.config.key]
            if cell.config.reuses_pilot:
                assert record.correct == bool(cal.correct[i, col]), (budget, pid)
                assert record.usage.total_tokens == cal.policy_tokens[i, col], (budget, pid)
                assert len(record.candidates) == max(2, cell.config.n or 0)
            else:
                # pilot (2), then revise: its first attempt from the bank, two revisions
                assert cell.config.strategy == "revise"
                assert record.correct and len(record.candidates) == 5
    # the cheap budgets vote over pilot samples; the dearest sends hard problems to revise
    assert chosen["majority"] > 0 and chosen["revise"] > 0
