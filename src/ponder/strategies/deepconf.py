"""``deepconf`` (Fu et al. 2025, "Deep Think with Confidence"): votes with the traces'
confidences, keeping only the most confident; online, it also cuts traces whose
confidence drops while they are generated, and stops at consensus.

``Result.meta`` has ``samples`` (traces drawn), ``stop_reason`` and ``history`` (one
entry per batch); the cost is the ledger's, as always. Online, a batch that would not
fit a token budget ends sampling: the vote so far is the answer, and ``meta`` has
``stopped="budget"`` and the budget's ``stop_reason``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ponder.core.context import Context
from ponder.core.errors import BudgetExceeded, CapabilityMissing, ConfigError
from ponder.core.types import Candidate, Completion, ConfidenceStop, Problem, Result
from ponder.strategies.base import make_candidates, make_result, register, stopped_by_budget
from ponder.strategies.sampling import check_sampling
from ponder.strategies.voting import weighted_vote
from ponder.verifiers.confidence import lowest_group_confidence


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

    async def _warm_up(
        self, problem: Problem, ctx: Context
    ) -> tuple[list[Candidate], list[float], float]:
        """The warm-up traces, their confidences and the threshold they set; none and
        the fixed threshold when one is given."""
        if self.threshold:
            return [], [], self.threshold
        warm = await self._draw(problem, ctx, self.warmup, None)
        confs = [trace_confidence(c, self.window) for c in warm]
        threshold = float(np.percentile(confs, 100.0 * (1.0 - self.keep)))
        return list(make_candidates(ctx, warm, confs)), confs, threshold

    async def _online(self, problem: Problem, ctx: Context) -> Result:
        t0 = time.perf_counter()
        cands, confs, threshold = await self._warm_up(problem, ctx)
        history: list[dict[str, Any]] = []
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
            cut, below = _admit(ctx, batch, self.window, threshold, cands, confs, voted)
            stopped += cut
            filtered += below
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


def _admit(
    ctx: Context,
    batch: Sequence[Completion],
    window: int,
    threshold: float,
    cands: list[Candidate],
    confs: list[float],
    voted: list[int],
) -> tuple[int, int]:
    """Add an online batch to ``cands`` and ``confs``, and to ``voted`` the indices of
    its traces that vote: those neither cut by the confidence stop nor below the
    threshold. How many were cut and how many filtered out."""
    batch_confs = [trace_confidence(c, window) for c in batch]
    cut = filtered = 0
    for cand, conf in zip(make_candidates(ctx, batch, batch_confs), batch_confs, strict=True):
        if cand.finish_reason == "confidence":
            cut += 1
        elif conf >= threshold:
            voted.append(len(cands))
        else:
            filtered += 1
        cands.append(cand)
        confs.append(conf)
    return cut, filtered
