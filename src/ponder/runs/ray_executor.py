"""Problems as calls to Ray actors, each actor holding one loaded engine.

``RayExecutor`` plugs into ``evaluate(..., executor=...)``: the driver keeps the run
store and writes each record as its problem comes back, exactly as the local executor
does, so the store, the resume rules and the records are the same whichever executor
ran them (each problem's seed comes from its id, not from where it ran).

Each actor is built with ``make_engine`` (a picklable callable: a top-level function or
a ``functools.partial`` of one) and runs up to ``per_actor`` problems at once on its
own event loop; ``actors * per_actor`` problems are in flight. Resources are declared
per actor (``num_cpus``, ``num_gpus``, ``memory`` in bytes), so Ray places actors where
they fit. An actor whose process dies is restarted (up to ``max_restarts`` times) and
the problems it held are sent again (``max_task_retries``); past that the run stops
with the error, keeping every finished record, and the next run does only the rest.
The actors are an ``ActorPool`` (``ponder.runs.ray_pool``), as the TTT executor's are.

``address`` joins a running cluster (``"auto"``, or ``"ray://host:10001"``); with none,
a local Ray starts in this process and stops when the run ends.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ponder.core.engine import Engine, model_sha256
from ponder.core.errors import ConfigError
from ponder.core.types import Problem
from ponder.runs.job import SolveJob
from ponder.runs.ray_pool import ActorPool, ActorResources, import_ray
from ponder.runs.solve import solve_problem
from ponder.runs.store import Record

__all__ = ["RayExecutor"]


class _Solver:
    """The actor: one engine and the run's job, solving problems on request."""

    def __init__(self, make_engine: Callable[[], Engine], job: SolveJob) -> None:
        self.engine = make_engine()
        self.job = job

    async def engine_name(self) -> str:
        return self.engine.name

    async def engine_sha256(self) -> str | None:
        return model_sha256(self.engine)

    async def solve(self, idx: int, problem: Problem) -> tuple[Record, BaseException | None]:
        return await solve_problem(self.job, self.engine, idx, problem)

    async def pid(self) -> int:
        return os.getpid()

    async def close(self) -> None:
        await self.engine.aclose()


@dataclass
class RayExecutor(ActorResources):
    """Run ``evaluate``'s problems on Ray actors; see the module doc. The actors'
    resources are ``ActorResources``' keyword fields."""

    make_engine: Callable[[], Engine]
    per_actor: int = 4
    runtime_env: dict[str, Any] | None = None
    _pool: ActorPool = field(init=False, repr=False)
    _name: str = field(default="", init=False, repr=False)
    model_sha256: str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.actors < 1 or self.per_actor < 1:
            raise ConfigError(
                f"actors and per_actor must be >= 1, got {self.actors} and {self.per_actor}"
            )
        if self.num_cpus < 0 or self.num_gpus < 0:
            raise ConfigError("num_cpus and num_gpus must be >= 0")
        self._pool = self.pool(max_concurrency=self.per_actor, runtime_env=self.runtime_env)

    @property
    def slots(self) -> int:
        """Problems in flight at once."""
        return self.actors * self.per_actor

    @property
    def _handles(self) -> list[Any]:
        """The running actors (empty before ``start`` and after ``close``)."""
        return self._pool.handles

    async def start(self, job: SolveJob) -> str:
        """Start Ray (or join ``address``) and the actors; returns the engine's name.

        Calling it again before ``close`` keeps the running actors (a caller may start
        the executor ahead of ``evaluate``, to time or check the start-up apart)."""
        if self._handles:
            return self._name
        handles = self._pool.start(_Solver, self.make_engine, job)
        names = await asyncio.gather(*(h.engine_name.remote() for h in handles))
        self._name = str(names[0])
        # the weights' hash, for the run's configuration (None for a server's model)
        self.model_sha256 = await handles[0].engine_sha256.remote()
        return self._name

    async def solve(
        self, slot: int, idx: int, problem: Problem
    ) -> tuple[Record, BaseException | None]:
        handle = self._handles[slot % len(self._handles)]
        record, error = await handle.solve.remote(idx, problem)
        return record, error

    async def actor_pids(self) -> list[int]:
        """The actors' process ids (to watch them, or for tests that kill one)."""
        return [int(p) for p in await asyncio.gather(*(h.pid.remote() for h in self._handles))]

    async def close(self) -> None:
        """Close each actor's engine, stop the actors, and stop Ray if this started it.

        An actor that died is only stopped; an engine that fails to close raises its
        error once every actor is stopped."""
        import_ray()
        from ray.exceptions import RayActorError

        first: BaseException | None = None
        for h in self._handles:
            try:
                await h.close.remote()
            except RayActorError:
                pass  # the actor is gone, and its engine with it: nothing to close
            except Exception as e:
                first = first or e
        self._pool.stop()
        if first is not None:
            raise first
