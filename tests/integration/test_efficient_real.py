"""pal, probe_exit and the overthinking report through the CLI, on real smollm2-135m
and the GSM8K test file (smollm2 is far too small to solve GSM8K: these check the
machinery, the records and the costs, not accuracy)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ponder.core.types import Candidate, Usage
from ponder.engines.llamacpp import LlamaCppEngine
from ponder.runs.store import Record, RunStore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

STATUSES = {"ok", "error", "timeout", "memory", "output", "killed", "no_program", "no_output",
            "no_answer"}  # fmt: skip


def ponder(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "ponder.cli", *args], capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, f"ponder {' '.join(args)} failed:\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def gsm8k(shared_data: Path) -> Path:
    path = shared_data / "gsm8k" / "test.jsonl"
    if not path.is_file():
        pytest.skip(f"GSM8K test data {path} is absent")
    return path


def records(db: Path) -> list:
    with RunStore(db, create=False) as store:
        return store.records()


def test_pal_probe_exit_and_the_report(smollm2_path: Path, gsm8k: Path, tmp_path: Path) -> None:
    common = ["eval", "--task", "gsm8k", "--data", str(gsm8k), "--limit", "2",
              "--model", str(smollm2_path), "--max-tokens", "96", "--no-progress"]  # fmt: skip
    pal, probe, single = tmp_path / "pal.db", tmp_path / "probe.db", tmp_path / "single.db"
    # the tests opt in to unisolated execution, for a machine with neither bubblewrap nor root
    ponder(*common, "--strategy", "pal", "--n", "2", "--temperature", "0.7", "--out", str(pal),
           "--allow-unisolated-exec")  # fmt: skip
    ponder(*common, "--strategy", "probe_exit", "-o", "chunk=16", "-o", "agree=2",
           "--out", str(probe))  # fmt: skip
    ponder(*common, "--strategy", "single", "--out", str(single))

    for r in records(pal):
        assert r.ok, r.error
        meta = r.meta
        assert meta["programs"] == 2 and meta["ran"] + meta["failed"] == 2
        assert {o["status"] for o in meta["outcomes"]} <= STATUSES
        assert len(r.candidates) == 2 + int(meta["fallback"])
        assert all(c.text.startswith("```python\n") for c in r.candidates[:2])
        assert meta["isolation"] in ("bwrap", "unprivileged", "unisolated")
        if "execution" in meta:
            assert meta["execution"]["isolation"] == {
                meta["isolation"]: meta["execution"]["executions"]
            }
        if meta["fallback"]:
            assert meta["ran"] == 0

    for r in records(probe):
        assert r.ok, r.error
        meta = r.meta
        assert meta["stop_reason"] in ("agreed", "finished", "length")
        assert meta["chain_tokens"] <= 96 and meta["chunks"] >= 1
        assert [p["tokens"] for p in meta["probes"]] == [
            16 * (i + 1) for i in range(len(meta["probes"]))
        ]
        usage = meta["probe_usage"]
        if meta["probes"]:
            # each probe forks the chain in the slot that holds it: it prefills its cue
            # and a token or two, the chain itself comes from the KV cells
            assert usage["calls"] == len(meta["probes"])
            assert usage["prompt_tokens"] < usage["cached_tokens"]
            assert usage["prompt_tokens"] <= 20 * len(meta["probes"])
        chain = meta["chain_usage"]
        assert chain["calls"] == meta["chunks"]
        assert r.usage.total_tokens == chain["total_tokens"] + usage["total_tokens"]

    out = ponder("report", str(single), str(probe), str(pal), "--out", str(tmp_path / "report"),
                 "--bootstrap", "50", "--baseline", str(single))  # fmt: skip
    assert (
        "overthinking: single" in out.stdout and "overthinking: probe_exit k=16 m=2" in out.stdout
    )
    assert "overthinking: pal" not in out.stdout
    assert "against single" in out.stdout
    numbers = json.loads((tmp_path / "report" / "curve.json").read_text())
    runs = {r["label"].split(" · ")[0]: r for r in numbers["runs"]}
    assert runs["single"]["overthinking"]["candidates"] <= 2
    assert runs["probe_exit k=16 m=2"]["paired"]["problems"] == 2
    page = (tmp_path / "report" / "report.html").read_text()
    assert "Overthinking" in page and "Against the baseline" in page


def test_probe_exit_on_an_openai_compatible_server(
    llama_server_url: str, gsm8k: Path, tmp_path: Path
) -> None:
    db = tmp_path / "probe-server.db"
    ponder("eval", "--task", "gsm8k", "--data", str(gsm8k), "--limit", "1",
           "--base-url", f"{llama_server_url}/v1", "--model", "smollm2", "--max-tokens", "48",
           "--strategy", "probe_exit", "-o", "chunk=16", "-o", "agree=2", "--no-progress",
           "--out", str(db))  # fmt: skip
    (r,) = records(db)
    assert r.ok, r.error
    assert r.meta["chunks"] >= 1 and r.meta["chain_tokens"] <= 48
    assert len(r.meta["probes"]) == r.meta["probe_usage"]["calls"]


def test_report_counts_tokens_after_an_answer_with_a_real_tokenizer(
    smollm2_path: Path, tmp_path: Path
) -> None:
    chain = (
        "So 9 * 2 = 18 dollars.\nChecking: 9 eggs at 2 dollars is 18.\nThe answer is \\boxed{18}."
    )
    usage = Usage(prompt_tokens=10, completion_tokens=40)
    record = Record(
        problem_id="p0",
        idx=0,
        question="q",
        reference="18",
        answer="18",
        correct=True,
        candidates=(Candidate(chain, "18", usage),),
        answer_correct={"18": True},
        usage=usage,
    )
    db = tmp_path / "cot.db"
    with RunStore(db) as store:
        store.init_or_check(
            {"task": "gsm8k", "model": "m", "max_tokens": 64, "seed": 0,
             "strategy": {"name": "single", "options": {}}}
        )  # fmt: skip
        store.put(record)
    out = ponder("report", str(db), "--out", str(tmp_path / "r"), "--bootstrap", "10",
                 "--tokenizer", str(smollm2_path))  # fmt: skip
    assert "(tokens after counted by tokenizer)" in out.stdout
    over = json.loads((tmp_path / "r" / "curve.json").read_text())["runs"][0]["overthinking"]

    async def count(text: str) -> int:
        engine = LlamaCppEngine(str(smollm2_path), n_parallel=1, n_ctx=256)
        try:
            return engine.count_tokens(text)
        finally:
            await engine.aclose()

    # settled at the first sentence; the tokenizer counts the rest of the chain
    rest = chain[chain.index("dollars.") + len("dollars.") :]
    assert over["token_count"] == "tokenizer"
    assert over["after_settled"] == asyncio.run(count(rest)) > 0


def test_hybrid_votes_chains_and_programs_live(
    smollm2_path: Path, gsm8k: Path, tmp_path: Path
) -> None:
    db = tmp_path / "hybrid.db"
    ponder("eval", "--task", "gsm8k", "--data", str(gsm8k), "--limit", "2",
           "--model", str(smollm2_path), "--max-tokens", "64", "--no-progress",
           "--strategy", "hybrid", "--n", "2", "--scorer", "logprob", "-o", "programs=1",
           "-o", "program_weight=0.5", "--out", str(db), "--allow-unisolated-exec")  # fmt: skip
    for r in records(db):
        assert r.ok, r.error
        chains, programs = r.candidates[:2], r.candidates[2:]
        assert len(programs) == 1 and programs[0].text.startswith("```python\n")
        assert all(0 < c.score <= 1 for c in chains) and programs[0].score is None
        assert r.meta["scored"] is True and r.meta["pal"]["programs"] == 1
        # the vote is the chains' scores and half a vote for the program
        want: dict[str, float] = {}
        for c in chains:
            if c.answer is not None:
                want[c.answer] = want.get(c.answer, 0.0) + c.score
        if programs[0].answer is not None:
            want[programs[0].answer] = want.get(programs[0].answer, 0.0) + 0.5
        assert r.votes == pytest.approx(want)
        # the cost is every sample's tokens: two requests
        assert r.usage.calls == 2
        assert r.usage.completion_tokens == sum(c.usage.completion_tokens for c in r.candidates)
