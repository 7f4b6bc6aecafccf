"""A probe verifier: logistic regression on the generator's own hidden states.

No reward model installs from PyPI, but every model ponder samples from already knows
something about whether its partial solution is going well: its final hidden state at
the last token of a prefix. A probe is a linear read-out of that state,

    P(correct | question, steps 1..k) = sigmoid(w . (x - mean) / std + b),

fitted by ``ponder verifier train`` (:mod:`ponder.analysis.probe_train`) on rollouts
labelled by the task's grader. It costs one prompt prefill per step and no generated
token, and an engine that keeps the KV cache of a prefix it has just written pays
little more than the new step's tokens.

The probe sees exactly what the generator saw: the task's chat for the problem with
the steps so far as the assistant's ``continuation``. Features are only meaningful for
the model they came from, so a probe refuses an engine whose embedding size differs
(always) or whose model name differs (``model_check="error"``, the default; ``"warn"``
or ``"ignore"`` for the same weights under another name).

Files are ``.npz`` archives read with ``allow_pickle=False``: the arrays ``weights``,
``bias``, ``mean`` and ``std``, and ``meta``, a JSON string with the format marker, the
model, the embedding size and what training recorded (labels, counts, held-out AUC and
the held-out problem ids, so an evaluation can use exactly the rollouts the probe never
saw).

A *cross-fitted* probe (``ponder verifier train --folds K``) also holds K fold models,
fold k fitted on every training problem outside fold k. It scores a problem of fold k
with fold k's model, so every training problem is scored by a model that never saw it,
and any other problem with the model fitted on all of them. That lets one set of
rollouts both train the probe and be searched or ranked with it, honestly. Such files
are format version 2 (older readers refuse them rather than misuse them); they add the
arrays ``fold_weights``, ``fold_bias``, ``fold_mean``, ``fold_std`` (one row per fold)
and list each fold's problem ids in ``meta["folds"]``.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from ponder.core.budget import EventKind, Ledger
from ponder.core.engine import Embedder, Engine, prompt_token_bound
from ponder.core.errors import CapabilityMissing, ConfigError, EngineError
from ponder.core.task import Task
from ponder.core.types import GenRequest, Problem, Usage
from ponder.verifiers.process import Path as StepPath
from ponder.verifiers.process import ProcessVerifier, new_prefixes, per_item
from ponder.verifiers.steps import Aggregation, Segmentation, check_segmentation, join_steps

if TYPE_CHECKING:
    from ponder.core.context import Context

__all__ = [
    "PROBE_FORMAT",
    "FoldModel",
    "ModelCheck",
    "ProbeModelMismatch",
    "ProbeVerifier",
    "embed_requests",
    "prefix_request",
    "require_embedder",
]

PROBE_FORMAT = "ponder-probe"
PROBE_VERSION = 2
_FOLD_ARRAYS = ("fold_weights", "fold_bias", "fold_mean", "fold_std")

ModelCheck = Literal["error", "warn", "ignore"]
MODEL_CHECKS: tuple[str, ...] = ("error", "warn", "ignore")

FloatArray = npt.NDArray[np.float64]

_ARRAYS = ("weights", "bias", "mean", "std", "meta")


class ProbeModelMismatch(UserWarning):
    """A probe runs on an engine whose model name differs from the one it was trained on."""


def require_embedder(engine: Engine, purpose: str = "the probe verifier") -> Embedder:
    """``engine`` as an :class:`Embedder`, or ``CapabilityMissing`` saying what to use."""
    if not engine.capabilities.embeddings or not isinstance(engine, Embedder):
        raise CapabilityMissing(
            f"{purpose} reads the model's hidden states, and engine {engine.name} does not "
            "provide embeddings; use the embedded llama.cpp engine (--model NAME or a "
            ".gguf file, no --base-url)"
        )
    return engine


def prefix_request(
    task: Task, problem: Problem, steps: Sequence[str], segmentation: Segmentation
) -> GenRequest:
    """The request whose last prompt token is where the probe reads the hidden state:
    the task's own chat, with ``steps`` as what the assistant has written so far."""
    return GenRequest(messages=task.messages(problem), continuation=join_steps(steps, segmentation))


