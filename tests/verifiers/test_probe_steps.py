"""``train_probe``'s steps on their own: the note on rollouts other models wrote, the
check that training holds both outcomes, and the fit with and without folds."""

from __future__ import annotations

import numpy as np
import pytest

from ponder.analysis.probe_train import (
    Rollout,
    StepExample,
    _fit_examples,
    _require_both_outcomes,
    _writer_notes,
)
from ponder.core.errors import ConfigError
from ponder.core.types import Problem


def _rollout(pid: str, correct: bool, model: str = "m") -> Rollout:
    return Rollout(Problem(pid, "q?", "1"), "step\n\nanswer: 1", "1", correct, model=model)


def test_writer_notes_name_the_other_models_once() -> None:
    rollouts = [_rollout("a", True, "m"), _rollout("b", False, "w2"), _rollout("c", True, "w1")]
    rollouts.append(_rollout("d", True, "w2"))
    (note,) = _writer_notes(rollouts, "m")
    assert note.startswith("rollouts were written by w1, w2 but features come from m")
    assert _writer_notes(rollouts[:1], "m") == []


def test_training_needs_right_and_wrong_rollouts_outside_the_held_out_problems() -> None:
    rollouts = [_rollout("a", True), _rollout("b", False)]
    _require_both_outcomes(rollouts, held_out=set())
    with pytest.raises(ConfigError, match="every training rollout is correct"):
        _require_both_outcomes(rollouts, held_out={"b"})


def _data(problems: int = 6) -> tuple[np.ndarray, list[StepExample], list[Rollout]]:
    rng = np.random.default_rng(0)
    rollouts = [_rollout(f"p{i}", i % 2 == 0) for i in range(problems)]
    examples = [
        StepExample(i, j, j == 2, float(r.correct)) for i, r in enumerate(rollouts) for j in (1, 2)
    ]
    x = rng.normal(size=(len(examples), 3)) + np.array([[2.0 * e.label, 0, 0] for e in examples])
    return x, examples, rollouts


def test_the_fit_holds_out_the_held_out_problems() -> None:
    x, examples, rollouts = _data()
    fitted = _fit_examples(x, examples, rollouts, held_out={"p0", "p1"}, folds=0, l2=1.0, seed=0)
    assert fitted.held.tolist() == [True] * 4 + [False] * 8
    assert (fitted.train == ~fitted.held).all()
    assert fitted.fold_models == []
    assert fitted.y.tolist() == [e.label for e in examples]


def test_folds_score_every_example_with_the_model_that_left_its_problem_out() -> None:
    x, examples, rollouts = _data()
    fitted = _fit_examples(x, examples, rollouts, held_out=set(), folds=3, l2=1.0, seed=0)
    assert fitted.held.all() and fitted.train.all()
    assert len(fitted.fold_models) == 3
    for model in fitted.fold_models:
        rows = [rollouts[e.rollout].problem.id in model.problem_ids for e in examples]
        assert np.array_equal(fitted.scores[rows], model.probability(x[rows]))
