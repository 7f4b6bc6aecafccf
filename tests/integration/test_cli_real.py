"""The documented command forms (README.md and docs/), end to end, on the real smollm2-135m
model and server."""

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


def test_replay_scores_a_real_bank_with_the_real_judge(smollm2_path: Path, tmp_path: Path) -> None:
    from ponder.analysis.report import summarize_run
    from ponder.runs.store import RunStore

    bank, out = tmp_path / "bank.db", tmp_path / "judged.db"
    common = ["--task", "demo", "--limit", "3", "--model", str(smollm2_path), "--no-progress"]
    ponder("eval", *common, "--strategy", "majority", "--n", "3", "--max-tokens", "48",
           "--out", str(bank))  # fmt: skip
    done = ponder("eval", *common, "--replay", str(bank), "--strategy", "best_of_n", "--n", "3",
                  "--scorer", "judge", "--out", str(out))  # fmt: skip
    assert f"replay: 9 samples served from {bank}; 9 requests generated anew" in done.stdout
    with RunStore(bank, create=False) as b, RunStore(out, create=False) as o:
        recorded = {r.problem_id: r for r in b.records()}
        judged = o.records()
        config = o.config() or {}
    assert config["extra"]["replay"]["samples"] == 3 and config["max_tokens"] == 48
    for r in judged:
        same = recorded[r.problem_id]
        assert [c.text for c in r.candidates] == [c.text for c in same.candidates]
        assert all(c.score is not None and 0.0 <= c.score <= 1.0 for c in r.candidates)
        own = sum(c.usage.completion_tokens for c in r.candidates)
        assert own == same.usage.completion_tokens
        # the judge's tokens are on top of the samples' recorded cost
        assert r.usage.total_tokens > sum(c.usage.total_tokens for c in r.candidates)
    report = summarize_run(out)
    assert report.curve_method == "best_of_n" and report.curve is not None
    assert len(report.curve) == 3 and "(replay)" in report.label
    assert report.curve[-1].tokens == pytest.approx(
        sum(r.usage.total_tokens for r in judged) / len(judged)
    )


def test_optimize_then_optimal_over_a_real_bank(smollm2_path: Path, tmp_path: Path) -> None:
    from ponder.runs.store import RunStore

    cal, policy, out = tmp_path / "cal.db", tmp_path / "policy.json", tmp_path / "opt.db"
    common = ["--task", "demo", "--limit", "6", "--model", str(smollm2_path), "--no-progress"]
    ponder("eval", *common, "--strategy", "majority", "--n", "4", "--max-tokens", "48",
           "--out", str(cal))  # fmt: skip
    ponder("optimize", str(cal), "--out", str(policy), "--bins", "2", "--pilot", "2")
    data = json.loads(policy.read_text())
    assert data["format"] == "ponder-optimal-policy" and data["budgets"]
    budget = max(data["budgets"])
    ponder("eval", *common, "--replay", str(cal), "--strategy", f"optimal:{policy}",
           "--budget", str(budget), "--out", str(out))  # fmt: skip
    with RunStore(cal, create=False) as c, RunStore(out, create=False) as o:
        bank = {r.problem_id: r for r in c.records()}
        runs = o.records()
    assert len(runs) == 6
    for r in runs:
        # the chosen configuration drew its samples from the bank, pilot first
        texts = [c.text for c in bank[r.problem_id].candidates]
        assert [c.text for c in r.candidates] == texts[: len(r.candidates)]
        assert r.candidates and r.meta


