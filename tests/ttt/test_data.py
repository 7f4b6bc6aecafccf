"""Leave-one-out tasks, the rendered sequence, and augmented training examples."""

from __future__ import annotations

import itertools

import pytest

from ponder.tasks.arc import FewShotTask, Pair
from ponder.ttt.data import END, leave_one_out, render, training_examples, training_items

TASK = FewShotTask(
    "g",
    tuple(Pair(f"{i}0\n0{i}", f"0{i}\n{i}0") for i in range(1, 5)),
    (Pair("50\n05", "05\n50"),),
    kind="grid",
)


def test_leave_one_out_gives_k_tasks_of_k_minus_one_demonstrations() -> None:
    loo = leave_one_out(TASK)
    assert len(loo) == 4
    for i, (context, query) in enumerate(loo):
        assert len(context) == 3 and query == TASK.demos[i]
        assert set(context) | {query} == set(TASK.demos) and query not in context
    assert leave_one_out(FewShotTask("one", (Pair("1", "2"),), (Pair("3"),))) == []


def test_render_marks_every_output_as_a_target() -> None:
    segments = render(TASK.demos[:2], TASK.tests[0], answer=True)
    assert [t for _, t in segments] == [False, True, False, True, False, True]
    assert segments[0][0] == "input:\n10\n01\noutput:\n"
    assert segments[1][0] == "01\n10" + END
    assert all(text.endswith(END) for text, target in segments if target)
    prompt = render(TASK.demos[:2], TASK.tests[0], answer=False)
    assert prompt == segments[:-1]
    with pytest.raises(ValueError, match="no output"):
        render(TASK.demos, Pair("12"), answer=True)


def test_training_examples_are_transformed_leave_one_out_tasks() -> None:
    examples = list(itertools.islice(training_examples(TASK, seed=3), 40))
    assert len({e.held_out for e in examples}) == 4  # every demonstration is held out
    assert len({e.transform.geometry for e in examples}) > 4
    for e in examples:
        texts = [text for text, _ in e.segments]
        pairs = []
        for inp, out in zip(texts[0::2], texts[1::2], strict=True):
            assert inp.startswith("input:\n") and inp.endswith("\noutput:\n")
            grid_in = inp[len("input:\n") : -len("\noutput:\n")]
            pairs.append(Pair(e.transform.invert(grid_in), e.transform.invert(out[: -len(END)])))
        context, query = leave_one_out(TASK)[e.held_out]
        # the same transform on every grid; the demonstrations in some order
        assert pairs[-1] == query and sorted(pairs[:-1], key=str) == sorted(context, key=str)
    again = list(itertools.islice(training_examples(TASK, seed=3), 40))
    assert again == examples
    assert list(training_examples(FewShotTask("one", (Pair("1", "2"),), (Pair("3"),)))) == []


def test_pairs_data_trains_on_each_demonstration_alone() -> None:
    assert training_items(TASK, "pairs") == [((), p) for p in TASK.demos]
    examples = list(itertools.islice(training_examples(TASK, seed=3, data="pairs"), 40))
    assert len({e.held_out for e in examples}) == 4
    for e in examples:
        (inp, _), (out, target) = e.segments  # no demonstrations before the query
        assert target and inp.startswith("input:\n")
        grid_in = inp[len("input:\n") : -len("\noutput:\n")]
        assert (
            Pair(e.transform.invert(grid_in), e.transform.invert(out[: -len(END)]))
            == (TASK.demos[e.held_out])
        )
    # one demonstration is enough for pairs, not for leave-one-out
    one = FewShotTask("one", (Pair("12", "21"),), (Pair("3"),), kind="grid")
    assert next(training_examples(one, data="pairs")).held_out == 0
    with pytest.raises(ValueError, match="training data"):
        training_items(TASK, "all")  # type: ignore[arg-type]


def test_no_augment_keeps_the_frame_and_the_order() -> None:
    examples = list(itertools.islice(training_examples(TASK, seed=3, augment=False), 20))
    for e in examples:
        assert e.transform.is_identity
        context, query = leave_one_out(TASK)[e.held_out]
        assert e.segments == tuple(render(context, query, answer=True))
    # the default stream is the augmented one, and unchanged by the new options
    assert list(itertools.islice(training_examples(TASK, seed=3), 5)) == list(
        itertools.islice(training_examples(TASK, seed=3, data="loo", augment=True), 5)
    )
