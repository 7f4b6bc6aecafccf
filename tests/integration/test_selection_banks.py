"""The selection replays on real banks: the committed GSM8K train bank of
qwen2.5-coder-1.5b (64 problems x 16 samples, with their features and hidden states,
bench/banks/gsm8k-train-maj16.jsonl.gz) cut into two halves by problem, one to fit on
and one to measure; and the committed CoT and PAL banks of the first 50 test problems.
No model runs: these commands read banks."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from ponder.runs.archive import import_store
from ponder.runs.store import RunStore
from ponder.verifiers.hidden_probe import HiddenProbe

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

BANKS = Path(__file__).resolve().parents[2] / "bench" / "banks"


def ponder(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "ponder.cli", *args], capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, f"ponder {' '.join(args)} failed:\n{proc.stderr[-3000:]}"
    return proc.stdout


def _halves(tmp_path: Path) -> tuple[Path, Path]:
    """The train bank imported twice, each copy keeping half of its problems."""
    archive = BANKS / "gsm8k-train-maj16.jsonl.gz"
    paths = []
    for part in (0, 1):
        path = tmp_path / f"half{part}.db"
        import_store(archive, path)
        with RunStore(path, create=False) as store:
            ids = sorted(r.problem_id for r in store.records())
        drop = ids[: len(ids) // 2] if part else ids[len(ids) // 2 :]
        conn = sqlite3.connect(path)
        with conn:
            marks = ",".join("?" * len(drop))
            for table in ("records", "features", "hidden"):
                conn.execute(f"DELETE FROM {table} WHERE problem_id IN ({marks})", drop)
        conn.close()
        paths.append(path)
    return paths[0], paths[1]


def test_select_stop_score_and_a_policy_on_the_real_train_bank(tmp_path: Path) -> None:
    fit, measure = _halves(tmp_path)
    with RunStore(fit, create=False) as store:
        assert len(store.records()) == 32
        assert len(store.featured_samples()) == 32 * 16
        assert len(store.hidden_samples()) == 32 * 16
    out = ponder(
        "bank", "select", str(measure), "--train", str(fit), "--orderings", "20",
        "--bootstrap", "200", "--json", str(tmp_path / "sel.json"),
        "--save-verifier", str(tmp_path / "v.json"), "--save-probe", str(tmp_path / "p.json"),
    )  # fmt: skip
    probe = HiddenProbe.load(tmp_path / "p.json")
    assert (probe.projection.n_embd, probe.projection.dim) == (1536, 128)  # qwen2.5-coder-1.5b
    assert probe.joint and probe.trained_on["samples"] == 32 * 16
    data = json.loads((tmp_path / "sel.json").read_text())
    assert data["chosen_on_train"] in {c["rule"] for c in data["comparisons"]}
    aucs = {a["signal"]: a for a in data["aucs"]}
    assert {"combined", "probe", "joint", "agreement", "mean_logprob"} <= set(aucs)
    # on a real bank right samples agree with each other far more than wrong ones
    assert aucs["agreement"]["pooled_auc"] > 0.7
    assert "(chosen on train)" in out
    stop = ponder(
        "bank", "stop", str(measure), "--train", str(fit), "--signals", "majority",
        "combined", "joint", "--taus", "0.6", "0.8", "--margins", "0.7", "2",
        "--min-samples", "1", "2", "--orderings", "20", "--bootstrap", "200",
        "--json", str(tmp_path / "stop.json"),
    )  # fmt: skip
    assert "majority at n = 16" in stop
    rules = {r["rule"] for r in json.loads((tmp_path / "stop.json").read_text())["rules"]}
    assert {"stop[joint,margin 0.7,1]", "stop[majority,margin 2,2]"} <= rules
    ponder("bank", "score", str(fit), "--verifier", str(tmp_path / "v.json"), "--cross-fit",
           "--out", str(tmp_path / "fit-scored.db"))  # fmt: skip
    ponder("bank", "score", str(measure), "--verifier", str(tmp_path / "v.json"),
           "--out", str(tmp_path / "measure-scored.db"))  # fmt: skip
    policy = ponder(
        "optimize", str(tmp_path / "fit-scored.db"), "--signal", "score", "--pilot", "2",
        "--bins", "3", "--allocate", "mean", "--heldout", "0", "--budgets", "1000,2500,5000",
        "--test", str(tmp_path / "measure-scored.db"), "--out", str(tmp_path / "p.json"),
    )  # fmt: skip
    assert "test problems (32)" in policy


def test_hybrid_and_cross_check_on_the_real_test_banks(tmp_path: Path) -> None:
    cot, pal, pal1 = (tmp_path / f"{n}.db" for n in ("cot", "pal4", "pal1"))
    import_store(BANKS / "gsm8k-test-maj16.jsonl.gz", cot)
    import_store(BANKS / "gsm8k-50-pal4.jsonl.gz", pal)
    import_store(BANKS / "gsm8k-50-pal1.jsonl.gz", pal1)
    out = ponder(
        "bank", "hybrid", str(cot), str(pal), "--program", str(pal1), "--cells", "2,2",
        "--orderings", "50", "--bootstrap", "200", "--json", str(tmp_path / "h.json"),
    )  # fmt: skip
    data = json.loads((tmp_path / "h.json").read_text())
    (row,) = data["rows"]
    assert row["problems"] == 50 and row["majority_n"] == 3
    assert 0.0 < row["accuracy"] < 1.0
    assert data["cross_check"]["samples"] == 50 * 16
    assert "execution cross-check on 50 problems" in out


def test_a_live_run_against_rules_replayed_at_matched_tokens_on_the_committed_banks(
    tmp_path: Path,
) -> None:
    online, bank = tmp_path / "online.db", tmp_path / "test.db"
    import_store(BANKS / "selection-gsm8k-50-deepconf-online.jsonl.gz", online)
    import_store(BANKS / "gsm8k-test-maj16.jsonl.gz", bank)
    with RunStore(online, create=False) as store:
        done = [r for r in store.records() if r.ok]
    script = Path(__file__).resolve().parents[2] / "bench" / "matched_tokens.py"
    out = tmp_path / "cmp.json"
    proc = subprocess.run(
        [sys.executable, str(script), str(bank), str(online), "--json", str(out),
         "--rules", "majority", "filter[lowest_group_128,0.9]",
         "--orderings", "50", "--bootstrap", "200"],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (got,) = json.loads(out.read_text())["runs"]
    assert got["problems"] == len(done)
    assert got["tokens"] == sum(r.usage.total_tokens for r in done) / len(done)
    rows = got["rows"]
    assert {r["rule"] for r in rows} == {"majority", "filter[lowest_group_128,0.9]"}
    # the offline rows bracket the online run's tokens, and the last is the bank's 16
    ns = sorted({r["n"] for r in rows})
    assert ns[-1] == 16
    below = [r["tokens"] for r in rows if r["n"] == ns[0]]
    above = [r["tokens"] for r in rows if r["n"] == ns[1]]
    assert max(below) <= got["tokens"] < min(above)
    assert "verifier signals: features only" in proc.stdout
    assert f"| {online} |" in proc.stdout
