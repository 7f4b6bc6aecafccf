"""What a run derives from its arguments before it starts, as ``ponder eval`` does.

``evaluate`` calls these, so a run from Python stores what the CLI's does:

- ``build_strategy``: a strategy named with options, whose sampling temperature and
  top-p come from the replay bank when the options give none (a replayed sample is
  one drawn as the bank's were). Only a strategy built here can tell "not given" from
  its class default, which is why ``evaluate`` accepts a strategy's name and options.
- ``config_extra_for``: the caller's extra settings plus what the run is made of beyond
  the runner's own configuration: the replay bank it draws from (and whether it extends
  it), how a free-form task's answers are read and graded, and for the compute-optimal
  strategy the content hash of its policy file (``policy_sha256``), so resuming with
  another bank, grader or policy file is refused.
- ``prepare_task``: what a task must settle before its first problem (HumanEval's
  sandbox), so a refusal stops the run before anything runs.
- ``DEFAULT_MAX_TOKENS``: tokens per sample when neither the caller nor a bank says.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ponder.core.engine import Engine
from ponder.core.task import Task
from ponder.runs.replay import ReplayEngine, SampleBank
from ponder.strategies.base import Strategy, make_strategy, strategy_class
from ponder.strategies.optimal import ComputeOptimal
from ponder.tasks.freeform import FreeformTask
from ponder.tasks.humaneval import HumanEvalTask

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "build_strategy",
    "config_extra_for",
    "engine_bank",
    "policy_sha256",
    "prepare_task",
]

DEFAULT_MAX_TOKENS = 512


def engine_bank(engine: Engine | None) -> SampleBank | None:
    """The bank ``engine`` replays from, when it is a ``ReplayEngine``."""
    return engine.bank if isinstance(engine, ReplayEngine) else None


def build_strategy(
    name: str, options: Mapping[str, Any] | None = None, bank: SampleBank | None = None
) -> Strategy:
    """The registered strategy ``name`` with ``options`` (None values: not given).

    With a replay ``bank``, a strategy that has ``temperature`` or ``top_p`` fields
    samples at the bank's values for those the options leave unset; the compute-optimal
    strategy has neither (its pilot follows its policy)."""
    chosen = dict(options or {})
    if bank is not None:
        fields = {f.name for f in dataclasses.fields(strategy_class(name))}
        for key, value in (("temperature", bank.temperature), ("top_p", bank.top_p)):
            if key in fields and chosen.get(key) is None:
                chosen[key] = value
    return make_strategy(name, chosen)


def prepare_task(task: Task) -> None:
    """Settle what ``task`` needs before its first problem: HumanEval's sandbox is chosen
    now, so a refusal (no isolation here) stops the run instead of failing every
    problem's grading. Raises ``ConfigError`` with the refusal."""
    if isinstance(task, HumanEvalTask):
        _ = task.sandbox


def policy_sha256(strategy: Strategy) -> str | None:
    """The sha256 of a compute-optimal strategy's policy file; None for other strategies."""
    if not isinstance(strategy, ComputeOptimal):
        return None
    return hashlib.sha256(Path(strategy.policy).read_bytes()).hexdigest()


def config_extra_for(
    strategy: Strategy,
    extra: Mapping[str, Any] | None,
    *,
    task: Task | None = None,
    bank: SampleBank | None = None,
    extend: bool = False,
) -> dict[str, Any] | None:
    """The ``extra`` a run's configuration records: ``extra``, then the replay ``bank``
    (its description and ``extend``), a free-form ``task``'s answer settings, and the
    policy's hash for the compute-optimal strategy. What is derived here replaces the
    same key given in ``extra``: the bank, task and file are what runs. None when there
    is nothing to record."""
    merged = dict(extra or {})
    if bank is not None:
        merged["replay"] = bank.describe() | {"extend": extend}
    if isinstance(task, FreeformTask):
        # free-form answers: how they are read and graded is part of the run
        merged["answers"] = {"type": "free", "from": task.answer_from, "grader": task.grader}
    digest = policy_sha256(strategy)
    if digest is not None:
        merged["policy_sha256"] = digest
    return merged or None
