"""Choosing a subset of a task's problems by their metadata (MATH-500's ``level``, say).

A condition ``KEY=V1,V2`` keeps the problems whose ``Problem.meta[KEY]``, written as a
string, is one of the values; several conditions must all hold. ``limit_each`` then keeps
the first N problems (in the task's order) of each combination of the conditions' keys,
so ``level=1,3,5`` with ``limit_each=10`` is ten problems of each of the three levels.
The order of the problems that remain is the task's order. ``pick_problems`` applies
``ponder eval``'s ``--limit``, ``--where`` and ``--limit-each`` to a task.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from ponder.core.errors import ConfigError
from ponder.core.types import Problem

if TYPE_CHECKING:
    from ponder.core.task import Task

__all__ = ["parse_where", "pick_problems", "select_problems"]


def parse_where(conditions: Iterable[str]) -> dict[str, frozenset[str]]:
    """``["level=1,3", "subject=Algebra"]`` as ``{"level": {"1", "3"}, ...}``."""
    where: dict[str, frozenset[str]] = {}
    for text in conditions:
        key, sep, values = text.partition("=")
        key = key.strip()
        wanted = frozenset(v.strip() for v in values.split(",") if v.strip())
        if not sep or not key or not wanted:
            raise ConfigError(f"--where takes KEY=VALUE[,VALUE...], got {text!r}")
        if key in where:
            raise ConfigError(f"--where names {key!r} twice; list its values once")
        where[key] = wanted
    return where


def select_problems(
    problems: Sequence[Problem],
    where: Mapping[str, frozenset[str]],
    *,
    limit_each: int | None = None,
    limit: int | None = None,
) -> list[Problem]:
    """The problems that meet every condition of ``where``, the first ``limit_each`` of
    each combination of its keys' values, then the first ``limit`` of those."""
    if limit_each is not None and limit_each < 1:
        raise ConfigError(f"limit_each must be >= 1, got {limit_each}")
    if limit_each is not None and not where:
        raise ConfigError("limit_each counts problems per value of a --where key: add --where")
    if limit is not None and limit < 0:
        raise ConfigError(f"limit must be >= 0, got {limit}")
    keys = sorted(where)
    for key in keys:
        if not any(key in p.meta for p in problems):
            have = sorted({k for p in problems for k in p.meta})
            raise ConfigError(
                f"no problem has {key!r} in its metadata; "
                + (f"these have: {', '.join(have)}" if have else "these have none")
            )
    kept: list[Problem] = []
    seen: Counter[tuple[str, ...]] = Counter()
    for problem in problems:
        if not all(k in problem.meta and str(problem.meta[k]) in where[k] for k in keys):
            continue
        group = tuple(str(problem.meta[k]) for k in keys)
        if limit_each is not None and seen[group] >= limit_each:
            continue
        seen[group] += 1
        kept.append(problem)
    if not kept:
        asked = "; ".join(f"{k}={','.join(sorted(where[k]))}" for k in keys)
        raise ConfigError(f"no problem matches --where {asked}")
    return kept if limit is None else kept[:limit]


def pick_problems(
    task: Task,
    *,
    limit: int | None = None,
    where: Iterable[str] = (),
    limit_each: int | None = None,
) -> list[Problem]:
    """The task's problems that ``limit``, the ``KEY=V1,V2`` conditions of ``where``
    and ``limit_each`` pick. Without conditions or ``limit_each`` the task loads only
    its first ``limit`` problems; with them it loads all of them to choose from."""
    conditions = parse_where(where)
    if conditions or limit_each is not None:
        return select_problems(task.load(None), conditions, limit_each=limit_each, limit=limit)
    return task.load(limit)
