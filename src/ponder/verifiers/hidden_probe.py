"""A hidden-state probe as a scorer: the model's own last layer read by a logistic model.

``ponder bank select --save-probe PATH`` fits it (``ponder.analysis.hidden_probe``, with
scikit-learn) on banks whose samples have hidden states and stores it here as plain
numbers, so scoring needs neither scikit-learn nor the banks. A sample's row is its
projected hidden states (``ponder.verifiers.hidden``: the last scored row, then the
mean, ``dim`` numbers each, under the projection the banks were made with), after its
token-confidence features (``features``, each through ``combined.transform``) for a
``joint`` probe:

    z_j = (x_j - mean_j) / scale_j,   p = sigmoid(intercept + sum_j coef_j z_j)

``p`` estimates the chance that the sample's answer is right. A NaN cell (a feature of
an empty sample) enters at its training mean (``z_j = 0``); a sample of fewer than two
tokens has no hidden rows and enters with all of them at their means.

``HiddenProbeScorer`` (``--scorer hidden:PATH``) asks for samples with their hidden
states (``GenRequest.hidden``: read from the decode steps that draw them, at no extra
token, on the embedded engine) and, for a joint probe, with the ``top_k`` alternatives
per token its features were computed from. An engine that cannot hand out hidden states
is refused (``CapabilityMissing``) before a token is drawn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ponder.core.context import Context
from ponder.core.errors import CapabilityMissing, ConfigError
from ponder.core.types import Completion, Problem, Score
from ponder.verifiers.combined import (
    linear_dict,
    linear_fields,
    read_json_file,
    transform,
    write_json_file,
)
from ponder.verifiers.features import DEFAULT_TOP_K, FEATURE_NAMES, WINDOW, sample_features
from ponder.verifiers.hidden import Projection, SampleHidden

__all__ = ["FORMAT", "HiddenProbe", "HiddenProbeScorer"]

FORMAT = "ponder-hidden-probe-v1"

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class HiddenProbe:
    """The fitted probe; see the module docstring. ``trained_on`` says what it was
    fitted on (banks, model, problems, samples, the strength ``C``), for the record."""

    projection: Projection
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
                f"hidden-state probe: unknown features {unknown}; known: {', '.join(FEATURE_NAMES)}"
            )
        width = len(self.features) + 2 * self.projection.dim
        sizes = {len(self.mean), len(self.scale), len(self.coef)}
        if sizes != {width}:
            raise ConfigError(
                f"hidden-state probe: mean, scale and coef must have {width} numbers (the "
                f"features, then last and mean of {self.projection.dim} dims each)"
            )
        if any(not s > 0 for s in self.scale):
            raise ConfigError("hidden-state probe: every scale must be > 0")
        if self.top_k < 1 or self.window < 1:
            raise ConfigError("hidden-state probe: top_k and window must be >= 1")

    @property
    def joint(self) -> bool:
        """Whether it reads the token-confidence features as well."""
        return bool(self.features)

    def row(self, hidden: SampleHidden | None, features: Mapping[str, float]) -> FloatArray:
        """One sample's inputs: its features (transformed), then its hidden states; NaN
        where it has none (a sample with no tokens, or fewer than two)."""
        missing = [f for f in self.features if f not in features]
        if missing:
            raise ConfigError(f"hidden-state probe: the sample lacks features {missing}")
        head = [transform(f, float(features[f])) for f in self.features]
        if hidden is None:
            tail = np.full(2 * self.projection.dim, np.nan)
        else:
            tail = np.concatenate([hidden.last, hidden.mean]).astype(np.float64)
        return np.concatenate([np.asarray(head, dtype=np.float64), tail])

    def probabilities(self, rows: FloatArray) -> FloatArray:
        """The chance, by the probe, that each row's sample is right; ``rows`` is
        ``(samples, inputs)``."""
        z = (rows - np.asarray(self.mean)) / np.asarray(self.scale)
        logit = self.intercept + np.where(np.isnan(z), 0.0, z) @ np.asarray(self.coef)
        out: FloatArray = 0.5 * (1.0 + np.tanh(0.5 * logit))  # the sigmoid, overflow-free
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "projection": self.projection.spec(),
            "features": list(self.features),
            **linear_dict(self),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> HiddenProbe:
        if d.get("format") != FORMAT:
            raise ConfigError(
                f"not a hidden-state probe (format {d.get('format')!r}, expected {FORMAT!r})"
            )
        try:
            projection = Projection.from_spec(d["projection"])
            features = tuple(str(f) for f in d["features"])
            return cls(projection=projection, features=features, **linear_fields(d))
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"hidden-state probe: malformed file ({e})") from e

    def save(self, path: str | Path) -> None:
        write_json_file(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> HiddenProbe:
        return cls.from_dict(read_json_file(path, "hidden-state probe"))


@dataclass(frozen=True)
class HiddenProbeScorer:
    """A ``HiddenProbe`` as a scorer: each completion scored by the probe's probability
    that its answer is right, from the hidden states it was drawn with (and, for a
    joint probe, its own logprobs' features). ``source`` names the file."""

    probe: HiddenProbe
    source: str = ""

    @classmethod
    def load(cls, path: str | Path) -> HiddenProbeScorer:
        return cls(HiddenProbe.load(path), str(path))

    @property
    def name(self) -> str:
        return f"hidden:{self.source}" if self.source else "hidden"

    @property
    def needs_logprobs(self) -> bool:
        return self.probe.joint

    @property
    def sample_top_logprobs(self) -> int:
        return self.probe.top_k

    @property
    def sample_hidden(self) -> bool:
        """Samples must be drawn with their hidden states (``GenRequest.hidden``)."""
        return True

    def _inputs(self, completion: Completion) -> FloatArray:
        states = completion.hidden
        if states is None and completion.usage.completion_tokens >= 2:
            raise CapabilityMissing(
                f"scorer {self.name} reads each sample's hidden states, and a sample of "
                f"{completion.usage.completion_tokens} tokens came without them: draw the "
                "samples with hidden=True on the embedded engine"
            )
        hidden = None if states is None else self.probe.projection.project(states)
        features: Mapping[str, float] = {}
        if self.probe.joint:
            if completion.logprobs is None:
                raise CapabilityMissing(
                    f"scorer {self.name} needs logprobs, but a completion came without them"
                )
            features = sample_features(completion.logprobs, window=self.probe.window)
        return self.probe.row(hidden, features)

    def probabilities(self, completions: Sequence[Completion]) -> list[float]:
        if not completions:
            return []
        rows = np.stack([self._inputs(c) for c in completions])
        return [float(p) for p in self.probe.probabilities(rows)]

    async def score(
        self, problem: Problem, completions: Sequence[Completion], ctx: Context
    ) -> list[Score]:
        return [Score(p) for p in self.probabilities(completions)]
