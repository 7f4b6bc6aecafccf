"""``ponder.analysis.probe_stores``: the task, rollouts and writer model of eval stores,
and a probe's held-out problems in them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from ponder.analysis.probe_stores import EvalStores, heldout_missing, load_heldout_probe
from ponder.core.errors import ConfigError
from ponder.core.types import Candidate, Message, Problem, Usage
from ponder.runs.store import Record, RunStore
from ponder.verifiers.probe import ProbeVerifier


class PlusOne:
    """Problem ``pI`` asks for I + 1; its data holds a reworded question."""

    name = "plus_one"

    def load(self, limit: int | None = None) -> list[Problem]:
        return [Problem(f"p{i}", f"data: {i} + 1?", str(i + 1)) for i in range(3)][:limit]

    def messages(self, problem: Problem) -> tuple[Message, ...]:
        return (Message("user", problem.question),)

    def extract(self, text: str) -> str | None:
        found = re.findall(r"answer: (\S+)", text)
        return found[-1] if found else None

    def is_correct(self, predicted: str | None, problem: Problem) -> bool:
        return predicted == problem.answer


def write_store(path: Path, config: dict[str, Any] | None, problems: int = 2) -> str:
    with RunStore(path) as store:
        if config is not None:
            store.init_or_check(config)
        for i in range(problems):
            cands = (
                Candidate(f"answer: {i + 1}", None, Usage()),
                Candidate(f"answer: {i + 2}", None, Usage()),
            )
            store.put(
                Record(f"p{i}", i, f"{i} + 1?", str(i + 1), str(i + 1), True, candidates=cands)
            )
    return str(path)


def test_the_stores_task_and_writer_model(tmp_path: Path) -> None:
    a = write_store(tmp_path / "a.db", {"task": "plus_one", "model": "m1"})
    b = write_store(tmp_path / "b.db", {"task": "plus_one", "model": "m2"})
    bare = write_store(tmp_path / "bare.db", None)
    stores = EvalStores.read([bare, a, b])
    assert stores.paths == (bare, a, b)
    assert stores.task_name() == "plus_one"
    assert stores.models() == ["m1", "m2"]
    assert stores.writer_model() == "m1"
    with pytest.raises(ConfigError, match=r"^pass --model: the stores do not record"):
        EvalStores.read([bare]).writer_model()
    with pytest.raises(ConfigError, match="pass --task: the stores' tasks are none recorded"):
        EvalStores.read([bare]).task_name()
    other = write_store(tmp_path / "c.db", {"task": "gsm8k", "model": "m1"})
    with pytest.raises(ConfigError, match="pass --task: the stores' tasks are gsm8k, plus_one"):
        EvalStores.read([a, other]).task_name()
    with pytest.raises(ConfigError, match="no run store"):
        EvalStores.read([tmp_path / "missing.db"])


def test_rollouts_take_problems_from_the_data_when_asked(tmp_path: Path) -> None:
    stores = EvalStores.read([write_store(tmp_path / "a.db", {"task": "plus_one"}, problems=3)])
    task = PlusOne()
    from_records = stores.rollouts(task)  # type: ignore[arg-type]
    assert len(from_records) == 6 and [r.correct for r in from_records[:2]] == [True, False]
    assert from_records[0].problem.question == "0 + 1?"
    from_data = stores.rollouts(task, from_data=True, limit=1)  # type: ignore[arg-type]
    assert {r.problem.question for r in from_data} == {"data: 0 + 1?"}


def test_a_probes_held_out_problems_in_the_stores(tmp_path: Path) -> None:
    stores = EvalStores.read([write_store(tmp_path / "a.db", {"task": "plus_one"})])
    rollouts = stores.rollouts(PlusOne())  # type: ignore[arg-type]
    assert heldout_missing(["p0", "p1"], rollouts, "probe.npz") == 0
    assert heldout_missing(["p1", "p7", "p8"], rollouts, "probe.npz") == 2
    with pytest.raises(ConfigError, match=r"none of the 2 problems probe\.npz held out are in"):
        heldout_missing(["p7", "p8"], rollouts, "probe.npz")

    def probe(heldout: list[str]) -> Path:
        meta = {"heldout": {"problem_ids": heldout}}
        made = ProbeVerifier([1.0], 0.0, [0.0], [1.0], model="m", meta=meta)
        return made.save(tmp_path / f"probe{len(heldout)}.npz")

    assert load_heldout_probe(probe(["p1", "p0"])).heldout_ids == ("p0", "p1")
    with pytest.raises(ConfigError, match=r"probe0\.npz held out no problems \(trained with"):
        load_heldout_probe(probe([]))
