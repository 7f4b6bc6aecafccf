"""Test-time training of many tasks on Ray actors, each holding one loaded model.

``RayTTTExecutor`` plugs into ``run_ttt(..., executor=...)``. Each actor loads the model
once (``load`` is a picklable callable: a top-level function or a ``functools.partial``
of one), then trains, answers and scores one task at a time (``ttt.solve.solve_task``,
as a local run does); the driver keeps the run store and writes each task's records as
they come back, so the store is the one a local run writes and resumes the same way.
Resources are declared per actor (``num_cpus``, also the torch threads of the actor;
``num_gpus``; ``memory`` in bytes). A task that raises becomes error records, as
locally. An actor whose process dies is restarted and its task sent again
(``max_restarts``, ``max_task_retries``); past that the run stops with the error and
the next run does only the missing tasks. Adapters are saved by the actors under the
run's adapter folder: on a cluster, give a folder every node can reach. The actors are
an ``ActorPool`` (``ponder.runs.ray_pool``), as the eval executor's are.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ponder.core.errors import ConfigError
from ponder.runs.ray_pool import ActorPool, ActorResources, import_ray
from ponder.runs.store import Record
from ponder.tasks.arc import FewShotTask
from ponder.ttt.model import LoadedModel
from ponder.ttt.solve import TTTJob, solve_task

__all__ = ["RayTTTExecutor"]


class _Worker:
    """The actor: one loaded model, solving one task at a time."""

    def __init__(self, load: Callable[[], LoadedModel], threads: int | None) -> None:
        if threads:
            import torch

            torch.set_num_threads(threads)
        self.lm = load()

    def model_name(self) -> str:
        return str(getattr(self.lm.model, "name_or_path", ""))

    def pid(self) -> int:
        return os.getpid()

    def solve(self, task: FewShotTask, idx: int, job: TTTJob) -> list[Record]:
        return solve_task(self.lm, task, idx, job)


@dataclass
class RayTTTExecutor(ActorResources):
    """Run ``run_ttt``'s tasks on Ray actors; see the module doc. The actors' resources
    are ``ActorResources``' keyword fields."""

    load: Callable[[], LoadedModel]
    pids: list[int] = field(default_factory=list, init=False)  # the actors', once started
    _pool: ActorPool = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.actors < 1:
            raise ConfigError(f"actors must be >= 1, got {self.actors}")
        self._pool = self.pool()

    def start(self) -> None:
        """Start Ray (or join ``address``) and the actors; each has loaded its model
        once this returns."""
        ray = import_ray()
        threads = int(self.num_cpus) if self.num_cpus >= 1 else None
        handles = self._pool.start(_Worker, self.load, threads)
        self.pids = [int(p) for p in ray.get([h.pid.remote() for h in handles])]

    def map(
        self, todo: Sequence[tuple[int, FewShotTask]], job: TTTJob
    ) -> Iterator[tuple[int, FewShotTask, list[Record] | Exception]]:
        """Yield each task's records (or the exception it raised) as it finishes, with
        one task at a time per actor. An actor that died past its restarts raises."""
        ray = import_ray()
        from ray.exceptions import RayActorError, RayTaskError

        queue = list(todo)
        running: dict[Any, tuple[int, FewShotTask, Any]] = {}
        free = list(self._pool.handles)
        while queue or running:
            while queue and free:
                handle = free.pop()
                idx, task = queue.pop(0)
                running[handle.solve.remote(task, idx, job)] = (idx, task, handle)
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
        """Stop the actors, and Ray if ``start`` started it."""
        self._pool.stop()
