"""Where a run's problems are solved: the ``Executor`` protocol and the local executor.

``evaluate`` keeps the run store and the loop over problems; an executor only solves
the problem it is handed, with ``ponder.runs.solve.solve_problem`` on an engine of its
own, so the records are the same whichever executor ran them. ``LocalExecutor`` solves
in this process on the caller's engine; ``ponder.runs.ray_executor.RayExecutor`` on Ray
actors, each holding an engine.
"""

from __future__ import annotations

from typing import Protocol

from ponder.core.engine import Engine, model_sha256
from ponder.core.errors import ConfigError
from ponder.core.types import Problem
from ponder.runs.job import SolveJob
from ponder.runs.solve import solve_problem
from ponder.runs.store import Record

__all__ = ["Executor", "LocalExecutor"]


class Executor(Protocol):
    """Solves a run's problems, ``slots`` at a time.

    ``start`` readies the workers for the job and returns the name of the engine they
    use; ``solve`` runs one problem on the worker of ``slot`` (``0 <= slot < slots``)
    and returns its record and the exception it failed with, as ``solve_problem``
    does; ``close`` stops the workers. An executor may also have a ``model_sha256``
    attribute, read after ``start``: the weights' hash of its engine, for the run's
    configuration (None or absent when unknown).
    """

    @property
    def slots(self) -> int: ...

    async def start(self, job: SolveJob) -> str: ...

    async def solve(
        self, slot: int, idx: int, problem: Problem
    ) -> tuple[Record, BaseException | None]: ...

    async def close(self) -> None: ...


class LocalExecutor:
    """Problems solved in this process on one engine, ``concurrency`` at a time.

    The engine is the caller's: ``close`` leaves it open.
    """

    def __init__(self, engine: Engine, concurrency: int) -> None:
        if concurrency < 1:
            raise ConfigError(f"concurrency must be >= 1, got {concurrency}")
        self.engine = engine
        self.concurrency = concurrency
        self._job: SolveJob | None = None

    @property
    def slots(self) -> int:
        return self.concurrency

    @property
    def model_sha256(self) -> str | None:
        """The engine's weights' hash, when it knows it."""
        return model_sha256(self.engine)

    async def start(self, job: SolveJob) -> str:
        self._job = job
        return self.engine.name

    async def solve(
        self, slot: int, idx: int, problem: Problem
    ) -> tuple[Record, BaseException | None]:
        if self._job is None:
            raise RuntimeError("LocalExecutor.solve before start")
        return await solve_problem(self._job, self.engine, idx, problem)

    async def close(self) -> None:
        self._job = None
