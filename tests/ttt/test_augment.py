"""Augmentations invert exactly and keep a task consistent."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ponder.tasks.arc import FewShotTask, Pair, grid_text, parse_grid
from ponder.ttt.augment import GEOMETRIES, Transform, augment_task, transforms_for

grids = st.integers(1, 6).flatmap(
    lambda h: st.integers(1, 6).flatmap(
        lambda w: st.lists(
            st.lists(st.integers(0, 9), min_size=w, max_size=w), min_size=h, max_size=h
        )
    )
)
colour_maps = st.permutations(list(range(1, 10))).map(lambda p: (0, *p))
transforms = st.builds(
    Transform, geometry=st.integers(0, 7), colours=st.one_of(st.just(()), colour_maps)
)


@settings(max_examples=300, deadline=None)
@given(grid=grids, t=transforms)
def test_every_transform_inverts_exactly(grid: list[list[int]], t: Transform) -> None:
    text = grid_text(grid)
    moved = t.apply(text)
    assert parse_grid(moved) is not None
    assert t.invert(moved) == text
    assert t.apply(t.invert(text)) == text


@settings(max_examples=100, deadline=None)
@given(grid=grids, t=transforms)
def test_a_transform_keeps_black_and_moves_cells_as_a_symmetry(
    grid: list[list[int]], t: Transform
) -> None:
    before = parse_grid(grid_text(grid))
    after = parse_grid(t.apply(grid_text(grid)))
    assert before is not None and after is not None
    # a quarter turn swaps height and width; black cells stay black, in equal number
    h, w = len(before), len(before[0])
    assert (len(after), len(after[0])) == ((w, h) if t.geometry % 2 else (h, w))
    count = sum(row.count(0) for row in before)
    assert sum(row.count(0) for row in after) == count


def test_the_eight_geometries_are_distinct_on_an_asymmetric_grid() -> None:
    text = "12\n30\n45"
    images = {Transform(g).apply(text) for g in range(8)}
    assert len(images) == 8
    assert Transform(1).apply("12\n34") == "24\n13"  # a quarter turn anticlockwise
    assert Transform(4).apply("12\n34") == "21\n43"  # a left-right mirror


def test_invalid_transforms_and_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="geometry"):
        Transform(8)
    with pytest.raises(ValueError, match="keep 0"):
        Transform(0, (1, 0, 2, 3, 4, 5, 6, 7, 8, 9))
    with pytest.raises(ValueError, match="identity"):
        Transform(1, grids=False)
    with pytest.raises(ValueError, match="not a grid"):
        Transform(1).invert("12\n3")
    # identity maps are free on anything, grid or not
    assert Transform(0).invert("not a grid") == "not a grid"


def test_a_transformed_task_is_consistent_and_text_tasks_are_left_alone() -> None:
    task = FewShotTask(
        "t", (Pair("12\n30", "30\n12"), Pair("40\n05", "05\n40")), (Pair("67\n80", "80\n67"),),
        kind="grid",
    )  # fmt: skip
    for t in transforms_for(task, colour_variants=3, seed=1):
        moved = t.task(task)
        for orig, new in zip((*task.demos, *task.tests), (*moved.demos, *moved.tests), strict=True):
            assert new.input == t.apply(orig.input)
            assert new.output is not None and orig.output is not None
            assert t.invert(new.output) == orig.output
    assert len(transforms_for(task, colour_variants=3)) == 24
    assert {t.family for t in transforms_for(task, colour_variants=3)} == set(GEOMETRIES)
    assert transforms_for(task, colour_variants=3, seed=1) == transforms_for(
        task, colour_variants=3, seed=1
    )
    # the ablation without augmented inference: the identity, with its colour variants
    only = transforms_for(task, colour_variants=3, seed=1, symmetries="identity")
    assert only == transforms_for(task, colour_variants=3, seed=1)[:3]
    assert {t.family for t in only} == {"identity"} and only[0].is_identity
    with pytest.raises(ValueError, match="symmetries"):
        transforms_for(task, symmetries="some")  # type: ignore[arg-type]
    text = FewShotTask("x", (Pair("ab", "ba"), Pair("cd", "dc")), (Pair("ef"),), kind="text")
    assert [t.name for t in transforms_for(text, colour_variants=4)] == ["text"]
    moved, t = augment_task(text, random.Random(0))
    assert t.is_identity and sorted(moved.demos, key=lambda p: p.input) == list(text.demos)
