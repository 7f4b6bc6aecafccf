"""What ``ponder verifier`` works out from the eval stores it reads: the task they
record, their graded rollouts, the model that wrote them, and which problems a probe
held out of its training (and how many of those the stores hold).

The messages name the command's flags (``--task``, ``--model``, ``--heldout``), the
settings a caller passes instead of what the stores record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ponder.analysis.probe_train import Rollout, collect_rollouts
from ponder.core.errors import ConfigError
from ponder.core.task import Task
from ponder.verifiers.probe import ProbeVerifier

__all__ = ["EvalStores", "heldout_missing", "load_heldout_probe"]


@dataclass(frozen=True)
class EvalStores:
    """Eval stores and the configurations they recorded (``{}`` for a store without)."""

    paths: tuple[str, ...]
    configs: tuple[Mapping[str, Any], ...]

    @classmethod
    def read(cls, paths: Sequence[str | Path]) -> EvalStores:
        """The stores at ``paths``, which must exist."""
        from ponder.runs.store import RunStore  # imports the eval runner: only when reading

        configs = []
        for path in paths:
            with RunStore(path, create=False) as store:
                configs.append(store.config() or {})
        return cls(tuple(str(p) for p in paths), tuple(configs))

    def task_name(self) -> str:
        """The one task the stores record; a ``ConfigError`` when they record several
        or none."""
        names = {str(c["task"]) for c in self.configs if c.get("task")}
        if len(names) != 1:
            found = ", ".join(sorted(names)) or "none recorded"
            raise ConfigError(f"pass --task: the stores' tasks are {found}")
        return names.pop()

    def models(self) -> list[str]:
        """The models the stores record, one per store that records one, in order."""
        return [str(c["model"]) for c in self.configs if c.get("model")]

    def writer_model(self) -> str:
        """The model that wrote the first store that records one: the verifier's model
        when none is given."""
        models = self.models()
        if not models:
            raise ConfigError("pass --model: the stores do not record which model wrote them")
        return models[0]

    def rollouts(
        self, task: Task, *, from_data: bool = False, limit: int | None = None
    ) -> list[Rollout]:
        """The stores' graded rollouts (``collect_rollouts``); with ``from_data`` each
        problem comes from the task's own data, else from its record."""
        problems = {p.id: p for p in task.load()} if from_data else None
        return collect_rollouts(self.paths, task, problems=problems, limit=limit)


def load_heldout_probe(path: str | Path) -> ProbeVerifier:
    """The probe at ``path``, which must have held problems out of its training."""
    probe = ProbeVerifier.load(path)
    if not probe.heldout_ids:
        raise ConfigError(f"{path} held out no problems (trained with --heldout 0)")
    return probe


def heldout_missing(ids: Sequence[str], rollouts: Sequence[Rollout], probe: str | Path) -> int:
    """How many of the problems ``ids`` that the probe at ``probe`` held out have no
    rollout; a ``ConfigError`` when none of them has one (the wrong stores)."""
    present = {r.problem.id for r in rollouts}
    missing = sum(1 for i in ids if i not in present)
    if missing == len(ids):
        raise ConfigError(
            f"none of the {len(ids)} problems {probe} held out are in these "
            "stores; pass the stores the probe was trained on"
        )
    return missing
