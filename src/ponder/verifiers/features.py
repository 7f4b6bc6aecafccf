"""Token-confidence features of one sample, from its tokens' logprobs.

Every feature reads the sample's ``TokenLogprob``s (each the chosen token's logprob and
the top-k alternatives' logprobs at that position); none generates anything. With
``c_t`` the token confidence of token ``t`` (DeepConf, Fu et al. 2025: minus the mean
logprob of the top-k alternatives, ``TokenLogprob.confidence``) and ``n`` tokens:

- ``tokens``: ``n``.
- ``mean_logprob``: the mean of the chosen tokens' logprobs (the log of
  ``verifiers.confidence.mean_logprob_confidence``).
- ``lowest_group``: DeepConf's lowest group confidence: the group confidences are the
  means of ``c_t`` over every window of ``w = min(window, n)`` consecutive tokens
  (``n - w + 1`` of them), and this is the lowest (as ``verifiers.confidence``).
- ``bottom10_group``: DeepConf's bottom-10% group confidence: the mean of the lowest
  ``max(1, floor(0.1 * G))`` of those ``G`` group confidences. A trace no longer than
  the window has one group, so it equals ``lowest_group`` there.
- ``tail``: DeepConf's tail confidence: the mean of ``c_t`` over the last
  ``min(tail, n)`` tokens.
- ``self_certainty``: Kang et al. 2025 ("Scalable Best-of-N Selection via
  Self-Certainty"), the mean over tokens of KL(U || p) between the uniform distribution
  and the model's, computed on the top-k alternatives we have: at a token whose top-k
  logprobs are ``l_1..l_k``, renormalised to ``q_j = exp(l_j) / sum_i exp(l_i)``, it is
  ``-(1/k) sum_j log(k q_j) = logsumexp(l) - mean(l) - log k``. It is 0 for a flat
  top-k and grows as the top-k peaks; with ``k`` the whole vocabulary it is the paper's
  measure. A token without alternatives counts as 0 (its top-1 distribution is flat).
- ``min_logprob``: the lowest chosen-token logprob (the single least likely step).
- ``lowest_group_W``, ``bottom10_group_W``, ``tail_W`` for each ``W`` of
  ``SHORT_WINDOWS``: the three DeepConf measures with a window and tail of ``W`` tokens.
  DeepConf's 2048 is sized for traces of thousands of tokens; a trace of a few hundred is
  one group at that window, where all three are its mean confidence.

A sample with no tokens has ``tokens`` 0 and every other feature NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from ponder.core.types import TokenLogprob

__all__ = [
    "BOTTOM_FRACTION",
    "DEFAULT_TOP_K",
    "FEATURE_NAMES",
    "SHORT_WINDOWS",
    "TAIL",
    "WINDOW",
    "group_confidences",
    "sample_features",
    "self_certainty",
]

WINDOW = 2048
"""DeepConf's group window, in tokens."""

DEFAULT_TOP_K = 20
"""The alternatives per token features are computed from, wherever ponder computes them
(``ponder bank features`` by prefill, ``ponder eval --features`` while sampling), so
that features from either source are the same numbers."""

TAIL = 2048
"""DeepConf's tail, in tokens."""

BOTTOM_FRACTION = 0.1
"""The share of lowest group confidences ``bottom10_group`` averages."""

SHORT_WINDOWS = (32, 128)
"""The shorter windows (and tails) the ``_W`` features use, in tokens."""

FEATURE_NAMES = (
    "tokens",
    "mean_logprob",
    "lowest_group",
    "bottom10_group",
    "tail",
    "self_certainty",
    "min_logprob",
    *(f"{m}_{w}" for w in SHORT_WINDOWS for m in ("lowest_group", "bottom10_group", "tail")),
)


def group_confidences(confidences: npt.ArrayLike, window: int = WINDOW) -> npt.NDArray[np.float64]:
    """The mean of ``confidences`` over every window of ``min(window, n)`` consecutive
    values, in order (empty for no values)."""
    conf = np.asarray(confidences, dtype=np.float64)
    if conf.size == 0:
        return conf
    w = min(window, conf.size)
    sums = np.convolve(conf, np.ones(w), mode="valid")
    return np.asarray(sums / w, dtype=np.float64)


def _token_self_certainty(token: TokenLogprob) -> float:
    if not token.top:
        return 0.0
    lps = np.array([lp for _, lp in token.top], dtype=np.float64)
    top = float(lps.max())
    log_sum = top + math.log(float(np.exp(lps - top).sum()))
    return log_sum - float(lps.mean()) - math.log(lps.size)


def self_certainty(tokens: Sequence[TokenLogprob]) -> float:
    """The mean per-token KL(U || top-k distribution); see the module docstring."""
    if not tokens:
        return math.nan
    return sum(_token_self_certainty(t) for t in tokens) / len(tokens)


def sample_features(
    tokens: Sequence[TokenLogprob], *, window: int = WINDOW, tail: int = TAIL
) -> dict[str, float]:
    """Every feature of ``FEATURE_NAMES`` for one sample's tokens, by name."""
    n = len(tokens)
    if n == 0:
        return {name: (0.0 if name == "tokens" else math.nan) for name in FEATURE_NAMES}
    conf = np.array([t.confidence for t in tokens], dtype=np.float64)
    out = {
        "tokens": float(n),
        "mean_logprob": sum(t.logprob for t in tokens) / n,
        **_deepconf(conf, window, tail, ""),
        "self_certainty": self_certainty(tokens),
        "min_logprob": min(t.logprob for t in tokens),
    }
    for w in SHORT_WINDOWS:
        out.update(_deepconf(conf, w, w, f"_{w}"))
    return {name: out[name] for name in FEATURE_NAMES}


def _deepconf(
    conf: npt.NDArray[np.float64], window: int, tail: int, suffix: str
) -> dict[str, float]:
    """The lowest and bottom-10% group confidences and the tail confidence, named with
    ``suffix``."""
    groups = group_confidences(conf, window)
    bottom = max(1, math.floor(BOTTOM_FRACTION * groups.size))
    return {
        f"lowest_group{suffix}": float(groups.min()),
        f"bottom10_group{suffix}": float(np.sort(groups)[:bottom].mean()),
        f"tail{suffix}": float(conf[-min(tail, conf.size) :].mean()),
    }