async def embed_requests(
    engine: Engine,
    requests: Sequence[GenRequest],
    ledger: Ledger,
    *,
    kind: EventKind = "score",
    label: str = "probe",
) -> npt.NDArray[np.float32]:
    """Embeddings of ``requests`` as one ``(len(requests), dim)`` array.

    The call is checked against the ledger's budgets first (it generates nothing, so
    its calls count, and its prompt tokens under a limit on total tokens) and recorded
    on the ledger after, like any other compute.
    """
    embedder = require_embedder(engine)
    if not requests:
        return np.zeros((0, 0), dtype=np.float32)
    prompt = (
        sum(prompt_token_bound(engine, r) for r in requests) if ledger.limits_total_tokens else 0
    )
    ledger.check(0, calls=len(requests), prompt_tokens=prompt)
    t0 = time.perf_counter()
    embeddings = await embedder.embed(requests)
    seconds = time.perf_counter() - t0
    ledger.record(kind, sum((e.usage for e in embeddings), Usage()), seconds, label)
    if len(embeddings) != len(requests):
        raise EngineError(
            f"{engine.name} returned {len(embeddings)} embeddings for {len(requests)} requests"
        )
    dims = {int(np.asarray(e.vector).size) for e in embeddings}
    if len(dims) != 1:
        raise EngineError(f"{engine.name} returned embeddings of different sizes {sorted(dims)}")
    return np.stack([np.asarray(e.vector, dtype=np.float32).ravel() for e in embeddings])


def _sigmoid(z: FloatArray) -> FloatArray:
    # exp of a non-positive number only, so large |z| neither overflows nor warns
    e = np.exp(-np.abs(z))
    out: FloatArray = np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    return out


