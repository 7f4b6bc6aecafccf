"""Strategies: how test-time compute is spent on one problem."""

from ponder.core.context import Context
from ponder.strategies import adaptive as _adaptive  # noqa: F401  (registers strategies)
from ponder.strategies import code as _code  # noqa: F401  (registers strategies)
from ponder.strategies import freeform as _freeform  # noqa: F401  (registers strategies)
from ponder.strategies import optimal as _optimal  # noqa: F401  (registers strategies)
from ponder.strategies import pal as _pal  # noqa: F401  (registers strategies)
from ponder.strategies import parallel as _parallel  # noqa: F401  (registers strategies)
from ponder.strategies import probe_exit as _probe_exit  # noqa: F401  (registers strategies)
from ponder.strategies import search as _search  # noqa: F401  (registers strategies)
from ponder.strategies import sequential as _sequential  # noqa: F401  (registers strategies)
from ponder.strategies.adaptive import AdaptiveConsistency, DeepConf, EarlyStoppingSelfConsistency
from ponder.strategies.base import (
    Strategy,
    make_strategy,
    register,
    sample_count_field,
    strategy_class,
    strategy_names,
)
from ponder.strategies.code import BehaviourMajority
from ponder.strategies.freeform import SemanticMajority, UniversalSelfConsistency
from ponder.strategies.optimal import ComputeOptimal
from ponder.strategies.pal import ProgramAided
from ponder.strategies.parallel import BestOfN, Majority, Single, WeightedMajority
from ponder.strategies.probe_exit import ProbeExit
from ponder.strategies.search import (
    BeamSearch,
    DiverseVerifierTreeSearch,
    LookaheadSearch,
    MonteCarloTreeSearch,
)
from ponder.strategies.sequential import BudgetForcing, Revise
from ponder.strategies.voting import best_of, majority_vote, weighted_vote

__all__ = [
    "AdaptiveConsistency",
    "BeamSearch",
    "BehaviourMajority",
    "BestOfN",
    "BudgetForcing",
    "ComputeOptimal",
    "Context",
    "DeepConf",
    "DiverseVerifierTreeSearch",
    "EarlyStoppingSelfConsistency",
    "LookaheadSearch",
    "Majority",
    "MonteCarloTreeSearch",
    "ProbeExit",
    "ProgramAided",
    "Revise",
    "SemanticMajority",
    "Single",
    "Strategy",
    "UniversalSelfConsistency",
    "WeightedMajority",
    "best_of",
    "majority_vote",
    "make_strategy",
    "register",
    "sample_count_field",
    "strategy_class",
    "strategy_names",
    "weighted_vote",
]
