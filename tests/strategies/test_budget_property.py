"""A token budget is a hard limit for every strategy: a property over random budgets.

Each strategy runs twice on a fresh scripted engine with the same script: once with no
budget, once inside ``ledger.budget(total_tokens=B)``. Whatever B, the budgeted run's
ledger stays within B. A run that raises ``BudgetExceeded`` spent nothing (its first
call was refused); a run that returns either says it stopped for the budget
(``meta["stopped"]`` and the ``stop_reason``) or did exactly what the free run did.
"""

from __future__ import annotations

import zlib
from typing import Any

import pytest
from _boxed import PROBLEM, BoxedTask
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ponder.core.budget import Ledger
from ponder.core.errors import BudgetExceeded
from ponder.core.types import GenRequest, Result, Usage
from ponder.engines.scripted import ScriptedEngine
from ponder.strategies import Context, make_strategy

SPECS: list[tuple[str, dict[str, Any]]] = [
    ("single", {}),
    ("majority", {"n": 4}),
    ("best_of_n", {"n": 4, "scorer": "judge"}),
    ("weighted_majority", {"n": 3, "scorer": "logprob"}),
    ("adaptive_consistency", {"max_n": 8, "batch": 2, "threshold": 0.99}),
    ("esc", {"max_n": 8, "window": 2}),
    ("deepconf", {"max_n": 4, "window": 4, "top_logprobs": 3}),
    ("deepconf", {"max_n": 8, "window": 4, "top_logprobs": 3, "online": True, "warmup": 2}),
    ("revise", {"n": 3}),
    ("revise", {"n": 4, "chains": 2, "select": "verifier", "scorer": "judge"}),
    ("budget_forcing", {"max_thinking_tokens": 12, "num_waits": 1}),
    ("beam_search", {"n": 4, "width": 2, "max_steps": 4, "step_tokens": 8}),
    ("lookahead", {"n": 4, "width": 2, "max_steps": 4, "step_tokens": 8, "lookahead": 1}),
    ("dvts", {"n": 4, "width": 2, "max_steps": 4, "step_tokens": 8}),
    ("mcts", {"iterations": 4, "width": 2, "max_steps": 4, "step_tokens": 8}),
    ("probe_exit", {"chunk": 4, "agree": 2}),
    ("semantic_majority", {"n": 4, "cluster": "judge"}),
    ("universal_self_consistency", {"n": 4}),
]


def respond(request: GenRequest, index: int) -> str:
    """A varied but reproducible script: judges say Yes or No, search steps sometimes
    go on, thinking ends, and solutions box one of three answers."""
    key = f"{request.seed}|{index}|{request.continuation[-30:]}|{request.max_tokens}"
    h = zlib.crc32(key.encode())
    if request.max_tokens == 1:
        return ("Yes", "No")[h % 2]
    words = " ".join(f"w{(h >> k) % 5}" for k in range(h % 7))
    boxed = f"\\boxed{{{(41, 42, 43)[h % 3]}}}"
    if request.stop == ("\n\n",):
        return f"{words}\n\nmore" if h % 3 else f"{words} so {boxed}"
    if request.stop == ("</think>",):
        return f"{words} </think>"
    return f"{words} so {boxed}"


async def solve(
    name: str, options: dict[str, Any], max_tokens: int, budget: int | None
) -> tuple[Result | BudgetExceeded, Ledger]:
    ctx = Context(
        engine=ScriptedEngine(respond), task=BoxedTask(), ledger=Ledger(),
        max_tokens=max_tokens, seed=7,
    )  # fmt: skip
    strategy = make_strategy(name, options)
    with ctx.ledger.budget(total_tokens=budget):
        try:
            return await strategy(PROBLEM, ctx), ctx.ledger
        except BudgetExceeded as e:
            return e, ctx.ledger


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    spec=st.sampled_from(SPECS),
    budget=st.integers(min_value=1, max_value=700),
    max_tokens=st.integers(min_value=4, max_value=24),
)
async def test_no_strategy_spends_past_its_budget(
    spec: tuple[str, dict[str, Any]], budget: int, max_tokens: int
) -> None:
    name, options = spec
    free, _ = await solve(name, options, max_tokens, None)
    assert isinstance(free, Result)
    limited, ledger = await solve(name, options, max_tokens, budget)
    spent = ledger.total()
    assert spent.total_tokens <= budget, (name, budget, spent)
    if isinstance(limited, BudgetExceeded):
        # raised only when nothing could be done, so nothing was spent
        event("nothing fit")
        assert spent == Usage()
        return
    assert limited.usage == spent
    if limited.meta.get("stopped") is None:
        # the budget never refused a call: the run is the free run
        event("the free run fit")
        assert (limited.answer, limited.usage) == (free.answer, free.usage)
        return
    event("stopped early")
    assert limited.meta["stopped"] == "budget"
    assert limited.meta["stop_reason"].startswith("budget: token budget: ")


@pytest.mark.parametrize(
    ("name", "options"), SPECS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(SPECS)]
)
async def test_a_budget_one_token_short_stops_every_strategy_and_says_so(
    name: str, options: dict[str, Any]
) -> None:
    free, free_ledger = await solve(name, options, 16, None)
    assert isinstance(free, Result)
    budget = free_ledger.total().total_tokens - 1
    limited, ledger = await solve(name, options, 16, budget)
    assert ledger.total().total_tokens <= budget
    if isinstance(limited, BudgetExceeded):
        assert ledger.total() == Usage() and len(free_ledger.events) == 1
    else:
        assert limited.meta["stopped"] == "budget", limited.meta
        assert limited.meta["stop_reason"].startswith("budget: token budget: ")
