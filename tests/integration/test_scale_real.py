"""Scale-out against the real things: `ponder eval --executor ray` on a local Ray with
the embedded smollm2, and an engine pool over two real llama.cpp servers, one of them
killed mid-run."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.integration.conftest import _free_port, _require_server_packages, running_server

from ponder.cli import main
from ponder.engines.openai import OpenAIEngine
from ponder.engines.pool import EnginePool
from ponder.runs.runner import evaluate
from ponder.runs.store import RunStore
from ponder.strategies import make_strategy
from ponder.tasks import make_task

pytestmark = pytest.mark.integration


def _records(path: Path) -> list[tuple[Any, ...]]:
    with RunStore(path, create=False) as store:
        return [
            (r.problem_id, r.answer, [c.text for c in r.candidates], r.usage, r.error)
            for r in store.records()
        ]


def test_ray_executor_gives_the_local_records_on_a_real_model(
    smollm2_path: Path, tmp_path: Path
) -> None:
    pytest.importorskip("ray")
    common = [
        "eval", "--task", "demo", "--limit", "3", "--model", str(smollm2_path),
        "--strategy", "majority", "--n", "2", "--max-tokens", "40", "--seed", "1",
        "--concurrency", "1", "--no-progress",
    ]  # fmt: skip
    assert main([*common, "--out", str(tmp_path / "local.db")]) == 0
    ray_args = ["--executor", "ray", "--actors", "1", "--actor-cpus", "2"]
    assert main([*common, *ray_args, "--out", str(tmp_path / "ray.db")]) == 0
    local, remote = _records(tmp_path / "local.db"), _records(tmp_path / "ray.db")
    assert len(local) == 3 and all(r[4] is None for r in local)
    assert remote == local


def test_a_pool_of_two_real_servers_survives_one_killed_mid_run(
    smollm2_path: Path, tmp_path: Path
) -> None:
    _require_server_packages()
    ports = [_free_port(), _free_port()]
    urls = [f"http://127.0.0.1:{port}" for port in ports]

    def server(i: int) -> Any:
        command = [
            sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_path),
            "--host", "127.0.0.1", "--port", str(ports[i]), "--n_ctx", "1024",
            "--n_threads", "1",
        ]  # fmt: skip
        return running_server(command, f"{urls[i]}/v1/models", tmp_path / f"s{i}.log", f"s{i}")

    members = [OpenAIEngine("smollm2", base_url=u, timeout=120, max_retries=1) for u in urls]
    pool = EnginePool(members, labels=["first", "second"], recheck_after=600)
    task = make_task("demo")
    store_path = tmp_path / "pool.db"
    with server(0), server(1) as second:

        async def kill_second_after_two_records() -> int:
            while True:
                with RunStore(store_path) as store:
                    if len(store) >= 2:
                        done = len(store)
                        break
                await asyncio.sleep(0.1)
            second.kill()
            return done

        async def go() -> tuple[Any, int]:
            killer = asyncio.create_task(kill_second_after_two_records())
            try:
                summary = await evaluate(
                    task=task,
                    problems=task.load(None),
                    strategy=make_strategy("majority", {"n": 2}),
                    engine=pool,
                    store=store_path,
                    max_tokens=32,
                    concurrency=4,
                    progress=False,
                )
                return summary, await killer
            finally:
                await pool.aclose()

        summary, done_at_kill = asyncio.run(go())
    assert done_at_kill < summary.total
    assert summary.errors == 0 and summary.graded == summary.total == 12
    stats = {m.label: m for m in pool.stats()}
    assert stats["first"].healthy and stats["first"].served > 0
    assert not stats["second"].healthy and stats["second"].served > 0
    assert stats["second"].failures >= 1