def test_a_stop_in_the_policy_runs_live_as_its_replay_measured_it(
    smollm2_path: Path, tmp_path: Path
) -> None:
    """``ponder optimize --stop-margins``: the stop configuration, run live by ``optimal``
    over the bank (--replay), draws exactly the samples and reaches exactly the outcome
    its replay in the calibration counted."""
    from ponder.analysis.calibration import StopSpec, load_calibration
    from ponder.runs.store import RunStore

    cal, policy, out = tmp_path / "cal.db", tmp_path / "policy.json", tmp_path / "opt.db"
    common = ["--task", "demo", "--limit", "6", "--model", str(smollm2_path), "--no-progress"]
    ponder("eval", *common, "--strategy", "majority", "--n", "6", "--max-tokens", "48",
           "--seed", "1", "--out", str(cal))  # fmt: skip
    ponder("optimize", str(cal), "--out", str(policy), "--bins", "1", "--pilot", "2",
           "--stop-margins", "2", "--heldout", "0")  # fmt: skip
    calibration = load_calibration([cal], pilot=2, stops=[StopSpec("margin", 2.0)])
    [i] = [i for i, c in enumerate(calibration.configs) if c.strategy == "weighted_stop"]
    stop = calibration.configs[i]
    # every cell runs the stop, so the live run is the stop's own
    data = json.loads(policy.read_text())
    for c in data["table"]:
        c["config"], c["reuses_pilot"] = stop.to_dict(), True
    policy.write_text(json.dumps(data))
    ponder("eval", *common, "--replay", str(cal), "--strategy", f"optimal:{policy}",
           "--budget", str(max(data["budgets"])), "--out", str(out))  # fmt: skip
    with RunStore(out, create=False) as o, RunStore(cal, create=False) as c:
        runs = {r.problem_id: r for r in o.records()}
        bank = {r.problem_id: r for r in c.records()}
    own = calibration.own_tokens[i]
    for row, pid in enumerate(calibration.problem_ids):
        r, recorded = runs[pid], bank[pid].candidates
        assert r.meta["config"]["strategy"] == "weighted_stop"
        assert r.correct == bool(calibration.correct[i, row]), pid
        # the bank's first samples, as many as the replay stopped at: T counts the bank's
        # prompt charge once and their generated tokens
        assert [x.text for x in r.candidates] == [x.text for x in recorded[: len(r.candidates)]]
        drawn = sum(x.usage.completion_tokens for x in r.candidates)
        assert drawn + recorded[0].usage.prompt_tokens == own[row], pid


def test_a_hybrid_in_the_policy_runs_live_as_its_replay_measured_it(
    smollm2_path: Path, tmp_path: Path
) -> None:
    """``ponder optimize --hybrid``: the hybrid configuration, run live by ``optimal``
    over the chains' bank (--replay), takes the bank's chains and writes the greedy
    program the pal run wrote, so it reaches the outcome its replay counted."""
    from ponder.analysis.calibration import HybridSpec, load_calibration
    from ponder.runs.store import RunStore

    cal, pal = tmp_path / "cal.db", tmp_path / "pal.db"
    policy, out = tmp_path / "policy.json", tmp_path / "opt.db"
    common = ["--task", "demo", "--limit", "4", "--model", str(smollm2_path), "--no-progress",
              "--max-tokens", "48", "--allow-unisolated-exec"]  # fmt: skip
    ponder("eval", *common, "--strategy", "majority", "--n", "3", "--seed", "1",
           "--out", str(cal))  # fmt: skip
    ponder("eval", *common, "--strategy", "pal", "--n", "1", "--out", str(pal))
    ponder("optimize", str(cal), str(pal), "--out", str(policy), "--bins", "1", "--pilot",
           "2", "--hybrid", "--heldout", "0")  # fmt: skip
    calibration = load_calibration([cal, pal], pilot=2, hybrid=HybridSpec())
    [i] = [
        i
        for i, c in enumerate(calibration.configs)
        if c.strategy == "hybrid" and c.options["n"] == 3
    ]
    data = json.loads(policy.read_text())
    for c in data["table"]:
        c["config"], c["reuses_pilot"] = calibration.configs[i].to_dict(), True
    policy.write_text(json.dumps(data))
    ponder("eval", *common, "--replay", str(cal), "--strategy", f"optimal:{policy}",
           "--budget", str(max(data["budgets"])), "--out", str(out))  # fmt: skip
    with RunStore(out, create=False) as o, RunStore(cal, create=False) as c:
        runs = {r.problem_id: r for r in o.records()}
        bank = {r.problem_id: r for r in c.records()}
    with RunStore(pal, create=False) as p:
        programs = {r.problem_id: r for r in p.records()}
    for row, pid in enumerate(calibration.problem_ids):
        r = runs[pid]
        assert r.meta["config"]["strategy"] == "hybrid" and r.meta["decided_by"] == 4
        chains, program = r.candidates[:3], r.candidates[3]
        assert [x.text for x in chains] == [x.text for x in bank[pid].candidates[:3]]
        assert program.text == programs[pid].candidates[0].text
        assert r.correct == bool(calibration.correct[i, row]), pid


