"""Test-time training of many tasks on Ray actors, each holding one loaded model.

``RayTTTExecutor`` plugs into ``run_ttt(..., executor=...)``. Each actor loads the model
once (``load`` is a picklable callable: a top-level function or a ``functools.partial``
of one), then trains, answers and scores one task at a time; the driver keeps the run
store and writes each task's records as they come back, so the store is the one a
local run writes and resumes the same way. Resources are declared per actor
(``num_cpus``, also the torch threads of the actor; ``num_gpus``; ``memory`` in bytes).
A task that raises becomes error records, as locally. An actor whose process dies is
restarted and its task sent again (``max_restarts``, ``max_task_retries``); past that the
run stops with the error and the next run does only the missing tasks. Adapters are
saved by the actors under the run's adapter folder: on a cluster, give a folder every
node can reach.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ponder.core.errors import ConfigError
from ponder.runs.ray_executor import _import_ray
from ponder.runs.store import Record
from ponder.tasks.arc import FewShotTask
from ponder.ttt.model import LoadedModel

__all__ = ["RayTTTExecutor"]


class _Worker:
    def __init__(self, load: Callable[[], LoadedModel], threads: int | None) -> None:
        if threads:
            import torch

            torch.set_num_threads(threads)
        self.lm = load()

    def model_name(self) -> str:
        return str(getattr(self.lm.model, "name_or_path", ""))

    def pid(self) -> int:
        return os.getpid()

    def solve(self, task: FewShotTask, idx: int, options: dict[str, Any]) -> list[Record]:
        from ponder.ttt.run import _solve

        return _solve(self.lm, task, idx, on_step=None, **options)


@dataclass
class RayTTTExecutor:
    """Run ``run_ttt``'s tasks on Ray actors; see the module doc."""

    load: Callable[[], LoadedModel]
    actors: int = 1
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    memory: int | None = None
    address: str | None = None
    max_restarts: int = 2
    max_task_retries: int = 2

    def __post_init__(self) -> None:
        if self.actors < 1:
            raise ConfigError(f"actors must be >= 1, got {self.actors}")
        self._handles: list[Any] = []
        self._started_ray = False
        self.pids: list[int] = []  # the actors' process ids, once started

    def start(self) -> None:
        ray = _import_ray()
        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
            self._started_ray = True
        options: dict[str, Any] = {
            "num_cpus": self.num_cpus,
            "num_gpus": self.num_gpus,
            "max_restarts": self.max_restarts,
            "max_task_retries": self.max_task_retries,
        }
        if self.memory is not None:
            options["memory"] = self.memory
        threads = int(self.num_cpus) if self.num_cpus >= 1 else None
        worker = ray.remote(_Worker).options(**options)
        self._handles = [worker.remote(self.load, threads) for _ in range(self.actors)]
        # each actor has loaded its model once this returns
        self.pids = [int(p) for p in ray.get([h.pid.remote() for h in self._handles])]

    def map(
        self, todo: Sequence[tuple[int, FewShotTask]], options: dict[str, Any]
    ) -> Iterator[tuple[int, FewShotTask, list[Record] | Exception]]:
        """Yield each task's records (or the exception it raised) as it finishes, with
        one task at a time per actor. An actor that died past its restarts raises."""
        ray = _import_ray()
        from ray.exceptions import RayActorError, RayTaskError

        queue = list(todo)
        running: dict[Any, tuple[int, FewShotTask, Any]] = {}
        free = list(self._handles)
        while queue or running:
            while queue and free:
                handle = free.pop()
                idx, task = queue.pop(0)
                running[handle.solve.remote(task, idx, options)] = (idx, task, handle)
            ready, _ = ray.wait(list(running), num_returns=1)
            idx, task, handle = running.pop(ready[0])
            free.append(handle)
            try:
                yield idx, task, ray.get(ready[0])
            except RayActorError:
                raise
            except RayTaskError as e:
                cause = getattr(e, "cause", None)  # the task's own exception
                yield idx, task, cause if isinstance(cause, Exception) else e

    def close(self) -> None:
        ray = _import_ray()
        for h in self._handles:
            ray.kill(h)
        self._handles = []
        if self._started_ray and ray.is_initialized():
            ray.shutdown()
            self._started_ray = False
