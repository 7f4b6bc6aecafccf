"""Strategies: how test-time compute is spent on one problem.

One strategy per module, registered where it is defined (``@register("name")``); the
registry imports the package's modules itself when first asked (``base``). This module
only re-exports the public classes and functions.
"""

from ponder.core.context import Context
from ponder.strategies.adaptive_consistency import AdaptiveConsistency
from ponder.strategies.base import (
    Strategy,
    make_strategy,
    register,
    sample_count_field,
    strategy_class,
    strategy_names,
)
from ponder.strategies.beam_search import BeamSearch
from ponder.strategies.behaviour_majority import BehaviourMajority
from ponder.strategies.best_of_n import BestOfN
from ponder.strategies.budget_forcing import BudgetForcing
from ponder.strategies.deepconf import DeepConf
from ponder.strategies.dvts import DiverseVerifierTreeSearch
from ponder.strategies.esc import EarlyStoppingSelfConsistency
from ponder.strategies.hybrid import Hybrid
from ponder.strategies.lookahead import LookaheadSearch
from ponder.strategies.majority import Majority
from ponder.strategies.mcts import MonteCarloTreeSearch
from ponder.strategies.optimal import ComputeOptimal
from ponder.strategies.pal import ProgramAided
from ponder.strategies.probe_exit import ProbeExit
from ponder.strategies.revise import Revise
from ponder.strategies.semantic_majority import SemanticMajority
from ponder.strategies.single import Single
from ponder.strategies.universal_self_consistency import UniversalSelfConsistency
from ponder.strategies.voting import best_of, majority_vote, weighted_vote
from ponder.strategies.weighted_majority import WeightedMajority
from ponder.strategies.weighted_stop import WeightedStop

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
    "Hybrid",
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
    "WeightedStop",
    "best_of",
    "majority_vote",
    "make_strategy",
    "register",
    "sample_count_field",
    "strategy_class",
    "strategy_names",
    "weighted_vote",
]
