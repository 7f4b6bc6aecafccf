"""Which strategy a request gets, and its checks against the server's limits.

In order of precedence:

1. ``extra_body={"ponder": {"strategy": NAME, "budget": TOKENS, ...}}``: any field of
   the strategy (``n``, ``temperature``, ``scorer``, ...), a token budget for the whole
   request, ``candidates: true`` to get every candidate back, ``trace: true`` to get
   the request's trace back (``ponder.serve.trace``) and ``freeform`` for how a free-form
   request's winner is chosen (``ponder.serve.freeform``);
2. a prefix on the model name, ``NAME[-N]/MODEL``: ``majority-8/qwen``,
   ``best_of_n-4/qwen``, ``adaptive/qwen`` (``N`` is ``n``, or ``max_n`` for the
   adaptive strategies; ``adaptive`` is ``adaptive_consistency``);
3. the server's default.

A request's own ``temperature`` and ``top_p`` go to strategies that have them, unless
the ``ponder`` object sets them. Anything wrong is a ``ConfigError`` (HTTP 400).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from ponder.core.errors import ConfigError
from ponder.serve.freeform import FreeformPolicy, freeform_policy
from ponder.strategies import (
    Strategy,
    make_strategy,
    sample_count_field,
    strategy_class,
    strategy_names,
)

__all__ = ["ALIASES", "Limits", "Selection", "is_positive_int", "select", "split_model"]

ALIASES = {"adaptive": "adaptive_consistency", "sc": "majority", "bon": "best_of_n"}
_PREFIX = re.compile(r"^([a-z_]+)(?:-(\d+))?$")
_RESERVED = {"strategy", "budget", "candidates", "trace", "freeform"}


@dataclass(frozen=True)
class Limits:
    """What one request may ask for: samples (``n`` or ``max_n``), a token budget,
    tokens per sample."""

    max_n: int = 32
    max_budget: int | None = None
    max_tokens: int = 2048


@dataclass(frozen=True)
class Selection:
    """A request's strategy, built and checked."""

    name: str
    options: Mapping[str, Any]
    strategy: Strategy
    budget: int | None = None
    candidates: bool = False
    model: str = ""
    trace: bool = False
    freeform: FreeformPolicy = field(default_factory=FreeformPolicy)


def _canonical(name: str) -> str:
    name = ALIASES.get(name, name)
    if name not in strategy_names():
        raise ConfigError(f"unknown strategy {name!r}; choose from {', '.join(strategy_names())}")
    return name


def split_model(model: str) -> tuple[str | None, int | None, str]:
    """``NAME[-N]/MODEL`` -> (strategy, N, MODEL); a name without a known strategy
    prefix -> (None, None, name)."""
    head, sep, rest = model.partition("/")
    match = _PREFIX.match(head) if sep else None
    if match is None:
        return None, None, model
    name = ALIASES.get(match.group(1), match.group(1))
    if name not in strategy_names():
        return None, None, model
    return name, None if match.group(2) is None else int(match.group(2)), rest


def is_positive_int(value: Any) -> TypeGuard[int]:
    """An int of at least 1 (JSON's true and false are not counts)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def select(
    model: str,
    body: Mapping[str, Any],
    *,
    limits: Limits,
    default: tuple[str, Mapping[str, Any]] = ("single", {}),
    freeform: FreeformPolicy | None = None,
) -> Selection:
    """The strategy for a request with this model name and body (see the module doc)."""
    extra = body.get("ponder") or {}
    if not isinstance(extra, Mapping):
        raise ConfigError("'ponder' must be an object of strategy settings")
    prefixed, count, base = split_model(model)
    options: dict[str, Any] = {}
    if "strategy" in extra:
        if not isinstance(extra["strategy"], str):
            raise ConfigError("ponder.strategy must be a strategy name")
        name = _canonical(extra["strategy"])
    elif prefixed is not None:
        name = prefixed
    else:
        name = _canonical(default[0])
        options.update(default[1])
    fields = {f.name for f in dataclasses.fields(strategy_class(name))}
    counted = sample_count_field(name)
    if prefixed == name and count is not None:
        if counted is None:
            raise ConfigError(f"strategy {name!r} takes no sample count (model {model!r})")
        options[counted] = count
    for key in ("temperature", "top_p"):
        value = body.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        if key in fields and value is not None:
            options[key] = value
    for key, value in extra.items():
        if key in _RESERVED:
            continue
        if key not in fields:
            raise ConfigError(
                f"ponder.{key}: strategy {name!r} has the settings {', '.join(sorted(fields))}"
            )
        options[key] = value
    if counted is not None and counted in options:
        n = options[counted]
        if not is_positive_int(n):
            raise ConfigError(f"{counted} must be a positive integer, got {n!r}")
        if n > limits.max_n:
            raise ConfigError(f"{counted}={n} is over this server's limit of {limits.max_n}")
    budget = extra.get("budget")
    if budget is not None:
        if not is_positive_int(budget):
            raise ConfigError(
                f"ponder.core.budget must be a positive number of tokens, got {budget!r}"
            )
        if limits.max_budget is not None and budget > limits.max_budget:
            raise ConfigError(
                f"ponder.core.budget={budget} is over this server's limit of {limits.max_budget}"
            )
    trace = extra.get("trace", False)
    if not isinstance(trace, bool):
        raise ConfigError(f"ponder.trace must be true or false, got {trace!r}")
    policy = freeform_policy(extra.get("freeform"), freeform or FreeformPolicy())
    try:
        strategy = make_strategy(name, options)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"strategy {name!r}: {e}") from e
    return Selection(
        name=name,
        options=options,
        strategy=strategy,
        budget=budget,
        candidates=bool(extra.get("candidates", False)),
        model=base,
        trace=trace,
        freeform=policy,
    )
