"""A combined verifier: a logistic model over a sample's token-confidence features.

Each signal of ``ponder.verifiers.features`` ranks samples on its own (mean logprob,
DeepConf's group and tail confidences, self-certainty, length); this model weighs them
together. It is fitted elsewhere (``ponder.analysis.selection.fit_combined``, with
scikit-learn, on a bank's samples and their grades) and stored here as plain numbers, so
scoring needs neither scikit-learn nor the bank:

    z_j = (x_j - mean_j) / scale_j,   p = sigmoid(intercept + sum_j coef_j z_j)

where ``x_j`` is feature ``features[j]`` after ``transform`` (``tokens`` enters as
``log(1 + tokens)``, every other feature as is). ``p`` estimates the chance that the
sample's answer is right. A feature that is NaN (a sample with no tokens) enters at its
training mean (``z_j = 0``).

The features must be computed as the model's were: from ``top_k`` alternatives per token
and DeepConf's groups over ``window`` tokens (``sample_features``); ``from_dict``
refuses a file that does not say so.

``CombinedScorer`` is the model as a scorer (``--scorer combined:PATH``): it asks for
samples with ``top_k`` alternatives per token (``sample_top_logprobs``), computes each
completion's features from its logprobs and scores it by the model's probability.
``CombinedStepVerifier`` is the model as search's process verifier (``--verifier
combined:PATH``): a partial solution is scored by the features of the tokens generated
so far, from the logprobs its steps were generated with (nothing is generated to score
it). The model was fitted on whole samples, so on a prefix it reads a shorter trace
than it was fitted on (``tokens`` above all).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ponder.core.context import Context
from ponder.core.errors import CapabilityMissing, ConfigError
from ponder.core.types import Completion, Problem, Score, TokenLogprob
from ponder.verifiers.features import DEFAULT_TOP_K, FEATURE_NAMES, WINDOW, sample_features
from ponder.verifiers.process import Path as StepPath
from ponder.verifiers.process import PrefixVerifier
from ponder.verifiers.steps import Aggregation, Segmentation

__all__ = ["FORMAT", "CombinedScorer", "CombinedStepVerifier", "CombinedVerifier", "transform"]

FORMAT = "ponder-combined-verifier-v1"


def transform(name: str, value: float) -> float:
    """A feature's value as the model reads it: ``log(1 + tokens)``, others as they are."""
    return math.log1p(value) if name == "tokens" else value