def _vector(value: Any, name: str) -> FloatArray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ConfigError(f"probe {name} must be a non-empty vector, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"probe {name} holds non-finite values")
    return arr


@dataclass(frozen=True)
class FoldModel:
    """One fold of a cross-fitted probe: a linear read-out fitted without the problems
    in ``problem_ids``, which it is the one to score."""

    weights: FloatArray
    bias: float
    mean: FloatArray
    std: FloatArray
    problem_ids: frozenset[str]

    def probability(self, x: FloatArray) -> FloatArray:
        return _sigmoid(((x - self.mean) / self.std) @ self.weights + self.bias)


class ProbeVerifier(ProcessVerifier):
    """A trained linear probe on hidden states; see the module doc.

    ``weights``, ``mean`` and ``std`` have one entry per embedding dimension; ``std``
    must be positive (training replaces constant features' zero spread by 1).
    ``model`` is the engine name the features came from; ``meta`` is what training
    recorded (kept in the file, shown by ``meta``). ``model_check`` decides what a
    different engine name does: ``"error"`` (``ConfigError``), ``"warn"``
    (:class:`ProbeModelMismatch`) or ``"ignore"``. A different embedding size is always
    a ``ConfigError``. ``folds`` makes it cross-fitted (see the module doc).
    """

    def __init__(
        self,
        weights: npt.ArrayLike,
        bias: float,
        mean: npt.ArrayLike,
        std: npt.ArrayLike,
        *,
        model: str,
        segmentation: Segmentation = "blank",
        aggregation: Aggregation = "last",
        meta: Mapping[str, Any] | None = None,
        model_check: ModelCheck = "error",
        folds: Sequence[FoldModel] = (),
    ) -> None:
        super().__init__(segmentation, aggregation)
        self.weights = _vector(weights, "weights")
        self.mean = _vector(mean, "mean")
        self.std = _vector(std, "std")
        if not (self.weights.size == self.mean.size == self.std.size):
            raise ConfigError(
                f"probe arrays disagree on the embedding size: weights {self.weights.size}, "
                f"mean {self.mean.size}, std {self.std.size}"
            )
        if np.any(self.std <= 0):
            raise ConfigError("probe std must be positive in every dimension")
        self.bias = float(bias)
        if not np.isfinite(self.bias):
            raise ConfigError("probe bias is not finite")
        if model_check not in MODEL_CHECKS:
            raise ConfigError(
                f"model_check must be one of {', '.join(MODEL_CHECKS)}, got {model_check!r}"
            )
        self.model = model
        self.model_check: ModelCheck = model_check
        self.meta: dict[str, Any] = dict(meta or {})
        self._accepted_models: set[str] = set()
        self.folds = tuple(folds)
        self._fold_of: dict[str, int] = {}
        for k, fold in enumerate(self.folds):
            if fold.weights.shape != self.weights.shape or fold.mean.shape != self.mean.shape:
                raise ConfigError(f"probe fold {k} does not match the embedding size {self.dim}")
            if np.any(fold.std <= 0) or not np.isfinite(fold.bias):
                raise ConfigError(f"probe fold {k} has a non-positive std or a non-finite bias")
            for pid in fold.problem_ids:
                if pid in self._fold_of:
                    raise ConfigError(
                        f"problem {pid!r} is in probe folds {self._fold_of[pid]} and {k}"
                    )
                self._fold_of[pid] = k

    @property
    def name(self) -> str:
        return "probe"

    @property
    def dim(self) -> int:
        """The embedding size the probe reads."""
        return int(self.weights.size)

    @property
    def heldout_ids(self) -> tuple[str, ...]:
        """Problem ids this probe scores with a model that never saw them in training:
        the held-out ones, and for a cross-fitted probe every training problem too."""
        heldout = self.meta.get("heldout", {})
        ids = heldout.get("problem_ids", []) if isinstance(heldout, Mapping) else []
        return tuple(sorted({str(i) for i in ids} | set(self._fold_of)))

    # -- scoring ---------------------------------------------------------------------

    def probability(self, features: npt.ArrayLike, problem_id: str | None = None) -> FloatArray:
        """P(correct) for each row of ``features``, shape ``(n,)`` (a ``(dim,)`` vector
        counts as one row). A cross-fitted probe scores a training problem's features
        (``problem_id``) with the fold model that never saw that problem."""
        x = np.atleast_2d(np.asarray(features, dtype=np.float64))
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ConfigError(
                f"this probe reads embeddings of size {self.dim} (model {self.model}); "
                f"got features of shape {np.asarray(features).shape}"
            )
        fold = self._fold_of.get(problem_id) if problem_id is not None else None
        if fold is not None:
            return self.folds[fold].probability(x)
        return _sigmoid(((x - self.mean) / self.std) @ self.weights + self.bias)

    def check_engine(self, engine: Engine) -> Embedder:
        """The engine as an embedder after the capability and model-name checks."""
        embedder = require_embedder(engine)
        if engine.name == self.model or engine.name in self._accepted_models:
            return embedder
        message = (
            f"probe trained on hidden states of {self.model!r} is being used with engine "
            f"{engine.name!r}; another model's hidden states mean nothing to it"
        )
        if self.model_check == "error":
            raise ConfigError(
                message + ". Use the probe's model, or, if this is the same model under "
                "another name, load the probe with model_check='warn'"
            )
        if self.model_check == "warn":
            warnings.warn(message, ProbeModelMismatch, stacklevel=3)
        self._accepted_models.add(engine.name)  # warn once per engine name
        return embedder

    def _check_dim(self, features: npt.NDArray[np.float32], engine: Engine) -> None:
        if features.shape[1] != self.dim:
            raise ConfigError(
                f"probe expects embeddings of size {self.dim} (model {self.model}); engine "
                f"{engine.name} gives {features.shape[1]}: it is another model, so the "
                "probe cannot score with it"
            )

    async def _score_from(
        self, problem: Problem, items: Sequence[tuple[StepPath, int]], ctx: Context
    ) -> list[list[float]]:
        self.check_engine(ctx.engine)
        requests = [
            prefix_request(ctx.task, problem, prefix, self.segmentation)
            for prefix in new_prefixes(items)
        ]
        if not requests:
            return [[] for _ in items]
        features = await embed_requests(ctx.engine, requests, ctx.ledger, label=self.name)
        self._check_dim(features, ctx.engine)
        return per_item(items, self.probability(features, problem.id).tolist())

    # -- files -----------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the probe to ``path`` (an ``.npz`` archive, written atomically)."""
        target = Path(path)
        meta = {
            **self.meta,
            "format": PROBE_FORMAT,
            # only cross-fitted files need a reader that knows folds
            "version": PROBE_VERSION if self.folds else 1,
            "model": self.model,
            "dim": self.dim,
            "segmentation": self.segmentation,
            "aggregation": self.aggregation,
        }
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                folds: dict[str, Any] = {}
                if self.folds:
                    meta["folds"] = [sorted(f.problem_ids) for f in self.folds]
                    folds = {
                        "fold_weights": np.stack([f.weights for f in self.folds]),
                        "fold_bias": np.array([f.bias for f in self.folds]),
                        "fold_mean": np.stack([f.mean for f in self.folds]),
                        "fold_std": np.stack([f.std for f in self.folds]),
                    }
                np.savez(
                    f,
                    weights=self.weights,
                    bias=np.array(self.bias),
                    mean=self.mean,
                    std=self.std,
                    meta=np.array(json.dumps(meta, sort_keys=True)),
                    **folds,
                )
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        segmentation: str | None = None,
        aggregation: str = "last",
        model_check: ModelCheck = "error",
    ) -> ProbeVerifier:
        """Read a probe written by :meth:`save`; nothing in the file is unpickled.

        ``segmentation`` None uses the one the probe was trained with.
        """
        source = Path(path)
        if not source.is_file():
            raise ConfigError(f"no probe file at {source}; train one with: ponder verifier train")
        try:
            with np.load(source, allow_pickle=False) as data:
                missing = [k for k in _ARRAYS if k not in data.files]
                if missing:
                    raise ConfigError(
                        f"{source} is not a ponder probe (missing {', '.join(missing)})"
                    )
                arrays = {k: data[k] for k in _ARRAYS}
                arrays.update({k: data[k] for k in _FOLD_ARRAYS if k in data.files})
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
            raise ConfigError(f"{source} is not a readable ponder probe ({e})") from e
        try:
            meta = json.loads(str(arrays["meta"].item()))
        except (ValueError, TypeError) as e:
            raise ConfigError(f"{source}: probe metadata is not JSON ({e})") from e
        if not isinstance(meta, dict) or meta.get("format") != PROBE_FORMAT:
            raise ConfigError(f"{source} is not a ponder probe (no format marker)")
        version = int(meta.get("version", 0))
        if version > PROBE_VERSION:
            raise ConfigError(
                f"{source} was written by a newer ponder (probe format {version}, this "
                f"ponder reads up to {PROBE_VERSION})"
            )
        if int(meta.get("dim", -1)) != arrays["weights"].size:
            raise ConfigError(f"{source}: metadata says dim {meta.get('dim')}, weights disagree")
        bias = np.asarray(arrays["bias"], dtype=np.float64)
        if bias.size != 1:
            raise ConfigError(f"{source}: probe bias must be one number")
        seg = check_segmentation(segmentation or str(meta.get("segmentation", "blank")))
        folds = _load_folds(source, arrays, meta)
        probe = cls(
            arrays["weights"],
            float(bias.reshape(())),
            arrays["mean"],
            arrays["std"],
            model=str(meta.get("model", "")),
            segmentation=seg,
            aggregation=aggregation,  # type: ignore[arg-type]  # checked by the base class
            meta={k: v for k, v in meta.items() if k not in ("format", "version", "folds")},
            model_check=model_check,
            folds=folds,
        )
        return probe

    def __repr__(self) -> str:
        return (
            f"ProbeVerifier(model={self.model!r}, dim={self.dim}, folds={len(self.folds)}, "
            f"segmentation={self.segmentation!r}, aggregation={self.aggregation!r})"
        )


def _load_folds(
    source: Path, arrays: Mapping[str, Any], meta: Mapping[str, Any]
) -> list[FoldModel]:
    ids = meta.get("folds")
    present = [k for k in _FOLD_ARRAYS if k in arrays]
    if ids is None and not present:
        return []
    if ids is None or len(present) != len(_FOLD_ARRAYS) or not isinstance(ids, list):
        raise ConfigError(f"{source}: a cross-fitted probe needs every fold array and fold list")
    w, b = np.asarray(arrays["fold_weights"], float), np.asarray(arrays["fold_bias"], float)
    m, s = np.asarray(arrays["fold_mean"], float), np.asarray(arrays["fold_std"], float)
    k = len(ids)
    if not (w.shape[0] == b.size == m.shape[0] == s.shape[0] == k) or w.ndim != 2:
        raise ConfigError(f"{source}: probe fold arrays disagree on the number of folds ({k})")
    return [
        FoldModel(w[i], float(b[i]), m[i], s[i], frozenset(str(p) for p in ids[i]))
        for i in range(k)
    ]
