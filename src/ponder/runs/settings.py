"""What a run derives from its arguments before it starts, as ``ponder eval`` does.

``evaluate`` calls these, so a run from Python stores what the CLI's does:

- ``build_strategy``: a strategy named with options, whose sampling temperature and
  top-p come from the replay bank when the options give none (a replayed sample is
  one drawn as the bank's were). Only a strategy built here can tell "not given" from
  its class default, which is why ``evaluate`` accepts a strategy's name and options.
- ``config_extra_for``: the caller's extra settings plus, for the compute-optimal
  strategy, the content hash of its policy file (``policy_sha256``), so resuming with
  a changed policy file is refused.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ponder.core.engine import Engine
from ponder.runs.replay import ReplayEngine, SampleBank
from ponder.strategies.base import Strategy, make_strategy, strategy_class
from ponder.strategies.optimal import ComputeOptimal

__all__ = ["build_strategy", "config_extra_for", "engine_bank", "policy_sha256"]


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


def policy_sha256(strategy: Strategy) -> str | None:
    """The sha256 of a compute-optimal strategy's policy file; None for other strategies."""
    if not isinstance(strategy, ComputeOptimal):
        return None
    return hashlib.sha256(Path(strategy.policy).read_bytes()).hexdigest()


def config_extra_for(strategy: Strategy, extra: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The ``extra`` a run's configuration records: ``extra``, then the policy's hash
    for the compute-optimal strategy (the file's hash replaces a ``policy_sha256``
    given in ``extra``: the file is what runs). None when there is nothing to record."""
    merged = dict(extra or {})
    digest = policy_sha256(strategy)
    if digest is not None:
        merged["policy_sha256"] = digest
    return merged or None
