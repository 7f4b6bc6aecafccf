import math

import pytest

from ponder.core.errors import ConfigError
from ponder.verifiers.steps import (
    AGGREGATIONS,
    SEGMENTATIONS,
    STEP_DELIMITERS,
    aggregate,
    check_aggregation,
    check_segmentation,
    join_steps,
    split_steps,
)


def test_blank_segmentation_cuts_at_blank_lines_and_drops_empty_steps():
    text = "First we add.\n2 + 2 = 4\n\n  \t\n\nThen we double.\n \nSo \\boxed{8}.\n\n"
    assert split_steps(text, "blank") == [
        "First we add.\n2 + 2 = 4",
        "Then we double.",
        "So \\boxed{8}.",
    ]
    # blank is the default
    assert split_steps(text) == split_steps(text, "blank")


def test_lines_segmentation_makes_every_non_empty_line_a_step():
    assert split_steps("a = 1\n\n  b = 2  \n\nc = 3", "lines") == ["a = 1", "b = 2", "c = 3"]


def test_numbered_segmentation_starts_a_step_at_step_k_headers():
    text = (
        "Let us solve it.\n"
        "Step 1: add 2 and 2.\nThat gives 4.\n"
        "step 2. double it\n"
        "  **Step 3:** the answer is 8.\n"
        "We are done; no Step 4 here because it is mid-line."
    )
    assert split_steps(text, "numbered") == [
        "Let us solve it.",
        "Step 1: add 2 and 2.\nThat gives 4.",
        "step 2. double it",
        "**Step 3:** the answer is 8.\nWe are done; no Step 4 here because it is mid-line.",
    ]


def test_numbered_segmentation_without_headers_is_one_step():
    assert split_steps("just an answer: 7", "numbered") == ["just an answer: 7"]
    assert split_steps("Step 1: x\nStep 2: y", "numbered") == ["Step 1: x", "Step 2: y"]


@pytest.mark.parametrize("segmentation", SEGMENTATIONS)
def test_blank_text_has_no_steps(segmentation):
    assert split_steps("", segmentation) == []
    assert split_steps(" \n\n \n", segmentation) == []


@pytest.mark.parametrize("segmentation", SEGMENTATIONS)
def test_join_then_split_round_trips(segmentation):
    steps = {
        "blank": ["x = 1\ny = 2", "so x + y = 3"],
        "lines": ["x = 1", "y = 2", "so x + y = 3"],
        "numbered": ["Step 1: x = 1\ny = 2", "Step 2: so x + y = 3"],
    }[segmentation]
    assert split_steps(join_steps(steps, segmentation), segmentation) == steps


def test_join_uses_the_delimiter_a_generator_stops_at():
    # search generates a step at a time and stops at STEP_DELIMITERS; joining must put
    # that delimiter back so the text reads as if written in one go
    assert join_steps(["a", "b"], "blank") == "a\n\nb"
    assert join_steps(["a", "b"], "lines") == "a\nb"
    assert join_steps(["Step 1: a", "Step 2: b"], "numbered") == "Step 1: a\nStep 2: b"
    for seg in ("blank", "lines"):
        assert STEP_DELIMITERS[seg][0] in join_steps(["a", "b"], seg)
    assert set(STEP_DELIMITERS) == set(SEGMENTATIONS)


@pytest.mark.parametrize(
    ("how", "expected"),
    [("last", 0.5), ("min", 0.25), ("prod", 0.9 * 0.25 * 0.5), ("mean", (0.9 + 0.25 + 0.5) / 3)],
)
def test_aggregations(how, expected):
    assert aggregate([0.9, 0.25, 0.5], how) == pytest.approx(expected)


def test_aggregate_default_is_last_and_returns_floats():
    value = aggregate([1, 0])
    assert value == 0.0 and isinstance(value, float)
    assert aggregate([0.3]) == pytest.approx(0.3)


@pytest.mark.parametrize("how", AGGREGATIONS)
def test_aggregate_of_no_steps_is_zero(how):
    assert aggregate([], how) == 0.0


def test_prod_of_many_confident_steps_decays():
    assert aggregate([0.9] * 10, "prod") == pytest.approx(math.pow(0.9, 10))


def test_bad_names_are_config_errors():
    with pytest.raises(ConfigError, match="unknown segmentation 'paragraphs'"):
        check_segmentation("paragraphs")
    with pytest.raises(ConfigError, match=r"unknown aggregation 'max'.*last, min, prod, mean"):
        check_aggregation("max")
    with pytest.raises(ConfigError, match="unknown segmentation"):
        split_steps("a\n\nb", "sentences")
    with pytest.raises(ConfigError, match="unknown aggregation"):
        aggregate([0.5], "median")
    with pytest.raises(ConfigError, match="unknown aggregation"):
        aggregate([], "median")
    assert check_segmentation("lines") == "lines"
    assert check_aggregation("prod") == "prod"