def test_extending_a_real_bank_draws_what_a_live_run_draws(
    smollm2_path: Path, tmp_path: Path
) -> None:
    from ponder.analysis.report import summarize_run
    from ponder.runs.store import RunStore

    bank, extended, live = tmp_path / "bank.db", tmp_path / "ext.db", tmp_path / "live.db"
    common = ["--task", "demo", "--model", str(smollm2_path), "--no-progress", "--seed", "3",
              "--strategy", "majority", "--max-tokens", "40"]  # fmt: skip
    ponder("eval", *common, "--limit", "2", "--n", "2", "--out", str(bank))
    done = ponder("eval", *common, "--limit", "3", "--n", "4", "--replay", str(bank),
                  "--replay-extend", "--out", str(extended))  # fmt: skip
    # two problems topped up from 2 to 4 samples, the third drawn in full
    assert f"replay: 4 samples served from {bank}, 8 drawn anew to extend it" in done.stdout
    ponder("eval", *common, "--limit", "3", "--n", "4", "--out", str(live))
    with RunStore(extended, create=False) as e, RunStore(live, create=False) as lv:
        got = {r.problem_id: r for r in e.records()}
        want = {r.problem_id: r for r in lv.records()}
    assert set(got) == set(want) and len(got) == 3
    for pid, rec in want.items():
        assert [c.text for c in got[pid].candidates] == [c.text for c in rec.candidates]
        assert got[pid].answer == rec.answer
    assert "(replay, extended)" in summarize_run(extended).label
    # being the same run, a live run's store resumes as an extended one
    mixed = tmp_path / "mixed.db"
    ponder("eval", *common, "--limit", "2", "--n", "4", "--out", str(mixed))
    ponder("eval", *common, "--limit", "3", "--n", "4", "--replay", str(bank),
           "--replay-extend", "--out", str(mixed))  # fmt: skip
    with RunStore(mixed, create=False) as m:
        resumed = {r.problem_id: r for r in m.records()}
    assert set(resumed) == set(want)
    for pid, rec in want.items():
        assert [c.text for c in resumed[pid].candidates] == [c.text for c in rec.candidates]


def test_eval_on_a_subset_by_level(smollm2_path: Path, shared_data: Path, tmp_path: Path) -> None:
    """``--where level=1,5 --limit-each 1`` on the real MATH-500 file: one problem of each
    level, the file's first of each, and only those in the store."""
    data = shared_data / "math500" / "test.jsonl"
    db = tmp_path / "levels.db"
    ponder(
        "eval", "--task", "math500", "--data", str(data), "--where", "level=1,5",
        "--limit-each", "1", "--model", str(smollm2_path), "--strategy", "single",
        "--max-tokens", "16", "--out", str(db), "--no-progress",
    )  # fmt: skip
    records = [json.loads(line) for line in data.read_text().splitlines()]
    expected = {next(r["unique_id"] for r in records if r["level"] == lv) for lv in (1, 5)}
    with sqlite3.connect(db) as con:
        got = {row[0] for row in con.execute("select problem_id from records")}
    assert got == expected
