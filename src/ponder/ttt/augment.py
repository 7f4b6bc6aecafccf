"""Invertible transforms of a few-shot task (Akyurek et al. 2024, section 3).

A ``Transform`` maps every grid of a task the same way, so a transformed task is a
consistent task (the rule that maps inputs to outputs is transformed with them), and
maps a prediction back with ``invert``. For ARC grids:

- the 8 symmetries of the square (``geometry`` 0-7: ``k`` quarter turns
  anticlockwise, then a left-right mirror for 4-7);
- a permutation of the colours 1-9 (black, 0, is the background and stays put);

and for text tasks only the identity. The order of the demonstrations is a third,
separate augmentation (``shuffle_demos``): it changes no text, so nothing inverts it.

A transform's ``family`` is its geometry: inference votes within a family first, then
across families (see ``ponder.ttt.infer``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ponder.tasks.arc import FewShotTask, Pair, grid_text, parse_grid

__all__ = [
    "GEOMETRIES",
    "SYMMETRIES",
    "Transform",
    "augment_task",
    "random_transform",
    "shuffle_demos",
    "transforms_for",
]

GEOMETRIES = (
    "identity",
    "rot90",
    "rot180",
    "rot270",
    "flip",
    "rot90+flip",
    "rot180+flip",
    "rot270+flip",
)
SYMMETRIES = ("all", "identity")


@dataclass(frozen=True)
class Transform:
    """A symmetry of the square (``geometry``, an index into ``GEOMETRIES``) and a colour
    map (``colours[c]`` is the new colour of colour ``c``; empty: no change), applied to
    grids. ``grids=False`` makes it the identity on text."""

    geometry: int = 0
    colours: tuple[int, ...] = ()
    grids: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.geometry < len(GEOMETRIES):
            raise ValueError(f"geometry must be 0-7, not {self.geometry}")
        if self.colours and (sorted(self.colours) != list(range(10)) or self.colours[0] != 0):
            raise ValueError("colours must permute 0-9 and keep 0 (black) in place")
        if not self.grids and (self.geometry or self.colours):
            raise ValueError("a text transform is the identity")

    @property
    def name(self) -> str:
        if not self.grids:
            return "text"
        colour = "" if not self.colours else "+colours:" + "".join(map(str, self.colours))
        return GEOMETRIES[self.geometry] + colour

    @property
    def family(self) -> str:
        return GEOMETRIES[self.geometry] if self.grids else "text"

    @property
    def is_identity(self) -> bool:
        return not self.grids or (
            self.geometry == 0 and (not self.colours or self.colours == tuple(range(10)))
        )

    def _grid(self, text: str, *, inverse: bool) -> str:
        grid = parse_grid(text)
        if grid is None:
            raise ValueError(f"not a grid: {text!r}")
        a = np.array(grid, dtype=np.int64)
        turns, mirror = self.geometry % 4, self.geometry >= 4
        if not inverse:
            a = np.rot90(a, turns)
            if mirror:
                a = np.fliplr(a)
            if self.colours:
                a = np.array(self.colours, dtype=np.int64)[a]
        else:
            if self.colours:
                a = np.argsort(np.array(self.colours, dtype=np.int64))[a]
            if mirror:
                a = np.fliplr(a)
            a = np.rot90(a, -turns)
        return grid_text(a.tolist())

    def apply(self, text: str) -> str:
        """``text`` transformed (a grid text, for a grid transform)."""
        return text if self.is_identity else self._grid(text, inverse=False)

    def invert(self, text: str) -> str:
        """The text ``apply`` maps to ``text``; raises ``ValueError`` on a grid
        transform given text that is not a grid."""
        return text if self.is_identity else self._grid(text, inverse=True)

    def task(self, task: FewShotTask) -> FewShotTask:
        """Every input and output of ``task`` transformed."""

        def pair(p: Pair) -> Pair:
            out = None if p.output is None else self.apply(p.output)
            return Pair(self.apply(p.input), out)

        return FewShotTask(
            id=task.id,
            demos=tuple(pair(p) for p in task.demos),
            tests=tuple(pair(p) for p in task.tests),
            kind=task.kind,
        )


def _colour_map(rng: random.Random) -> tuple[int, ...]:
    rest = list(range(1, 10))
    rng.shuffle(rest)
    return (0, *rest)


def transforms_for(
    task: FewShotTask,
    *,
    colour_variants: int = 1,
    seed: int = 0,
    symmetries: Literal["all", "identity"] = "all",
) -> list[Transform]:
    """The transforms inference uses on ``task``: for a grid task the 8 geometries
    (``symmetries="identity"``: the identity only, the ablation without augmented
    inference), each plain and with ``colour_variants - 1`` random colour maps (seeded
    by ``seed`` and the task id); for a text task the identity alone."""
    if task.kind != "grid":
        return [Transform(grids=False)]
    if colour_variants < 1:
        raise ValueError("colour_variants must be at least 1")
    if symmetries not in SYMMETRIES:
        raise ValueError(f"symmetries is one of {SYMMETRIES}, not {symmetries!r}")
    rng = random.Random(f"{seed}:{task.id}")
    out = []
    for geometry in range(len(GEOMETRIES) if symmetries == "all" else 1):
        out.append(Transform(geometry))
        out.extend(Transform(geometry, _colour_map(rng)) for _ in range(colour_variants - 1))
    return out


def random_transform(task: FewShotTask, rng: random.Random) -> Transform:
    """A transform drawn uniformly: any geometry, and half the time a colour map."""
    if task.kind != "grid":
        return Transform(grids=False)
    colours = _colour_map(rng) if rng.random() < 0.5 else ()
    return Transform(rng.randrange(len(GEOMETRIES)), colours)


def shuffle_demos(demos: Sequence[Pair], rng: random.Random) -> tuple[Pair, ...]:
    """The demonstrations in a random order."""
    out = list(demos)
    rng.shuffle(out)
    return tuple(out)


def augment_task(task: FewShotTask, rng: random.Random) -> tuple[FewShotTask, Transform]:
    """``task`` under a random transform, with its demonstrations shuffled."""
    t = random_transform(task, rng)
    moved = t.task(task)
    shuffled = FewShotTask(moved.id, shuffle_demos(moved.demos, rng), moved.tests, moved.kind)
    return shuffled, t
