import pytest

from ponder.strategies.voting import best_of, majority_vote, weighted_vote


def test_majority_plain():
    assert majority_vote(["3", "4", "3"]) == ("3", {"3": 2.0, "4": 1.0})


def test_majority_tie_goes_to_answer_that_reached_the_count_first():
    # A reaches 2 votes at index 3, B at index 2: B wins although A appeared first
    assert majority_vote(["A", "B", "B", "A"])[0] == "B"
    assert majority_vote(["A", "B"])[0] == "A"


def test_none_never_wins():
    assert majority_vote([None, None, "7"])[0] == "7"
    assert majority_vote([None, None]) == (None, {})


def test_weighted_vote():
    answer, votes = weighted_vote(["1", "2", "2"], [0.9, 0.4, 0.4])
    assert answer == "1"
    assert votes == pytest.approx({"1": 0.9, "2": 0.8})
    with pytest.raises(ValueError):
        weighted_vote(["1"], [])


def test_best_of_prefers_answers_then_score_then_earliest():
    assert best_of(["1", "2", "3"], [0.1, 0.9, 0.9]) == 1
    assert best_of([None, "2"], [0.99, 0.1]) == 1
    with pytest.raises(ValueError):
        best_of([], [])
