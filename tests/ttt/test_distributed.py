"""``ponder ttt`` on Ray actors (a real local Ray, the tiny random model): the records
of a local run, failures as error records, and a killed actor that loses nothing."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from tests.ttt.conftest import tiny_lm

from ponder.runs.store import Record, RunStore
from ponder.tasks.arc import FewShotTask, Pair
from ponder.ttt.run import run_config, run_ttt
from ponder.ttt.train import TTTConfig

ray = pytest.importorskip("ray")
pytest.importorskip("peft")

TASKS = [
    FewShotTask(
        f"mirror{i}",
        (Pair(f"{i}0\n02", f"0{i}\n20"), Pair("30\n04", "03\n40"), Pair("50\n06", "05\n60")),
        (Pair("70\n08", "07\n80"),),
        kind="grid",
    )
    for i in range(1, 5)
]


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Any:
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[tiny_lm.__module__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _key(r: Record) -> tuple[Any, ...]:
    losses = [round(x, 4) for x in r.meta["train"]["losses"]]
    return (r.problem_id, r.answer, dict(r.votes), r.error, losses, r.meta["train"]["tokens"])


def _run(path: Path, cfg: TTTConfig, **kw: Any) -> Any:
    config = run_config(source="tests", model="tiny", cfg=cfg, train=True, colour_variants=1,
                        limit=None)  # fmt: skip
    with RunStore(path) as store:
        summary = run_ttt(TASKS, kw.pop("lm", None), store, config=config, cfg=cfg,
                          max_new_tokens=6, progress=False, **kw)  # fmt: skip
        return summary, store.records()


def test_ray_gives_the_local_records(tmp_path: Path) -> None:
    import torch

    from ponder.ttt.distributed import RayTTTExecutor

    cfg = TTTConfig(steps=2, learning_rate=1e-2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each actor (one CPU) runs
    try:
        local, local_records = _run(tmp_path / "local.db", cfg, lm=tiny_lm())
    finally:
        torch.set_num_threads(threads)
    remote, remote_records = _run(
        tmp_path / "ray.db", cfg, executor=RayTTTExecutor(tiny_lm, actors=2, num_cpus=1)
    )
    assert local.done_now == remote.done_now == 4 and remote.errors == 0
    assert [_key(r) for r in remote_records] == [_key(r) for r in local_records]
    # resumed, nothing is left to do
    again, _ = _run(tmp_path / "ray.db", cfg, executor=RayTTTExecutor(tiny_lm, num_cpus=1))
    assert (again.done_now, again.skipped) == (0, 4)


def test_a_failing_task_is_an_error_record_on_ray_too(tmp_path: Path) -> None:
    from ponder.ttt.distributed import RayTTTExecutor

    tight = TTTConfig(steps=1, max_length=16)
    summary, records = _run(
        tmp_path / "tight.db", tight, executor=RayTTTExecutor(tiny_lm, actors=1, num_cpus=1)
    )
    assert summary.errors == 4 and all("fits in 16 tokens" in (r.error or "") for r in records)


def test_a_killed_actor_loses_nothing(tmp_path: Path) -> None:
    from ponder.ttt.distributed import RayTTTExecutor

    cfg = TTTConfig(steps=80, learning_rate=1e-2)
    executor = RayTTTExecutor(tiny_lm, actors=2, num_cpus=1, max_restarts=1)
    done_at_kill: list[int] = []

    def kill_first_actor() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            with RunStore(tmp_path / "killed.db") as store:
                if len(store) >= 1 and executor.pids:  # one task done, others training
                    done_at_kill.append(len(store))
                    break
            time.sleep(0.05)
        os.kill(executor.pids[0], signal.SIGKILL)

    killer = threading.Thread(target=kill_first_actor)
    killer.start()
    summary, records = _run(tmp_path / "killed.db", cfg, executor=executor)
    killer.join()
    assert done_at_kill and done_at_kill[0] < len(TASKS)
    assert summary.done_now == 4 and summary.errors == 0
    assert sorted(r.problem_id for r in records) == [t.id for t in TASKS]
