"""Free-form requests: vote on answers when the samples have them, select by meaning when
they do not.

A served request is any chat, and a voting strategy (``majority``,
``adaptive_consistency``, ``esc``) votes on the answers its samples' texts give
(``ponder.serve.chat``): a reply with no number or boxed answer votes by its whole text,
so open-ended samples, which never repeat word for word, would all differ and the first
would win. After such a strategy has drawn its samples, the request's ``FreeformPolicy``
decides how the winner is chosen:

- ``mode="auto"`` (the default): by the samples. When at least ``min_share`` of them
  carry a checkable final answer (``ponder.grading.forms.answer_form``: a number, a
  boxed expression, a choice, code), the strategy's vote stands; otherwise the samples
  are selected by meaning;
- ``mode="answers"``: the strategy's vote always stands (ponder's behaviour before);
- ``mode="meaning"``: always by meaning.

By meaning is ``method="usc"`` (universal self-consistency's selection: one greedy call
of the served model shown the samples picks the most consistent; the default, needing
nothing more) or ``method="semantic"`` (semantic majority's clusters of the samples'
answers by ``cluster``: ``text``, ``embed`` with ``threshold`` (``pip install
'ponder[embed]'``) or ``judge``; the largest wins). It reuses the samples drawn; its
calls are the request's, on its ledger and budget. Other strategies select by their own
rule (a scorer, a search, their own clusters), which stands.

The reply's ``ponder.freeform`` says what was done and why: ``mode``, ``forms`` (how
many samples had each form, ``none`` for none), ``selected_by`` (``strategy``,
``answers``, ``usc`` or ``semantic:<cluster>``), ``why`` and, when selected by meaning,
``selection`` (USC's reply and choice, or the clusters). Per request
``"ponder": {"freeform": "meaning"}`` or ``{"freeform": {"mode": ..., "method": ...,
"cluster": ...}}``; per server ``ponder serve --freeform``, ``--freeform-method`` and
``--freeform-cluster``.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ponder.core.context import Context
from ponder.core.errors import BudgetExceeded, ConfigError
from ponder.core.reasoning import final_answer
from ponder.core.types import Problem, Result
from ponder.grading.forms import answer_form
from ponder.serve.tools import call_key
from ponder.strategies import Strategy
from ponder.strategies.clusters import cluster_vote, clusters_meta
from ponder.strategies.universal_self_consistency import select_consistent
from ponder.verifiers.equivalence import CLUSTER_METHODS, TextClusterer, make_clusterer

__all__ = [
    "FREEFORM_METHODS",
    "FREEFORM_MODES",
    "VOTING_STRATEGIES",
    "FreeformPolicy",
    "freeform_policy",
    "run_with_policy",
]

FREEFORM_MODES = ("auto", "answers", "meaning")
FREEFORM_METHODS = ("usc", "semantic")
VOTING_STRATEGIES = frozenset({"majority", "adaptive_consistency", "esc"})
"""The strategies whose winner is a plain vote on answers, which the policy may replace."""


@dataclass(frozen=True)
class FreeformPolicy:
    """How a served request's winner is chosen when its samples may be free-form; see
    the module docstring."""

    mode: str = "auto"
    method: str = "usc"
    cluster: str = "text"
    threshold: float = 0.8
    min_share: float = 0.5

    def __post_init__(self) -> None:
        if self.mode not in FREEFORM_MODES:
            raise ConfigError(
                f"freeform mode must be one of {', '.join(FREEFORM_MODES)}, got {self.mode!r}"
            )
        if self.method not in FREEFORM_METHODS:
            raise ConfigError(
                f"freeform method must be one of {', '.join(FREEFORM_METHODS)}, got {self.method!r}"
            )
        if self.cluster not in CLUSTER_METHODS:
            raise ConfigError(
                f"freeform cluster must be one of {', '.join(CLUSTER_METHODS)}, "
                f"got {self.cluster!r}"
            )
        for name in ("threshold", "min_share"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise ConfigError(f"freeform {name} must be a number in [0, 1], got {value!r}")

    @property
    def label(self) -> str:
        return "usc" if self.method == "usc" else f"semantic:{self.cluster}"


def freeform_policy(value: Any, default: FreeformPolicy) -> FreeformPolicy:
    """A request's ``ponder.freeform`` over the server's ``default``: a mode's name, or
    an object of the policy's fields; None keeps the default."""
    if value is None:
        return default
    if isinstance(value, str):
        return dataclasses.replace(default, mode=value)
    if isinstance(value, Mapping):
        fields = {f.name for f in dataclasses.fields(FreeformPolicy)}
        unknown = sorted(set(value) - fields)
        if unknown:
            raise ConfigError(
                f"ponder.freeform: unknown {', '.join(unknown)}; it has {', '.join(sorted(fields))}"
            )
        return dataclasses.replace(default, **value)
    raise ConfigError(
        f"ponder.freeform must be a mode ({', '.join(FREEFORM_MODES)}) or an object, got {value!r}"
    )


