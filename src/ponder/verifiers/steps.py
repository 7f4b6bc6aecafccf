"""Solutions as steps, and step scores as one score.

A process verifier scores a solution step by step; search expands it step by step. Both
need the same cut of a text into steps, and a rule that turns per-step scores into one
number:

- segmentation ``blank`` (the default): a step ends at a blank line (``"\\n\\n"``), the
  usual unit in PRM800K-style data and in the search-and-learn recipes;
- segmentation ``numbered``: a step starts at ``Step k:`` (any case) at a line start;
- segmentation ``lines``: every non-empty line is a step.

Aggregations, named as in Snell et al. (2024) and the PRM literature: ``last`` (the
final step's score, their choice for PRM-guided search), ``min`` (the weakest step),
``prod`` (probability that every step is right), ``mean``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Literal, get_args

from ponder.core.errors import ConfigError

Segmentation = Literal["blank", "numbered", "lines"]
Aggregation = Literal["last", "min", "prod", "mean"]

SEGMENTATIONS: tuple[str, ...] = get_args(Segmentation)
AGGREGATIONS: tuple[str, ...] = get_args(Aggregation)

_NUMBERED = re.compile(r"(?im)^[ \t]*(?:\*\*)?step[ \t]*\d+[ \t]*[:.)]")

# what ends a step while it is being generated, per segmentation (search uses it as stop)
STEP_DELIMITERS: dict[str, tuple[str, ...]] = {
    "blank": ("\n\n",),
    "lines": ("\n",),
    "numbered": ("\nStep ", "\nstep ", "\n**Step "),
}


def check_segmentation(name: str) -> Segmentation:
    if name not in SEGMENTATIONS:
        raise ConfigError(f"unknown segmentation {name!r}; choose from {', '.join(SEGMENTATIONS)}")
    return name  # type: ignore[return-value]


def check_aggregation(name: str) -> Aggregation:
    if name not in AGGREGATIONS:
        raise ConfigError(f"unknown aggregation {name!r}; choose from {', '.join(AGGREGATIONS)}")
    return name  # type: ignore[return-value]


def split_steps(text: str, segmentation: Segmentation = "blank") -> list[str]:
    """The steps of ``text``, stripped, empty ones dropped; at least one step for
    non-blank text. Joining them with :func:`join_steps` gives back the text up to
    whitespace at step boundaries."""
    if segmentation == "blank":
        parts = re.split(r"\n[ \t]*\n", text)
    elif segmentation == "lines":
        parts = text.split("\n")
    elif segmentation == "numbered":
        starts = [m.start() for m in _NUMBERED.finditer(text)]
        if not starts or starts[0] != 0:
            starts = [0, *starts]
        parts = [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)], strict=True)]
    else:
        check_segmentation(segmentation)
        raise AssertionError("unreachable")
    return [p.strip() for p in parts if p.strip()]


def join_steps(steps: Sequence[str], segmentation: Segmentation = "blank") -> str:
    """The text of ``steps``: what a model that wrote them step by step has written."""
    sep = "\n" if segmentation in ("lines", "numbered") else "\n\n"
    return sep.join(steps)


def aggregate(scores: Sequence[float], how: Aggregation = "last") -> float:
    """One score from per-step scores in [0, 1]; an empty list scores 0."""
    if not scores:
        check_aggregation(how)  # a bad name is an error even with nothing to aggregate
        return 0.0
    if how == "last":
        return float(scores[-1])
    if how == "min":
        return float(min(scores))
    if how == "prod":
        return float(math.prod(scores))
    if how == "mean":
        return float(sum(scores) / len(scores))
    check_aggregation(how)
    raise AssertionError("unreachable")
