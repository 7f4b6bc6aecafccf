"""Training data at test time: leave-one-out tasks, augmented, as text with loss masks.

From a task's K demonstrations come K leave-one-out tasks: each holds one pair out as
the query and keeps the other K - 1 as its demonstrations (Akyurek et al. 2024). A
training example is one of them under a random transform with its demonstrations
shuffled (``ponder.ttt.augment``).

A sequence is plain text, the same for training and answering::

    input:
    012
    output:
    210

    input:
    ...
    output:
    <the query's output, followed by a blank line>

``render`` returns it as segments, each marked as a target or not: the outputs are
targets (every demonstration's output and the query's, so the loss covers every output
in the sequence, not only the last), the rest is context. Tokenizing the segments one
by one and concatenating keeps the mask exact and makes training and answering see
the same tokens.

Two ablations of that recipe (Akyurek et al.'s section 5 measures both): ``data="pairs"``
trains on each demonstration alone, with no demonstrations before it (the model learns
the mapping without the in-context format of leave-one-out tasks), and
``augment=False`` keeps every example in its original frame and order (no symmetry, no
colour map, no shuffle).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from ponder.tasks.arc import FewShotTask, Pair
from ponder.ttt.augment import Transform, augment_task

__all__ = [
    "END",
    "TRAIN_DATA",
    "Example",
    "Segment",
    "TrainData",
    "leave_one_out",
    "render",
    "training_examples",
    "training_items",
]

END = "\n\n"  # ends every output: generation stops at the first blank line
Segment = tuple[str, bool]
TrainData = Literal["loo", "pairs"]
TRAIN_DATA: tuple[TrainData, ...] = ("loo", "pairs")


def render(demos: Sequence[Pair], query: Pair, *, answer: bool) -> list[Segment]:
    """The sequence of ``demos`` then ``query``'s input; with ``answer``, the query's
    output too. Each segment is ``(text, is_target)``."""
    out: list[Segment] = []
    for pair in demos:
        if pair.output is None:
            raise ValueError("a demonstration needs an output")
        out.append((f"input:\n{pair.input}\noutput:\n", False))
        out.append((pair.output + END, True))
    out.append((f"input:\n{query.input}\noutput:\n", False))
    if answer:
        if query.output is None:
            raise ValueError("the query has no output to train on")
        out.append((query.output + END, True))
    return out


def leave_one_out(task: FewShotTask) -> list[tuple[tuple[Pair, ...], Pair]]:
    """The K leave-one-out tasks of a task with K >= 2 demonstrations: (the other
    demonstrations, the held-out one)."""
    demos = task.demos
    if len(demos) < 2:
        return []
    return [(demos[:i] + demos[i + 1 :], demos[i]) for i in range(len(demos))]


@dataclass(frozen=True)
class Example:
    """One training sequence and what it came from."""

    segments: tuple[Segment, ...]
    held_out: int  # which demonstration is the query
    transform: Transform


def training_items(
    task: FewShotTask, data: TrainData = "loo"
) -> list[tuple[tuple[Pair, ...], Pair]]:
    """What training draws from, as (context, query): the leave-one-out tasks
    (``"loo"``, K >= 2 demonstrations), or each demonstration alone with no context
    (``"pairs"``, K >= 1)."""
    if data == "loo":
        return leave_one_out(task)
    if data == "pairs":
        return [((), p) for p in task.demos]
    raise ValueError(f"training data is one of {TRAIN_DATA}, not {data!r}")


def training_examples(
    task: FewShotTask, *, seed: int = 0, data: TrainData = "loo", augment: bool = True
) -> Iterator[Example]:
    """An endless stream of training examples of ``task``: each draws one of its
    ``training_items`` and, with ``augment``, a random transform and demonstration
    order (without, the identity and the original order). Empty when the task has too
    few demonstrations (fewer than 2 for leave-one-out, none for pairs)."""
    items = training_items(task, data)
    if not items:
        return
    rng = random.Random(f"{seed}:{task.id}:train")
    identity = Transform(grids=task.kind == "grid")
    while True:
        index = rng.randrange(len(items))
        context, query = items[index]
        sub = FewShotTask(task.id, context, (query,), task.kind)
        if augment:
            moved, transform = augment_task(sub, rng)
        else:
            moved, transform = sub, identity
        yield Example(
            segments=tuple(render(moved.demos, moved.tests[0], answer=True)),
            held_out=index,
            transform=transform,
        )
