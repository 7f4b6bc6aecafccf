"""Strategies: how test-time compute is spent on one problem."""

from ponder.strategies import parallel as _parallel  # noqa: F401  (registers strategies)
from ponder.strategies.base import (
    Context,
    Strategy,
    make_strategy,
    register,
    strategy_class,
    strategy_names,
)
from ponder.strategies.parallel import BestOfN, Majority, Single, WeightedMajority
from ponder.strategies.voting import best_of, majority_vote, weighted_vote

__all__ = [
    "BestOfN",
    "Context",
    "Majority",
    "Single",
    "Strategy",
    "WeightedMajority",
    "best_of",
    "majority_vote",
    "make_strategy",
    "register",
    "strategy_class",
    "strategy_names",
    "weighted_vote",
]
