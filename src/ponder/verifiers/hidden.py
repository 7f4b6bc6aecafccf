"""Hidden-state features of a sample, kept small by a fixed random projection.

A scoring pass with ``hidden=True`` gives each sample two final-layer hidden states
(``ponder.core.types.HiddenStates``): the row at its last scored position and the mean
over its rows. At the model's width (1536 numbers for qwen2.5-coder-1.5b) a bank of
thousands of samples would be too large to commit, so both are multiplied by a fixed
Gaussian matrix to ``dim`` numbers (128 by default) and stored as float16: 512 bytes a
sample. A Gaussian projection keeps distances and inner products to within a small
relative error with high probability (Johnson-Lindenstrauss), which is what linear
probes and nearest-neighbour measures need.

The matrix is ``numpy.random.default_rng(seed).standard_normal((n_embd, dim))`` divided
by ``sqrt(dim)``, so it depends on ``(n_embd, dim, seed)`` alone and any reader can
rebuild it; a store records those three (``Projection.spec``) and refuses vectors made
with others, since vectors of two projections cannot be compared.

Analysis code reads a bank's vectors as arrays with ``hidden_arrays(store.hidden())``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ponder.core.errors import ConfigError
from ponder.core.types import HiddenStates

__all__ = [
    "DEFAULT_DIM",
    "DEFAULT_SEED",
    "HiddenArrays",
    "Projection",
    "SampleHidden",
    "hidden_arrays",
]

DEFAULT_DIM = 128
DEFAULT_SEED = 0
METHOD = "gaussian"

# little-endian float16, so stored bytes read the same on any machine
_STORED = np.dtype("<f2")
_FLOAT16_MAX = float(np.finfo(np.float16).max)


@functools.lru_cache(maxsize=4)
def _matrix(n_embd: int, dim: int, seed: int) -> npt.NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    matrix = (rng.standard_normal((n_embd, dim)) / math.sqrt(dim)).astype(np.float32)
    matrix.setflags(write=False)  # cached and shared: nobody may change it
    return matrix


@dataclass(frozen=True)
class SampleHidden:
    """One sample's projected hidden states (``dim`` float16 numbers each): at the last
    scored position and the mean over the scored positions."""

    last: npt.NDArray[np.float16]
    mean: npt.NDArray[np.float16]

    def to_bytes(self) -> bytes:
        """``last`` then ``mean``, as little-endian float16."""
        return np.concatenate([self.last, self.mean]).astype(_STORED).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, dim: int) -> SampleHidden:
        """Read what ``to_bytes`` wrote for a projection to ``dim`` numbers."""
        if len(data) != 2 * dim * _STORED.itemsize:
            raise ConfigError(
                f"a stored hidden state has {len(data)} bytes, not the "
                f"{2 * dim * _STORED.itemsize} of two {dim}-number float16 vectors"
            )
        values = np.frombuffer(data, dtype=_STORED).astype(np.float16)
        return cls(values[:dim], values[dim:])


@dataclass(frozen=True)
class Projection:
    """The fixed Gaussian projection from ``n_embd`` hidden dims to ``dim`` (see the
    module docstring); ``seed`` picks the matrix."""

    n_embd: int
    dim: int = DEFAULT_DIM
    seed: int = DEFAULT_SEED

    def __post_init__(self) -> None:
        if self.n_embd < 1 or self.dim < 1:
            raise ConfigError(
                f"a hidden-state projection needs positive sizes, got {self.n_embd} -> {self.dim}"
            )

    def matrix(self) -> npt.NDArray[np.float32]:
        """The ``(n_embd, dim)`` matrix (read-only, built once per process)."""
        return _matrix(self.n_embd, self.dim, self.seed)

    def apply(self, vector: npt.NDArray[np.float32]) -> npt.NDArray[np.float16]:
        """``vector`` (``n_embd`` numbers) projected to ``dim`` float16 numbers."""
        if vector.shape != (self.n_embd,):
            raise ConfigError(
                f"a hidden state of shape {vector.shape} does not fit a projection from "
                f"{self.n_embd} dims"
            )
        projected = vector.astype(np.float32) @ self.matrix()
        # float16 stops at 65504: refuse rather than store infinities
        if not np.all(np.abs(projected) <= _FLOAT16_MAX):
            raise ConfigError(
                "a projected hidden state does not fit float16 (a value beyond 65504 or not finite)"
            )
        return projected.astype(np.float16)

    def project(self, states: HiddenStates) -> SampleHidden:
        """Both of a continuation's hidden states, projected."""
        return SampleHidden(self.apply(states.last), self.apply(states.mean))

    def spec(self) -> dict[str, Any]:
        """What a store records to rebuild the matrix and refuse another one."""
        return {"method": METHOD, "n_embd": self.n_embd, "dim": self.dim, "seed": self.seed}

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Projection:
        """The projection ``spec`` describes; ``ConfigError`` when it is not one."""
        if spec.get("method") != METHOD:
            raise ConfigError(
                f"unknown hidden-state projection {spec.get('method')!r} (this ponder "
                f"knows {METHOD!r})"
            )
        try:
            return cls(int(spec["n_embd"]), int(spec["dim"]), int(spec["seed"]))
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"a malformed hidden-state projection {dict(spec)!r}") from e


@dataclass(frozen=True)
class HiddenArrays:
    """A bank's projected hidden states as float32 matrices: row ``r`` of ``last`` and
    ``mean`` belongs to sample ``keys[r]`` (problem id, sample index)."""

    keys: tuple[tuple[str, int], ...]
    last: npt.NDArray[np.float32]
    mean: npt.NDArray[np.float32]


def hidden_arrays(
    hidden: Mapping[str, Mapping[int, SampleHidden]], dim: int | None = None
) -> HiddenArrays:
    """Stack ``hidden`` (``RunStore.hidden()``: per problem id, per sample index) into
    matrices, samples in order of problem id then index. ``dim`` gives an empty bank's
    matrices their width (0 without it)."""
    keys = tuple(sorted((pid, i) for pid, own in hidden.items() for i in own))
    if not keys:
        width = dim or 0
        empty = np.zeros((0, width), dtype=np.float32)
        return HiddenArrays((), empty, empty.copy())
    last = np.stack([hidden[pid][i].last for pid, i in keys]).astype(np.float32)
    mean = np.stack([hidden[pid][i].mean for pid, i in keys]).astype(np.float32)
    return HiddenArrays(keys, last, mean)
