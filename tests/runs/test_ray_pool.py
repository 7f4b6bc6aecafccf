"""The actor pool both Ray executors share, on a real local Ray: actors of the given
class built from the given arguments, with the declared resources, and Ray stopped
again when the pool started it."""

from __future__ import annotations

import os
import sys
from typing import Any

import pytest

from ponder.runs.ray_pool import ActorPool, import_ray

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module", autouse=True)
def _actors_by_value() -> None:
    from ray import cloudpickle

    # the workers cannot import this test module: send its actor class by value
    cloudpickle.register_pickle_by_value(sys.modules[__name__])


class _Echo:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def say(self, text: str) -> str:
        return f"{self.prefix}{text}"

    def pid(self) -> int:
        return os.getpid()


def test_import_ray_is_the_ray_module() -> None:
    assert import_ray() is ray


def test_a_pool_starts_its_actors_and_ray_and_stops_both() -> None:
    assert not ray.is_initialized()
    pool = ActorPool(actors=2, num_cpus=0.5, max_restarts=0, max_task_retries=0)
    handles: list[Any] = pool.start(_Echo, "hi ")
    try:
        assert ray.is_initialized() and handles == pool.handles and len(handles) == 2
        assert ray.get([h.say.remote("there") for h in handles]) == ["hi there"] * 2
        pids = ray.get([h.pid.remote() for h in handles])
        assert len(set(pids)) == 2 and os.getpid() not in pids
    finally:
        pool.stop()
    assert pool.handles == [] and not ray.is_initialized()


def test_a_pool_leaves_a_ray_it_did_not_start_running() -> None:
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        pool = ActorPool(actors=1, num_cpus=0.5, max_concurrency=2)
        (handle,) = pool.start(_Echo, "")
        assert ray.get(handle.say.remote("ok")) == "ok"
        pool.stop()
        assert ray.is_initialized()
    finally:
        ray.shutdown()
