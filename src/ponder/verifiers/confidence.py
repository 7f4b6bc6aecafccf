"""Confidence scorers read from the sampled tokens' logprobs; they cost no extra compute.

- ``mean``: exp(mean token logprob), the geometric-mean token probability, in [0, 1].
- ``lowest_group``: DeepConf's lowest group confidence (Fu et al. 2025, "Deep Think
  with Confidence"): token confidence is minus the mean logprob of the top-k
  alternatives at that position (high when the distribution is peaked); group
  confidence is its mean over a sliding window of ``window`` tokens; the trace's score
  is the lowest group. Windows shorter than ``window`` (short traces) use the whole
  trace. Not bounded above; higher is more confident.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from ponder.core.errors import CapabilityMissing
from ponder.core.types import Completion, Problem, Score, TokenLogprob

if TYPE_CHECKING:
    from ponder.core.context import Context


def mean_logprob_confidence(tokens: Sequence[TokenLogprob]) -> float:
    if not tokens:
        return 0.0
    return math.exp(sum(t.logprob for t in tokens) / len(tokens))


def token_confidences(tokens: Sequence[TokenLogprob]) -> np.ndarray:
    """Per-token confidence: minus the mean logprob of the top alternatives
    (``TokenLogprob.confidence``, which engines' confidence stops read too)."""
    return np.array([t.confidence for t in tokens], dtype=np.float64)


def lowest_group_confidence(tokens: Sequence[TokenLogprob], window: int) -> float:
    conf = token_confidences(tokens)
    if conf.size == 0:
        return 0.0
    w = min(window, conf.size)
    sums = np.convolve(conf, np.ones(w), mode="valid")
    return float(sums.min() / w)


@dataclass(frozen=True)
class ConfidenceScorer:
    method: Literal["mean", "lowest_group"] = "mean"
    window: int = 64

    @property
    def name(self) -> str:
        return f"logprob:{self.method}"

    @property
    def needs_logprobs(self) -> bool:
        return True

    async def score(
        self, problem: Problem, completions: Sequence[Completion], ctx: Context
    ) -> list[Score]:
        scores = []
        for c in completions:
            if c.logprobs is None:
                raise CapabilityMissing(
                    f"scorer {self.name} needs logprobs, but a completion came without them"
                )
            if self.method == "mean":
                scores.append(Score(mean_logprob_confidence(c.logprobs)))
            else:
                scores.append(Score(lowest_group_confidence(c.logprobs, self.window)))
        return scores