async def run_with_policy(
    name: str, strategy: Strategy, policy: FreeformPolicy, problem: Problem, ctx: Context
) -> Result:
    """``strategy`` on ``problem``, its winner then chosen as ``policy`` says;
    ``Result.meta["freeform"]`` holds what was done and why."""
    result = await strategy(problem, ctx)
    cands = result.candidates
    # a sample that calls tools carries a checkable answer too: its calls (serve.tools)
    forms = [
        "tool_call" if call_key(final_answer(c.text)) is not None else answer_form(c.text)
        for c in cands
    ]
    checkable = sum(f is not None for f in forms)
    info: dict[str, Any] = {
        "mode": policy.mode,
        "forms": dict(Counter(f or "none" for f in forms)),
    }
    if name not in VOTING_STRATEGIES:
        info.update(selected_by="strategy", why=f"{name} selects by its own rule")
    elif len(cands) < 2:
        info.update(selected_by="strategy", why="a single sample")
    elif policy.mode == "answers":
        info.update(selected_by="answers", why="the answers' vote was asked for")
    elif policy.mode == "auto" and checkable >= policy.min_share * len(cands):
        info.update(
            selected_by="answers",
            why=f"{checkable} of {len(cands)} samples carry a checkable final answer",
        )
    else:
        info.update(
            selected_by=policy.label,
            why="selection by meaning was asked for"
            if policy.mode == "meaning"
            else f"only {checkable} of {len(cands)} samples carry a checkable final answer "
            "(a number, a boxed expression, a choice or code)",
        )
        return await _by_meaning(policy, problem, ctx, result, info)
    return dataclasses.replace(result, meta={**result.meta, "freeform": info})


async def _by_meaning(
    policy: FreeformPolicy, problem: Problem, ctx: Context, result: Result, info: dict[str, Any]
) -> Result:
    t0 = time.perf_counter()
    cands = result.candidates
    if policy.method == "usc":
        answer, votes, meta = await select_consistent(problem, cands, ctx)
    else:
        answers = [c.answer for c in cands]
        meta = {}
        clusterer = make_clusterer(policy.cluster, threshold=policy.threshold)
        try:
            clustering = await clusterer.cluster(problem, answers, ctx)
        except BudgetExceeded as e:
            meta.update(stopped="budget", stop_reason=f"budget: {e}", fallback="text clusters")
            clustering = await TextClusterer().cluster(problem, answers, ctx)
        answer, votes, _ = cluster_vote(cands, clustering)
        meta.update(clustering.meta, clusters=clusters_meta(cands, clustering))
    info["selection"] = meta
    return dataclasses.replace(
        result,
        answer=answer,
        votes=votes,
        usage=ctx.ledger.total(),
        seconds=result.seconds + time.perf_counter() - t0,
        meta={**result.meta, "freeform": info},
    )
