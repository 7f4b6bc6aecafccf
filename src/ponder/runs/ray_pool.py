"""A pool of Ray actors of one class, shared by the eval and the TTT executors.

The pool owns what both have in common: importing Ray (``import_ray``), starting a
local Ray or joining ``address`` when none is running in this process, declaring each
actor's resources (``num_cpus``, ``num_gpus``, ``memory`` in bytes) so Ray places the
actors where they fit, restarting an actor whose process dies (``max_restarts``) and
sending its calls again (``max_task_retries``), and stopping the actors, and Ray when
the pool started it. What an actor does is its class's business: the eval executor's
actors solve problems on an engine, the TTT executor's train and answer few-shot tasks.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from ponder.core.errors import MissingExtra

__all__ = ["ActorPool", "ActorResources", "import_ray"]


def import_ray() -> Any:
    """The ``ray`` module; ``MissingExtra`` naming the ``ray`` extra when it is absent."""
    try:
        import ray
    except ImportError as e:
        raise MissingExtra("ray", "ray") from e
    return ray


@dataclass(kw_only=True)
class ActorResources:
    """How many actors, what each declares to Ray (``num_cpus``, ``num_gpus``, ``memory``
    in bytes), how a dead one is restarted and its calls sent again, and the Ray to join
    (``address``; None starts a local one). The eval and TTT executors take these as
    keyword fields and build their ``ActorPool`` from them (``pool``)."""

    actors: int = 1
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    memory: int | None = None
    address: str | None = None
    max_restarts: int = 2
    max_task_retries: int = 2

    def pool(
        self, *, max_concurrency: int | None = None, runtime_env: dict[str, Any] | None = None
    ) -> ActorPool:
        """A pool of actors with these resources."""
        mine = {f.name: getattr(self, f.name) for f in fields(ActorResources)}
        return ActorPool(**mine, max_concurrency=max_concurrency, runtime_env=runtime_env)


@dataclass(kw_only=True)
class ActorPool(ActorResources):
    """``actors`` Ray actors of one class, with the resources each declares.

    ``max_concurrency`` is how many calls one actor runs at once (None: Ray's default
    for the class); ``runtime_env`` is passed to the Ray this pool starts. ``handles``
    are the running actors, once ``start`` returns.
    """

    max_concurrency: int | None = None
    runtime_env: dict[str, Any] | None = None
    handles: list[Any] = field(default_factory=list, init=False, repr=False)
    _started_ray: bool = field(default=False, init=False, repr=False)

    def start(self, actor_class: type, *args: Any) -> list[Any]:
        """Start Ray when it is not running (joining ``address`` if set), then the
        actors, each built as ``actor_class(*args)`` in its own process (``args`` are
        pickled there: a top-level function or a ``functools.partial`` of one travels
        by reference). Returns the handles."""
        ray = import_ray()
        if not ray.is_initialized():
            ray.init(
                address=self.address,
                include_dashboard=False,
                log_to_driver=False,
                runtime_env=self.runtime_env,
            )
            self._started_ray = True
        options: dict[str, Any] = {
            "num_cpus": self.num_cpus,
            "num_gpus": self.num_gpus,
            "max_restarts": self.max_restarts,
            "max_task_retries": self.max_task_retries,
        }
        if self.max_concurrency is not None:
            options["max_concurrency"] = self.max_concurrency
        if self.memory is not None:
            options["memory"] = self.memory
        remote = ray.remote(actor_class).options(**options)
        self.handles = [remote.remote(*args) for _ in range(self.actors)]
        return self.handles

    def stop(self) -> None:
        """Kill the actors, and stop Ray if ``start`` started it."""
        ray = import_ray()
        handles, self.handles = self.handles, []
        for h in handles:
            ray.kill(h)
        if self._started_ray and ray.is_initialized():
            ray.shutdown()
            self._started_ray = False
