"""ponder: test-time scaling of language models.

Heavy engines import lazily: ``ponder.LlamaCppEngine`` loads llama-cpp-python only when
first touched, so ``import ponder`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ponder._version import __version__
from ponder.api import answer_question, solve
from ponder.core.budget import Budget, Event, Ledger
from ponder.core.engine import Capabilities, Embedder, Embedding, Engine
from ponder.core.errors import (
    BudgetExceeded,
    CapabilityMissing,
    ConfigError,
    EngineError,
    EngineTimeout,
    MissingExtra,
    PonderError,
    RateLimited,
)
from ponder.core.reasoning import Reasoned, final_answer, split_reasoning
from ponder.core.types import (
    Candidate,
    Completion,
    ConfidenceStop,
    GenRequest,
    Message,
    Problem,
    Result,
    Score,
    TokenLogprob,
    Tool,
    ToolCall,
    ToolChoice,
    Usage,
)
from ponder.engines import models
from ponder.engines.scripted import ScriptedEngine
from ponder.runs.replay import ReplayEngine, ReplayMiss, SampleBank
from ponder.strategies import (
    AdaptiveConsistency,
    BeamSearch,
    BestOfN,
    BudgetForcing,
    ComputeOptimal,
    Context,
    DeepConf,
    DiverseVerifierTreeSearch,
    EarlyStoppingSelfConsistency,
    LookaheadSearch,
    Majority,
    MonteCarloTreeSearch,
    ProbeExit,
    ProgramAided,
    Revise,
    SemanticMajority,
    Single,
    Strategy,
    UniversalSelfConsistency,
    WeightedMajority,
    majority_vote,
    make_strategy,
    strategy_names,
    weighted_vote,
)
from ponder.verifiers.judge import JudgeScorer, StepJudgeVerifier
from ponder.verifiers.probe import ProbeVerifier
from ponder.verifiers.process import ProcessVerifier
from ponder.verifiers.registry import make_scorer

if TYPE_CHECKING:
    from ponder.engines.llamacpp import LlamaCppEngine
    from ponder.engines.openai import OpenAIEngine
    from ponder.verifiers.hf_prm import HFPRMVerifier

_LAZY = {
    "LlamaCppEngine": "ponder.engines.llamacpp",
    "OpenAIEngine": "ponder.engines.openai",
    "HFPRMVerifier": "ponder.verifiers.hf_prm",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ponder' has no attribute {name!r}")


__all__ = [
    "AdaptiveConsistency",
    "BeamSearch",
    "BestOfN",
    "Budget",
    "BudgetExceeded",
    "BudgetForcing",
    "Candidate",
    "Capabilities",
    "CapabilityMissing",
    "Completion",
    "ComputeOptimal",
    "ConfidenceStop",
    "ConfigError",
    "Context",
    "DeepConf",
    "DiverseVerifierTreeSearch",
    "EarlyStoppingSelfConsistency",
    "Embedder",
    "Embedding",
    "Engine",
    "EngineError",
    "EngineTimeout",
    "Event",
    "GenRequest",
    "HFPRMVerifier",
    "JudgeScorer",
    "Ledger",
    "LlamaCppEngine",
    "LookaheadSearch",
    "Majority",
    "Message",
    "MissingExtra",
    "MonteCarloTreeSearch",
    "OpenAIEngine",
    "PonderError",
    "ProbeExit",
    "ProbeVerifier",
    "Problem",
    "ProcessVerifier",
    "ProgramAided",
    "RateLimited",
    "Reasoned",
    "ReplayEngine",
    "ReplayMiss",
    "Result",
    "Revise",
    "SampleBank",
    "Score",
    "ScriptedEngine",
    "SemanticMajority",
    "Single",
    "StepJudgeVerifier",
    "Strategy",
    "TokenLogprob",
    "Tool",
    "ToolCall",
    "ToolChoice",
    "UniversalSelfConsistency",
    "Usage",
    "WeightedMajority",
    "__version__",
    "answer_question",
    "final_answer",
    "majority_vote",
    "make_scorer",
    "make_strategy",
    "models",
    "solve",
    "split_reasoning",
    "strategy_names",
    "weighted_vote",
]
