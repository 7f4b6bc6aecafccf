"""Checkpoints of a long training run (``ponder finetune``), so a killed run goes on.

A checkpoint is one file, ``state.pt`` in a folder beside the run's output: the
adapter's weights, the optimiser's and the schedule's state, torch's random state, the
steps done, how many examples were drawn from the (seeded, deterministic) example
stream, the training report so far, and a fingerprint of what is being trained (tasks,
settings, model). Resuming restores all of it and skips the examples already drawn,
so the resumed run sees the data the uninterrupted one would have. Writes are atomic:
the previous checkpoint stays whole until the next one is.

A finished run keeps its adapter alone (``FinalAdapter``, one file beside the output, in
float16): a few tens of MB where the merged model is GBs, so it can travel (committed
with a benchmark) and the model be rebuilt elsewhere without training again.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ponder.core.errors import ConfigError

__all__ = [
    "Checkpoint",
    "CountedStream",
    "FinalAdapter",
    "adapter_file",
    "checkpoint_folder",
    "checkpoint_step",
]

T = TypeVar("T")


def checkpoint_folder(out: str | Path) -> Path:
    """Where a training run towards ``out`` keeps its checkpoint."""
    target = Path(out)
    return target.with_name(target.name + ".checkpoint")


def adapter_file(out: str | Path) -> Path:
    """Where a finished training run towards ``out`` keeps its adapter alone."""
    target = Path(out)
    return target.with_name(target.name + ".adapter.pt")


def checkpoint_step(folder: str | Path) -> int:
    """The optimiser steps a checkpoint in ``folder`` has done (0: none there)."""
    path = Path(folder) / _STATE
    if not path.is_file():
        return 0
    import torch

    return int(torch.load(path, weights_only=False)["step"])


_STATE = "state.pt"


@dataclass(frozen=True)
class Checkpoint:
    """A run's checkpoint: saved to ``folder`` every ``every`` steps, and valid for a
    run with the same ``fingerprint`` only."""

    folder: Path
    every: int
    fingerprint: dict[str, Any]

    def load(self, model: Any, optimizer: Any, scheduler: Any) -> tuple[int, int, dict[str, Any]]:
        """The steps done, the examples drawn and the training report so far (a dict),
        restored into ``model``, ``optimizer`` and ``scheduler``; ``(0, 0, {})`` when
        there is no checkpoint."""
        import torch
        from peft import set_peft_model_state_dict

        path = self.folder / _STATE
        if not path.is_file():
            return 0, 0, {}
        state = torch.load(path, weights_only=False)
        if state["fingerprint"] != self.fingerprint:
            raise ConfigError(
                f"{self.folder} holds a checkpoint of other tasks or settings; remove it "
                "to start over, or resume with the settings it was made with"
            )
        set_peft_model_state_dict(model, state["adapter"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        return int(state["step"]), int(state["drawn"]), dict(state["report"])

    def save(
        self,
        model: Any,
        optimizer: Any,
        scheduler: Any,
        *,
        step: int,
        drawn: int,
        report: dict[str, Any],
    ) -> None:
        """Everything ``load`` needs, written atomically (the old checkpoint stays
        whole until the new one is)."""
        import torch
        from peft import get_peft_model_state_dict

        self.folder.mkdir(parents=True, exist_ok=True)
        partial = self.folder / (_STATE + ".partial")
        torch.save(
            {
                "fingerprint": self.fingerprint,
                "adapter": get_peft_model_state_dict(model),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": torch.get_rng_state(),
                "step": step,
                "drawn": drawn,
                "report": report,
            },
            partial,
        )
        os.replace(partial, self.folder / _STATE)


@dataclass(frozen=True)
class FinalAdapter:
    """A finished run's adapter, in float16, with the run's report, in one file: valid
    for a run with the same ``fingerprint`` only.

    ``save`` rounds the adapter's weights to float16 in place before writing them, so
    the model merged from this run and a model merged later from the file are the same.
    """

    path: Path
    fingerprint: dict[str, Any]

    def load(self, model: Any) -> dict[str, Any]:
        """The run's report (a dict), its adapter loaded into ``model``."""
        import torch
        from peft import set_peft_model_state_dict

        state = torch.load(self.path, weights_only=True)
        if state["fingerprint"] != self.fingerprint:
            raise ConfigError(
                f"{self.path} holds the adapter of other tasks or settings; remove it to "
                "train again, or use the settings it was made with"
            )
        set_peft_model_state_dict(model, state["adapter"])
        return dict(state["report"])

    def save(self, model: Any, report: dict[str, Any]) -> None:
        """Round the adapter of ``model`` to float16 in place and write it, atomically."""
        import torch
        from peft import get_peft_model_state_dict

        with torch.no_grad():
            for param in model.parameters():
                if param.requires_grad:
                    param.copy_(param.to(torch.float16))
        adapter = {k: v.to(torch.float16) for k, v in get_peft_model_state_dict(model).items()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".partial")
        torch.save({"fingerprint": self.fingerprint, "adapter": adapter, "report": report}, partial)
        os.replace(partial, self.path)


class CountedStream(Iterator[T]):
    """A stream that counts what was drawn from it, so a resumed run skips as many."""

    def __init__(self, stream: Iterator[T]) -> None:
        self.stream = stream
        self.drawn = 0

    def skip(self, n: int) -> None:
        for _ in range(n):
            next(self.stream)
        self.drawn += n

    def __next__(self) -> T:
        self.drawn += 1
        return next(self.stream)
