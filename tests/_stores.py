"""Hand-made eval stores with known answers, for the difficulty and optimize tests.

Every sample costs ``completion`` generated tokens; the prompt (``prompt`` tokens) is
charged on the first sample only (an engine with native n), so the first n samples
cost ``prompt + n * completion``. ``scoring`` tokens are added to each record's usage
beyond its samples' own, as a verifier's would be.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ponder.core.types import Candidate, Usage
from ponder.runs.store import Record, RunStore

CORRECT = "A"


def config(strategy: str, task: str = "toy", model: str = "m", **options: Any) -> dict[str, Any]:
    return {
        "task": task,
        "model": model,
        "strategy": {"name": strategy, "options": options},
        "max_tokens": 32,
        "seed": 0,
        "ponder_version": "0.1.0",
        "created": "2025-01-01T00:00:00+00:00",
    }


def sampled(
    pid: str,
    answers: Sequence[str | None],
    *,
    idx: int = 0,
    scores: Sequence[float] | None = None,
    prompt: int = 10,
    completion: int = 5,
    scoring: int = 0,
    final: str | None = None,
) -> Record:
    """A record of samples; answer ``A`` is the correct one."""
    cands = tuple(
        Candidate(
            text=f"answer: {a}",
            answer=a,
            usage=Usage(prompt if j == 0 else 0, 0 if j == 0 else prompt, completion),
            score=None if scores is None else scores[j],
        )
        for j, a in enumerate(answers)
    )
    answer = final if final is not None else answers[0]
    return Record(
        problem_id=pid,
        idx=idx,
        question=f"question {pid}",
        reference=CORRECT,
        answer=answer,
        correct=answer == CORRECT,
        candidates=cands,
        answer_correct={a: a == CORRECT for a in [*answers, answer] if a is not None},
        usage=sum((c.usage for c in cands), Usage()) + Usage(prompt_tokens=scoring),
    )


def point(pid: str, correct: bool, tokens: int, *, idx: int = 0) -> Record:
    """A record of a strategy judged by its final answer only (one candidate)."""
    answer = CORRECT if correct else "Z"
    cand = Candidate(f"answer: {answer}", answer, Usage(tokens - 2, 0, 2))
    return Record(
        problem_id=pid,
        idx=idx,
        question=f"question {pid}",
        reference=CORRECT,
        answer=answer,
        correct=correct,
        candidates=(cand,),
        answer_correct={answer: correct},
        usage=Usage(tokens - 2, 0, 2),
    )


def write(path: Path, cfg: dict[str, Any], records: Sequence[Record]) -> Path:
    with RunStore(path) as store:
        store.init_or_check(cfg)
        for r in records:
            store.put(r)
    return path
