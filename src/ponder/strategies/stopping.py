"""Stopping rules for adaptive sampling: when the vote so far is settled.

Adaptive-Consistency's rules (Aggarwal et al. 2023, "Let's Sample Step by Step:
Adaptive-Consistency for Efficient Reasoning and Coding with LLMs"), each a statistic
``p`` of the answer counts seen so far that the strategy compares with a threshold:

- ``"beta"``: P(p1 > p2) under Beta(v1 + 1, v2 + 1), see ``beta_stop_probability``;
- ``"dirichlet"``: P(the leader's probability is the largest) under Dirichlet(v + 1)
  over the answers seen, see ``dirichlet_stop_probability``;
- ``"majority"``: v1 / samples drawn, the leader's share (a baseline).

``rule_statistic`` computes any of them; ``RULE_TEXT`` names what each measures, for
a stop reason.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from ponder.strategies.voting import weighted_vote

RULES = ("beta", "dirichlet", "majority")

RULE_TEXT = {
    "beta": "P(majority stays)",
    "dirichlet": "P(leader is most likely)",
    "majority": "leader's share",
}


def beta_stop_probability(v1: int, v2: int) -> float:
    """P(p1 > p2) for the two most frequent answers seen ``v1`` and ``v2`` times.

    Adaptive-Consistency's Beta rule: with a uniform prior, p1 / (p1 + p2) follows
    Beta(v1 + 1, v2 + 1) given the counts, and the rule is P(p1 / (p1 + p2) > 1/2).
    For integer parameters that is exactly sum_{j=0}^{v1} C(N, j) / 2^N with
    N = v1 + v2 + 1 (the regularized incomplete Beta function at 1/2).
    """
    if v1 < 0 or v2 < 0:
        raise ValueError(f"counts must be >= 0, got {v1}, {v2}")
    n = v1 + v2 + 1
    return float(sum(math.comb(n, j) for j in range(v1 + 1)) / 2**n)


def dirichlet_stop_probability(counts: Sequence[int], points: int = 8192) -> float:
    """P(the first answer's probability is the largest) under Dirichlet(counts + 1).

    Adaptive-Consistency's Dirichlet rule, over the answers seen so far (``counts[0]``
    is the leader's count). With one or two answers it is the Beta rule (a
    two-category Dirichlet is a Beta; one answer is compared with an unseen one of
    count 0). With more it is computed by quadrature, not sampled: a Dirichlet is
    independent Gamma(a_i, 1) variables G_i normalized, so the probability is
    P(G_1 > G_i for all i > 1) = int_0^inf g_{a_1}(x) prod_{i>1} F_{a_i}(x) dx, with
    g and F the Gamma density and CDF (for integer a, F_a(x) = P(Poisson(x) >= a)).
    The integrand is positive and smooth; Simpson's rule on ``points`` intervals over
    [0, a_1 + 10 sqrt(a_1) + 40] is accurate to well below 1e-9.
    """
    if not counts:
        raise ValueError("dirichlet_stop_probability needs at least one count")
    if any(c < 0 for c in counts):
        raise ValueError(f"counts must be >= 0, got {list(counts)}")
    if len(counts) <= 2:
        return beta_stop_probability(counts[0], counts[1] if len(counts) == 2 else 0)
    alphas = [c + 1 for c in counts]
    a1 = alphas[0]
    upper = a1 + 10.0 * math.sqrt(a1) + 40.0
    x = np.linspace(0.0, upper, points + 1)
    with np.errstate(divide="ignore"):
        log_x = np.log(x)
    # Poisson(x) pmf for j = 0 .. max(a) - 1, in log space (x = 0 gives pmf 1 at j = 0)
    top = max(alphas[1:])
    j = np.arange(top, dtype=np.float64)[:, None]
    log_fact = np.cumsum(np.log(np.maximum(np.arange(top, dtype=np.float64), 1.0)))[:, None]
    with np.errstate(invalid="ignore"):
        log_pmf = np.where(j == 0, -x, j * log_x - x - log_fact)
    below = np.cumsum(np.exp(log_pmf), axis=0)  # below[a - 1] = P(Poisson(x) < a)
    integrand = np.exp((a1 - 1) * np.where(x > 0, log_x, 0.0) - x - math.lgamma(a1))
    if a1 > 1:
        integrand[0] = 0.0
    for a in alphas[1:]:
        integrand = integrand * np.clip(1.0 - below[a - 1], 0.0, 1.0)
    h = upper / points
    simpson = integrand[0] + integrand[-1] + 4 * integrand[1:-1:2].sum()
    simpson += 2 * integrand[2:-1:2].sum()
    return float(min(max(simpson * h / 3.0, 0.0), 1.0))


def rule_statistic(rule: str, votes: Mapping[str, float], samples: int) -> float:
    """The ``p`` of ``rule`` for these answer counts after ``samples`` samples; 0 when
    no answer was seen at all."""
    counts = sorted((int(v) for v in votes.values()), reverse=True)
    if not counts:
        return 0.0
    if rule == "beta":
        return beta_stop_probability(counts[0], counts[1] if len(counts) > 1 else 0)
    if rule == "dirichlet":
        return dirichlet_stop_probability(counts)
    return counts[0] / samples


StopBy = Literal["share", "margin"]
STOP_BY: tuple[StopBy, ...] = ("share", "margin")
GIVE_UP_AFTER = 4
"""The fewest samples before a weighted-vote stop may give up on a scattered vote."""


def check_vote_stop(by: str, tau: float, min_n: int, give_up: float, give_up_after: int) -> None:
    """``ValueError`` unless these settle a weighted vote by its leader's ``share`` of
    the weight (``tau`` in (0, 1]) or its ``margin`` over the runner-up (``tau`` > 0),
    from ``min_n`` samples on, giving up below a share ``give_up`` (under ``tau`` for a
    share rule, under 1 for a margin rule) from ``give_up_after`` samples on. The rule of
    ``weighted_stop`` and of its replay, ``ponder.analysis.stop_replay``."""
    if by not in STOP_BY:
        raise ValueError(f"by must be 'share' or 'margin', got {by!r}")
    if by == "share" and not 0 < tau <= 1:
        raise ValueError(f"a share tau must be in (0, 1], got {tau}")
    if by == "margin" and not tau > 0:
        raise ValueError(f"a margin must be > 0, got {tau}")
    if min_n < 1:
        raise ValueError(f"min_samples must be >= 1, got {min_n}")
    ceiling = tau if by == "share" else 1.0
    if not 0 <= give_up < ceiling:
        raise ValueError(f"give_up must be in [0, {ceiling:g}), got {give_up}")
    if give_up_after < 2:
        raise ValueError(f"give_up_after must be >= 2, got {give_up_after}")


def vote_stop(
    answers: Sequence[str | None],
    weights: Sequence[float],
    *,
    by: str,
    tau: float,
    min_n: int,
    give_up: float = 0.0,
    give_up_after: int = GIVE_UP_AFTER,
) -> tuple[dict[str, Any], str | None]:
    """The tallies, the leader's share and lead of the weighted vote of ``answers`` (each
    worth its weight, at least 0; samples without an answer cast nothing), and why the
    draw stops there (None: go on): ``weighted_stop``'s rule, which ``ponder optimize``
    replays in stored order (``ponder.analysis.calibration``). ``check_vote_stop`` checks
    the settings."""
    _, totals = weighted_vote(answers, [max(float(w), 0.0) for w in weights])
    ranked = [*sorted(totals.values(), reverse=True), 0.0, 0.0]
    cast = sum(totals.values())
    share = ranked[0] / cast if cast > 0 else 0.0
    lead = ranked[0] - ranked[1]
    k = len(answers)
    entry = {"samples": k, "weights": totals, "share": share, "lead": lead}
    settled = share if by == "share" else lead
    if k >= min_n and settled >= tau - 1e-12:
        return entry, f"{by} {settled:.4f} >= {tau:g}"
    if give_up and k >= give_up_after and share < give_up:
        return entry, f"gave up: share {share:.4f} < {give_up:g}"
    return entry, None
