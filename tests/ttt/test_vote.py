"""Two-level voting on hand-made predictions."""

from __future__ import annotations

from ponder.ttt.infer import Prediction, vote


def preds(*rows: tuple[str, str | None]) -> list[Prediction]:
    return [Prediction(0, f"{fam}#{i}", fam, a or "?", a) for i, (fam, a) in enumerate(rows)]


def test_answers_picked_by_more_families_win() -> None:
    # A is frequent in one family only; B is picked in three families
    p = preds(
        ("f0", "A"), ("f0", "A"), ("f0", "A"), ("f0", "A"),
        ("f1", "B"), ("f2", "B"), ("f3", "B"), ("f3", "C"),
    )  # fmt: skip
    assert vote(p) == [("B", 3), ("A", 1)]


def test_each_family_contributes_at_most_its_top_three() -> None:
    p = preds(
        ("f0", "A"), ("f0", "A"), ("f0", "B"), ("f0", "C"), ("f0", "D"),
        ("f1", "D"), ("f2", "D"),
    )  # fmt: skip
    # in f0, D ties with B and C but comes last, so f0 keeps A, B, C and D gets 2
    assert vote(p, attempts=4) == [("D", 2), ("A", 1), ("B", 1), ("C", 1)]
    assert vote(p, per_family=4, attempts=1) == [("D", 3)]


def test_ties_break_by_total_count_then_first_seen_and_invalid_answers_never_vote() -> None:
    p = preds(("f0", "X"), ("f0", "Y"), ("f1", "Y"), ("f1", "X"), ("f1", "Y"), ("f2", None))
    # X and Y are both picked by two families; Y has more predictions in all
    assert vote(p) == [("Y", 2), ("X", 2)]
    assert vote(preds(("f0", "P"), ("f1", "Q"))) == [("P", 1), ("Q", 1)]
    assert vote(preds(("f0", None), ("f1", None))) == []


def test_flat_vote_counts_every_prediction_alike() -> None:
    # A is frequent in one family, B picked by three: the two levels prefer B, a flat
    # vote A
    p = preds(
        ("f0", "A"), ("f0", "A"), ("f0", "A"), ("f0", "A"),
        ("f1", "B"), ("f2", "B"), ("f3", "B"), ("f3", "C"), ("f4", None),
    )  # fmt: skip
    assert vote(p) == [("B", 3), ("A", 1)]
    assert vote(p, flat=True) == [("A", 4), ("B", 3)]
    # ties go to the answer seen first
    assert vote(preds(("f0", "Q"), ("f1", "P")), flat=True, attempts=1) == [("Q", 1)]
