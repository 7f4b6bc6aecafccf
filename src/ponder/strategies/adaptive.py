"""Adaptive stopping: sample until the vote is settled instead of a fixed n.

- ``adaptive_consistency`` (Aggarwal et al. 2023, "Let's Sample Step by Step:
  Adaptive-Consistency for Efficient Reasoning and Coding with LLMs"): samples in
  batches and stops once a stopping rule on the answer counts says the plurality is
  settled.
- ``esc`` (Li et al. 2024, "Escape Sky-high Cost: Early-stopping Self-Consistency for
  Multi-step Reasoning"): samples in windows and stops at the first window whose
  answers all agree.
- ``deepconf`` (Fu et al. 2025, "Deep Think with Confidence"): votes with the traces'
  confidences, keeping only the most confident; online, it also cuts traces whose
  confidence drops while they are generated, and stops at consensus.

``adaptive_consistency`` and ``esc`` draw plain samples of the task's prompt (no stop
strings, no logprobs), so a replay engine can serve them from a recorded bank and a
stopping rule can be swept without new generation. Every strategy here reports in
``Result.meta``: ``samples`` (traces drawn), ``stop_reason`` and ``history`` (one
entry per batch); the cost is the ledger's, as always. A batch that would not fit a
token budget ends sampling: the vote so far is the answer, and ``meta`` has
``stopped="budget"`` and the budget's ``stop_reason``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ponder.core.context import Context
from ponder.core.errors import BudgetExceeded, CapabilityMissing, ConfigError
from ponder.core.types import Candidate, Completion, ConfidenceStop, Problem, Result
from ponder.strategies.base import (
    check_sampling,
    make_candidates,
    make_result,
    register,
    sample,
    stopped_by_budget,
)
from ponder.strategies.voting import majority_vote, weighted_vote
from ponder.verifiers.confidence import lowest_group_confidence

RULES = ("beta", "dirichlet", "majority")


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


def _sorted_counts(votes: Mapping[str, float]) -> list[int]:
    return sorted((int(v) for v in votes.values()), reverse=True)


@register("adaptive_consistency")
@dataclass(frozen=True)
class AdaptiveConsistency:
    """Sample in batches until a stopping rule says the majority is settled.

    After each batch of ``batch`` samples (the last one smaller, so that at most
    ``max_n`` are drawn), with v1 >= v2 >= ... the counts of the answers seen so far
    (samples without an answer count as samples, not votes), the rule gives a
    statistic ``p``; once at least ``min_n`` samples are drawn, sampling stops when
    ``p >= threshold``:

    - ``"beta"``: P(p1 > p2) under Beta(v1 + 1, v2 + 1), see ``beta_stop_probability``;
    - ``"dirichlet"``: P(the leader's probability is the largest) under
      Dirichlet(v + 1) over the answers seen, see ``dirichlet_stop_probability``;
    - ``"majority"``: v1 / samples drawn, the leader's share (a baseline).

    No answer at all gives p = 0. The answer is the plurality of all samples drawn
    (ties as in ``ponder.strategies.voting``). ``meta["history"]`` has, per batch, the
    samples drawn so far, the counts and p.
    """

    max_n: int = 16
    batch: int = 2
    min_n: int = 2
    rule: str = "beta"
    threshold: float = 0.95
    temperature: float = 0.7
    top_p: float = 0.95

    def __post_init__(self) -> None:
        if self.max_n < 1 or self.batch < 1:
            raise ConfigError(
                f"adaptive_consistency: max_n and batch must be >= 1, got {self.max_n}, "
                f"{self.batch}"
            )
        if not 1 <= self.min_n <= self.max_n:
            raise ConfigError(
                f"adaptive_consistency: need 1 <= min_n <= max_n, got min_n={self.min_n}, "
                f"max_n={self.max_n}"
            )
        if self.rule not in RULES:
            raise ConfigError(
                f"adaptive_consistency: rule must be one of {', '.join(RULES)}, got {self.rule!r}"
            )
        if not 0 < self.threshold < 1:
            raise ConfigError(
                f"adaptive_consistency: threshold must be in (0, 1), got {self.threshold}"
            )
        check_sampling(self.temperature, self.top_p)

    def statistic(self, votes: Mapping[str, float], samples: int) -> float:
        """The rule's ``p`` for these answer counts after ``samples`` samples."""
        counts = _sorted_counts(votes)
        if not counts:
            return 0.0
        if self.rule == "beta":
            return beta_stop_probability(counts[0], counts[1] if len(counts) > 1 else 0)
        if self.rule == "dirichlet":
            return dirichlet_stop_probability(counts)
        return counts[0] / samples

    async def __call__(self, problem: Problem, ctx: Context) -> Result:
        t0 = time.perf_counter()
        cands: list[Candidate] = []
        history: list[dict[str, Any]] = []
        stop_reason = "cap reached"
        stopped: dict[str, str] = {}
        while len(cands) < self.max_n:
            n = min(self.batch, self.max_n - len(cands))
            try:
                comps = await sample(
                    problem, ctx, n, self.temperature, self.top_p, label="adaptive_consistency"
                )
            except BudgetExceeded as e:
                if not cands:
                    raise
                stopped = stopped_by_budget(e)
                break
            cands.extend(make_candidates(ctx, comps))
            _, votes = majority_vote([c.answer for c in cands])
            p = self.statistic(votes, len(cands))
            history.append({"samples": len(cands), "counts": dict(votes), "p": p})
            if len(cands) >= self.min_n and p >= self.threshold:
                stop_reason = f"{self.rule}: {_RULE_TEXT[self.rule]} {p:.4f} >= {self.threshold}"
                break
        answer, votes = majority_vote([c.answer for c in cands])
        meta = {
            "samples": len(cands),
            "stop_reason": stop_reason,
            "rule": self.rule,
            "threshold": self.threshold,
            "history": history,
            **stopped,
        }
        return make_result("adaptive_consistency", ctx, t0, answer, cands, votes, meta)


_RULE_TEXT = {
    "beta": "P(majority stays)",
    "dirichlet": "P(leader is most likely)",
    "majority": "leader's share",
}


@register("esc")
@dataclass(frozen=True)
class EarlyStoppingSelfConsistency:
    """Sample in windows of ``window``; stop at the first window whose answers agree.

    Early-stopping self-consistency: a window whose answers are all the same answer
    (none missing), i.e. whose answer distribution has zero entropy, ends sampling;
    otherwise it goes on to ``max_n`` samples (the last window smaller when
    ``max_n`` is not a multiple of ``window``). The answer is the plurality of all
    samples drawn. ``meta["history"]`` has, per window, its answers and whether they
    agreed.
    """

    max_n: int = 16
    window: int = 4
    temperature: float = 0.7
    top_p: float = 0.95

    def __post_init__(self) -> None:
        if not 1 <= self.window <= self.max_n:
            raise ConfigError(
                f"esc: need 1 <= window <= max_n, got window={self.window}, max_n={self.max_n}"
            )
        check_sampling(self.temperature, self.top_p)

    async def __call__(self, problem: Problem, ctx: Context) -> Result:
        t0 = time.perf_counter()
        cands: list[Candidate] = []
        history: list[dict[str, Any]] = []
        stop_reason = "cap reached"
        stopped: dict[str, str] = {}
        while len(cands) < self.max_n:
            n = min(self.window, self.max_n - len(cands))
            try:
                comps = await sample(problem, ctx, n, self.temperature, self.top_p, label="esc")
            except BudgetExceeded as e:
                if not cands:
                    raise
                stopped = stopped_by_budget(e)
                break
            drawn = make_candidates(ctx, comps)
            cands.extend(drawn)
            answers = [c.answer for c in drawn]
            agreed = n == self.window and answers[0] is not None and len(set(answers)) == 1
            history.append({"samples": len(cands), "answers": answers, "agreed": agreed})
            if agreed:
                stop_reason = f"window agreed on {answers[0]!r}"
                break
        answer, votes = majority_vote([c.answer for c in cands])
        meta = {
            "samples": len(cands),
            "stop_reason": stop_reason,
            "window": self.window,
            "history": history,
            **stopped,
        }
        return make_result("esc", ctx, t0, answer, cands, votes, meta)


def trace_confidence(completion: Completion, window: int) -> float:
    """A trace's DeepConf confidence: its lowest group confidence."""
    if completion.logprobs is None:
        raise CapabilityMissing("deepconf needs logprobs, but a completion came without them")
    return lowest_group_confidence(completion.logprobs, window)


def _consensus(answers: Sequence[str | None], weights: Sequence[float]) -> float | None:
    """The leading answer's share of the vote weight; None while nothing has voted."""
    _, tallies = weighted_vote(answers, weights)
    total = sum(tallies.values())
    return max(tallies.values()) / total if tallies and total > 0 else None


@register("deepconf")
@dataclass(frozen=True)
class DeepConf:
    """Confidence-filtered, confidence-weighted voting; online, with early stops.

    A trace's confidence is its lowest group confidence: token confidence is minus
    the mean logprob of the ``top_logprobs`` most likely tokens at a position, a group
    is a sliding window of ``window`` tokens (the whole trace when shorter), and the
    trace scores its least confident group (``ponder.verifiers.confidence``).

    Offline (``online=False``): ``max_n`` traces; the ``ceil(keep * max_n)`` most
    confident (ties to the earlier) vote, each with its confidence as weight.
    ``keep=0.1`` is the paper's DeepConf-low, ``keep=0.9`` DeepConf-high.

    Online: ``warmup`` traces first; the threshold ``s`` is the
    ``100 * (1 - keep)``-th percentile of their confidences (numpy's linear
    interpolation), and warm-up traces with confidence >= s vote. Then batches of
    ``batch`` traces (at most ``max_n`` in all) are generated with a confidence stop
    at ``s``: a trace whose group confidence over a full window drops below s is cut
    there (``finish_reason="confidence"``) and does not vote, nor does a finished
    trace whose confidence is below s (one shorter than a window). After each batch,
    sampling stops when the leading answer holds at least ``consensus`` of the vote
    weight. The online mode needs an engine with ``capabilities.confidence_stop``.
    ``threshold`` > 0 fixes s instead (one calibrated beforehand, as the paper's code
    allows): no warm-up is drawn and every trace is generated with the stop.
    """

    max_n: int = 16
    keep: float = 0.9
    window: int = 64
    top_logprobs: int = 20
    online: bool = False
    warmup: int = 4
    batch: int = 2
    consensus: float = 0.95
    threshold: float = 0.0
    temperature: float = 0.7
    top_p: float = 0.95

    def __post_init__(self) -> None:
        if not (math.isfinite(self.threshold) and self.threshold >= 0):
            raise ConfigError(f"deepconf: threshold must be >= 0, got {self.threshold}")
        if self.threshold and not self.online:
            raise ConfigError("deepconf: a fixed threshold is for the online mode (online=True)")
        if self.max_n < 1 or self.window < 1 or self.top_logprobs < 1 or self.batch < 1:
            raise ConfigError(
                "deepconf: max_n, window, top_logprobs and batch must be >= 1, got "
                f"{self.max_n}, {self.window}, {self.top_logprobs}, {self.batch}"
            )
        if not 0 < self.keep <= 1:
            raise ConfigError(f"deepconf: keep must be in (0, 1], got {self.keep}")
        if not 1 <= self.warmup <= self.max_n:
            raise ConfigError(
                f"deepconf: need 1 <= warmup <= max_n, got warmup={self.warmup}, max_n={self.max_n}"
            )
        if not 0 < self.consensus <= 1:
            raise ConfigError(f"deepconf: consensus must be in (0, 1], got {self.consensus}")
        check_sampling(self.temperature, self.top_p)

    async def _draw(
        self, problem: Problem, ctx: Context, n: int, stop: ConfidenceStop | None
    ) -> list[Completion]:
        request = ctx.request(
            problem,
            n=n,
            temperature=self.temperature,
            top_p=self.top_p,
            logprobs=True,
            top_logprobs=self.top_logprobs,
            confidence_stop=stop,
        )
        label = "deepconf:warmup" if self.online and stop is None else "deepconf"
        (completions,) = await ctx.generate([request], label=label)
        return completions

    async def __call__(self, problem: Problem, ctx: Context) -> Result:
        if self.online:
            return await self._online(problem, ctx)
        return await self._offline(problem, ctx)

    async def _offline(self, problem: Problem, ctx: Context) -> Result:
        t0 = time.perf_counter()
        comps = await self._draw(problem, ctx, self.max_n, None)
        confs = [trace_confidence(c, self.window) for c in comps]
        cands = make_candidates(ctx, comps, confs)
        n_keep = max(1, math.ceil(self.keep * len(comps) - 1e-9))
        kept = sorted(sorted(range(len(comps)), key=lambda i: (-confs[i], i))[:n_keep])
        answer, votes = weighted_vote([cands[i].answer for i in kept], [confs[i] for i in kept])
        meta = {
            "samples": len(comps),
            "stop_reason": f"offline: the {n_keep} most confident of {len(comps)} voted",
            "threshold": min(confs[i] for i in kept),
            "voted": kept,
            "history": [{"samples": len(comps), "voters": n_keep}],
        }
        return make_result("deepconf", ctx, t0, answer, cands, votes, meta)

    async def _online(self, problem: Problem, ctx: Context) -> Result:
        t0 = time.perf_counter()
        cands: list[Candidate] = []
        confs: list[float] = []
        history: list[dict[str, Any]] = []
        threshold = self.threshold
        if not threshold:
            warm = await self._draw(problem, ctx, self.warmup, None)
            confs = [trace_confidence(c, self.window) for c in warm]
            threshold = float(np.percentile(confs, 100.0 * (1.0 - self.keep)))
            cands = list(make_candidates(ctx, warm, confs))
        voted = [i for i, conf in enumerate(confs) if conf >= threshold]
        if cands:
            history.append(
                {"samples": len(cands), "stopped": 0, "voters": len(voted), "consensus": None}
            )
        stopped = filtered = 0
        stop_reason = "cap reached"
        budget_stop: dict[str, str] = {}
        rule = ConfidenceStop(self.window, threshold)
        while len(cands) < self.max_n:
            n = min(self.batch, self.max_n - len(cands))
            try:
                batch = await self._draw(problem, ctx, n, rule)
            except BudgetExceeded as e:
                if not cands:
                    raise
                budget_stop = stopped_by_budget(e)
                break
            batch_confs = [trace_confidence(c, self.window) for c in batch]
            cut = 0
            drawn = make_candidates(ctx, batch, batch_confs)
            for cand, conf in zip(drawn, batch_confs, strict=True):
                if cand.finish_reason == "confidence":
                    cut += 1
                elif conf >= threshold:
                    voted.append(len(cands))
                else:
                    filtered += 1
                cands.append(cand)
                confs.append(conf)
            stopped += cut
            share = _consensus([cands[i].answer for i in voted], [confs[i] for i in voted])
            history.append(
                {"samples": len(cands), "stopped": cut, "voters": len(voted), "consensus": share}
            )
            if share is not None and share >= self.consensus:
                stop_reason = f"consensus {share:.4f} >= {self.consensus}"
                break
        answer, votes = weighted_vote([cands[i].answer for i in voted], [confs[i] for i in voted])
        meta = {
            "samples": len(cands),
            "stop_reason": stop_reason,
            "threshold": threshold,
            "warmup_confidences": [] if self.threshold else confs[: self.warmup],
            "stopped_early": stopped,
            "stopped_tokens": sum(
                c.usage.completion_tokens for c in cands if c.finish_reason == "confidence"
            ),
            "filtered": filtered,
            "voted": voted,
            "completion_tokens": ctx.ledger.total().completion_tokens,
            "history": history,
            **budget_stop,
        }
        return make_result("deepconf", ctx, t0, answer, cands, votes, meta)