@dataclass(frozen=True)
class CombinedVerifier:
    """The fitted model; see the module docstring. ``trained_on`` says what it was fitted
    on (banks, model, problems, samples), for the record."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    top_k: int = DEFAULT_TOP_K
    window: int = WINDOW
    trained_on: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [f for f in self.features if f not in FEATURE_NAMES]
        if unknown:
            raise ConfigError(
                f"combined verifier: unknown features {unknown}; known: {', '.join(FEATURE_NAMES)}"
            )
        sizes = {len(self.features), len(self.mean), len(self.scale), len(self.coef)}
        if len(sizes) != 1 or not self.features:
            raise ConfigError(
                "combined verifier: features, mean, scale and coef must be non-empty and "
                "of one length"
            )
        if any(not s > 0 for s in self.scale):
            raise ConfigError("combined verifier: every scale must be > 0")
        if self.top_k < 1 or self.window < 1:
            raise ConfigError("combined verifier: top_k and window must be >= 1")

    def logit(self, values: Mapping[str, float]) -> float:
        """The model's log-odds for one sample's features (by name)."""
        missing = [f for f in self.features if f not in values]
        if missing:
            raise ConfigError(f"combined verifier: the sample lacks features {missing}")
        total = self.intercept
        for name, mu, sd, w in zip(self.features, self.mean, self.scale, self.coef, strict=True):
            x = transform(name, float(values[name]))
            if not math.isnan(x):
                total += w * (x - mu) / sd
        return total

    def probability(self, values: Mapping[str, float]) -> float:
        """The chance, by the model, that the sample's answer is right."""
        z = self.logit(values)
        # the two forms keep exp() from overflowing at either end
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))

    def probabilities(self, rows: Sequence[Mapping[str, float]]) -> list[float]:
        return [self.probability(r) for r in rows]

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "features": list(self.features), **linear_dict(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CombinedVerifier:
        if d.get("format") != FORMAT:
            raise ConfigError(
                f"not a combined verifier (format {d.get('format')!r}, expected {FORMAT!r})"
            )
        try:
            return cls(features=tuple(str(f) for f in d["features"]), **linear_fields(d))
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"combined verifier: malformed file ({e})") from e

    def save(self, path: str | Path) -> None:
        write_json_file(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> CombinedVerifier:
        return cls.from_dict(read_json_file(path, "combined verifier"))


def linear_dict(model: Any) -> dict[str, Any]:
    """What ``linear_fields`` reads back, from a model that has those fields."""
    return {
        "mean": list(model.mean),
        "scale": list(model.scale),
        "coef": list(model.coef),
        "intercept": model.intercept,
        "top_k": model.top_k,
        "window": model.window,
        "trained_on": dict(model.trained_on),
    }


def linear_fields(d: Mapping[str, Any]) -> dict[str, Any]:
    """The fields a logistic verifier's file holds beside its inputs (this module's and
    ``ponder.verifiers.hidden_probe``'s): standardisation, weights, how its features
    were computed and what it was fitted on."""
    return {
        "mean": tuple(float(x) for x in d["mean"]),
        "scale": tuple(float(x) for x in d["scale"]),
        "coef": tuple(float(x) for x in d["coef"]),
        "intercept": float(d["intercept"]),
        "top_k": int(d["top_k"]),
        "window": int(d["window"]),
        "trained_on": dict(d.get("trained_on", {})),
    }


def read_json_file(path: str | Path, what: str) -> Any:
    """A verifier file's JSON; ``ConfigError`` (naming ``what``) when it is absent or not
    JSON."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} {p} does not exist")
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{what} {p} is not JSON: {e}") from e


def write_json_file(path: str | Path, data: Mapping[str, Any]) -> None:
    Path(path).write_text(json.dumps(data, indent=2) + "\n")


@dataclass(frozen=True)
class CombinedScorer:
    """A ``CombinedVerifier`` as a scorer: each completion scored by the model's
    probability that its answer is right, from the features of its own logprobs (free:
    nothing is generated). ``source`` names the model file, for the scorer's name."""

    model: CombinedVerifier
    source: str = ""

    @classmethod
    def load(cls, path: str | Path) -> CombinedScorer:
        return cls(CombinedVerifier.load(path), str(path))

    @property
    def name(self) -> str:
        return f"combined:{self.source}" if self.source else "combined"

    @property
    def needs_logprobs(self) -> bool:
        return True

    @property
    def sample_top_logprobs(self) -> int:
        """The model's features were computed from ``top_k`` alternatives per token."""
        return self.model.top_k

    def features(self, completion: Completion) -> dict[str, float]:
        """The completion's features, computed as the model's were."""
        if completion.logprobs is None:
            raise CapabilityMissing(
                f"scorer {self.name} needs logprobs, but a completion came without them"
            )
        return sample_features(completion.logprobs, window=self.model.window)

    async def score(
        self, problem: Problem, completions: Sequence[Completion], ctx: Context
    ) -> list[Score]:
        return [Score(self.model.probability(self.features(c))) for c in completions]


class CombinedStepVerifier(PrefixVerifier):
    """A ``CombinedVerifier`` scoring the prefixes a search generates, step by step, from
    the logprobs of their tokens (see the module docstring). The search hands it each
    prefix's logprobs (``observe_prefix``) before it scores the prefix; a prefix it was
    not handed is ``CapabilityMissing``. As an outcome scorer it scores a whole
    completion as ``CombinedScorer`` does (the prefix that is the whole solution)."""

    def __init__(
        self,
        model: CombinedVerifier,
        source: str = "",
        segmentation: Segmentation = "blank",
        aggregation: Aggregation = "last",
    ) -> None:
        super().__init__(segmentation, aggregation)
        self.whole = CombinedScorer(model, source)
        self._logprobs: dict[tuple[str, StepPath], tuple[TokenLogprob, ...]] = {}

    @property
    def name(self) -> str:
        return self.whole.name

    @property
    def needs_logprobs(self) -> bool:
        return True

    @property
    def sample_top_logprobs(self) -> int:
        return self.whole.model.top_k

    @property
    def step_top_logprobs(self) -> int:
        return self.whole.model.top_k

    def observe_prefix(
        self, problem: Problem, path: StepPath, logprobs: Sequence[TokenLogprob]
    ) -> None:
        # a prefix's tokens never change once generated: the first report stands
        self._logprobs.setdefault((problem.question, tuple(path)), tuple(logprobs))

    def _prefix_score(self, problem: Problem, prefix: StepPath) -> float:
        logprobs = self._logprobs.get((problem.question, prefix))
        if logprobs is None:
            raise CapabilityMissing(
                f"verifier {self.name} scores a partial solution from the logprobs its "
                "steps were generated with, and was not given them; it scores the steps "
                "of a search (beam_search, dvts, lookahead, mcts), not given text"
            )
        features = sample_features(logprobs, window=self.whole.model.window)
        return self.whole.model.probability(features)

    async def score(
        self, problem: Problem, completions: Sequence[Completion], ctx: Context
    ) -> list[Score]:
        return await self.whole.score(problem, completions, ctx)
