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
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ponder.tasks.arc import FewShotTask, Pair
from ponder.ttt.augment import Transform, augment_task

__all__ = [
    "END",
    "Example",
    "Segment",
    "leave_one_out",
    "render",
    "training_examples",
]

END = "\n\n"  # ends every output: generation stops at the first blank line
Segment = tuple[str, bool]


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


def training_examples(task: FewShotTask, *, seed: int = 0) -> Iterator[Example]:
    """An endless stream of augmented leave-one-out examples of ``task``: each draws a
    held-out demonstration, a transform and a demonstration order. Empty when the
    task has fewer than 2 demonstrations."""
    loo = leave_one_out(task)
    if not loo:
        return
    rng = random.Random(f"{seed}:{task.id}:train")
    while True:
        index = rng.randrange(len(loo))
        context, query = loo[index]
        sub = FewShotTask(task.id, context, (query,), task.kind)
        moved, transform = augment_task(sub, rng)
        yield Example(
            segments=tuple(render(moved.demos, moved.tests[0], answer=True)),
            held_out=index,
            transform=transform,
        )
