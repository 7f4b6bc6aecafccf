"""The fixed random projection of hidden states, and their float16 bytes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ponder.core.errors import ConfigError
from ponder.core.types import HiddenStates
from ponder.verifiers.hidden import Projection, SampleHidden, hidden_arrays


def test_the_matrix_is_seed_0_gaussian_scaled_by_one_over_root_dim() -> None:
    projection = Projection(n_embd=6, dim=4)
    expected = np.random.default_rng(0).standard_normal((6, 4)) / math.sqrt(4)
    np.testing.assert_allclose(projection.matrix(), expected.astype(np.float32))
    assert Projection(6, 4).matrix() is projection.matrix()  # built once
    assert not np.allclose(Projection(6, 4, seed=1).matrix(), projection.matrix())
    with pytest.raises(ValueError):
        projection.matrix()[0, 0] = 1.0  # the cached matrix is read-only


def test_both_states_are_projected_to_float16() -> None:
    projection = Projection(n_embd=3, dim=2)
    last = np.array([1.0, 0.0, 0.0], dtype=np.float32)
    mean = np.array([0.0, 2.0, -1.0], dtype=np.float32)
    sample = projection.project(HiddenStates(last, mean, rows=4))
    assert sample.last.dtype == np.float16 and sample.last.shape == (2,)
    matrix = projection.matrix()
    np.testing.assert_allclose(sample.last, matrix[0], rtol=1e-3)
    np.testing.assert_allclose(sample.mean, 2 * matrix[1] - matrix[2], rtol=1e-3, atol=1e-3)


def test_a_vector_of_another_width_or_beyond_float16_is_refused() -> None:
    projection = Projection(n_embd=3, dim=2)
    with pytest.raises(ConfigError, match="does not fit a projection from 3 dims"):
        projection.apply(np.zeros(4, dtype=np.float32))
    with pytest.raises(ConfigError, match="does not fit float16"):
        projection.apply(np.full(3, 1e6, dtype=np.float32))
    with pytest.raises(ConfigError, match="positive sizes"):
        Projection(n_embd=3, dim=0)


def test_bytes_round_trip_and_a_wrong_length_is_refused() -> None:
    sample = SampleHidden(
        np.array([1.5, -2.25], dtype=np.float16), np.array([0.125, 3.0], dtype=np.float16)
    )
    data = sample.to_bytes()
    assert len(data) == 8  # 2 vectors x 2 numbers x 2 bytes
    back = SampleHidden.from_bytes(data, dim=2)
    assert back.last.tolist() == [1.5, -2.25] and back.mean.tolist() == [0.125, 3.0]
    with pytest.raises(ConfigError, match="8 bytes, not the 12 of two 3-number"):
        SampleHidden.from_bytes(data, dim=3)


def test_spec_round_trips_and_a_foreign_one_is_refused() -> None:
    projection = Projection(n_embd=576, dim=32, seed=0)
    assert projection.spec() == {"method": "gaussian", "n_embd": 576, "dim": 32, "seed": 0}
    assert Projection.from_spec(projection.spec()) == projection
    with pytest.raises(ConfigError, match="unknown hidden-state projection 'pca'"):
        Projection.from_spec({"method": "pca", "n_embd": 576, "dim": 32, "seed": 0})
    with pytest.raises(ConfigError, match="malformed"):
        Projection.from_spec({"method": "gaussian", "dim": 32})


def test_hidden_arrays_stack_samples_by_problem_then_index() -> None:
    def sample(x: float) -> SampleHidden:
        return SampleHidden(np.full(2, x, dtype=np.float16), np.full(2, -x, dtype=np.float16))

    arrays = hidden_arrays({"p2": {0: sample(3.0)}, "p1": {1: sample(2.0), 0: sample(1.0)}})
    assert arrays.keys == (("p1", 0), ("p1", 1), ("p2", 0))
    assert arrays.last.dtype == np.float32
    assert arrays.last[:, 0].tolist() == [1.0, 2.0, 3.0]
    assert arrays.mean[:, 1].tolist() == [-1.0, -2.0, -3.0]
    empty = hidden_arrays({}, dim=4)
    assert empty.keys == () and empty.last.shape == (0, 4) and empty.mean.shape == (0, 4)
