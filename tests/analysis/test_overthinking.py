"""Overthinking counts on hand-made chains, from parsing and from recorded probes."""

from __future__ import annotations

import pytest

from ponder.analysis.overthinking import (
    answer_points,
    candidate_overthinking,
    overthinking,
    text_cuts,
)
from ponder.core.types import Candidate, Usage
from ponder.grading.answers import extract_answer
from ponder.runs.store import Record

CHAIN = (
    "Janet's ducks lay 16 eggs a day.\n"
    "She eats 3 and bakes with 4, so 16 - 3 - 4 = 9 eggs are left.\n"
    "She sells them at $2 each: 9 * 2 = 18 dollars.\n"
    "Let me check: 9 times 2 is 18.\n"
    "The answer is \\boxed{18}."
)
WANDERS = (
    "The total is 9 * 2 = 18. Wait, maybe she sells 10 eggs, which gives 20.\n"
    "No: 9 eggs are left, so it is 18. \\boxed{18}"
)


def cand(text: str, answer: str | None, tokens: int) -> Candidate:
    return Candidate(text, answer, Usage(prompt_tokens=40, completion_tokens=tokens))


def after_cut(text: str, marker: str, tokens: int) -> int:
    """The documented approximation: tokens apportioned by the characters after the
    sentence that ends with ``marker``."""
    cut = text.index(marker) + len(marker)
    return round(tokens * len(text[cut:]) / len(text))


def test_cuts_are_line_and_sentence_ends() -> None:
    text = "One. Two 3.5 four!\nFive? six"
    assert text_cuts(text) == [4, 18, 19, 24, len(text)]  # "3.5" is no sentence end


def test_cuts_are_bounded() -> None:
    text = "A step. " * 1000 + "\n".join(["line"] * 30)
    cuts = text_cuts(text, max_cuts=50)
    assert len(cuts) <= 50 and cuts[-1] == len(text) and cuts == sorted(set(cuts))
    lines = "x.\n" * 500
    assert len(text_cuts(lines, max_cuts=50)) <= 50


@pytest.mark.parametrize(
    ("answers", "points"),
    [
        (["16", "9", "18", "18", "18"], (2, 2)),
        (["16", "18", "20", "18", "18"], (1, 3)),
        (["18", "18"], (0, 0)),
        (["5", "18", "5"], (1, None)),
        ([None, "9"], (None, None)),
        ([], (None, None)),
    ],
)
def test_answer_points(answers: list[str | None], points: tuple[int | None, int | None]) -> None:
    assert answer_points(answers, "18") == points


def test_a_chain_that_checks_its_answer_after_stating_it() -> None:
    got = candidate_overthinking(cand(CHAIN, "18", 70), {}, extract_answer)
    expected = after_cut(CHAIN, "18 dollars.", 70)
    assert (got.found, got.method, got.tokens) == (True, "parse", 70)
    assert got.after_settled == got.after_first == expected
    assert 0 < expected < 70


def test_a_chain_that_wanders_off_and_back() -> None:
    got = candidate_overthinking(cand(WANDERS, "18", 40), {}, extract_answer)
    assert got.after_first == after_cut(WANDERS, "= 18.", 40)
    assert got.after_settled == after_cut(WANDERS, "it is 18.", 40)
    assert got.after_first > got.after_settled


def test_a_number_restated_from_the_question_is_only_an_upper_bound() -> None:
    text = "There are 16 eggs. She uses 3, then 4, so 9 are left. Then 4 more: 16."
    got = candidate_overthinking(cand(text, "16", 30), {}, extract_answer)
    assert got.after_first == after_cut(text, "16 eggs.", 30)
    assert got.after_settled == 0  # settled only at the very end


def test_an_answer_stated_only_at_the_end_costs_nothing_after() -> None:
    text = "We add 20 and 22 to get the total, so \\boxed{42}"
    got = candidate_overthinking(cand(text, "42", 20), {}, extract_answer)
    assert (got.found, got.after_settled, got.after_first) == (True, 0, 0)


def test_an_answer_the_text_never_gives_is_not_found() -> None:
    program = "```python\nx = 6 * 7\nprint(x)\n```"
    got = candidate_overthinking(cand(program, "42", 12), {}, extract_answer)
    assert (got.found, got.after_settled, got.after_first, got.tokens) == (False, 0, 0, 12)


def test_a_tokenizer_counts_the_tokens_after() -> None:
    words = len(CHAIN[CHAIN.index("18 dollars.") + len("18 dollars.") :].split())
    got = candidate_overthinking(
        cand(CHAIN, "18", 70), {}, extract_answer, count_tokens=lambda s: len(s.split())
    )
    assert got.after_settled == got.after_first == words


def test_recorded_probes_give_exact_token_positions() -> None:
    meta = {
        "chain_tokens": 128,
        "probes": [
            {"tokens": 32, "answer": "18"},
            {"tokens": 64, "answer": "20"},
            {"tokens": 96, "answer": "18"},
            {"tokens": 128, "answer": "18"},
        ],
    }
    got = candidate_overthinking(cand("whatever", "18", 150), meta, extract_answer)
    assert (got.method, got.tokens, got.after_first, got.after_settled) == ("probe", 128, 96, 32)


def test_probes_that_never_gave_the_answer_fall_back_to_parsing_the_chain() -> None:
    meta = {"chain_tokens": 70, "probes": [{"tokens": 32, "answer": "5"}]}
    got = candidate_overthinking(cand(CHAIN, "18", 75), meta, extract_answer)
    assert (got.method, got.tokens) == ("parse", 70)
    assert got.after_settled == after_cut(CHAIN, "18 dollars.", 70)


def record(pid: str, cands: tuple[Candidate, ...], *, correct: bool = True, **kw) -> Record:
    return Record(
        problem_id=pid,
        idx=0,
        question="q",
        reference="18",
        answer="18",
        correct=correct,
        candidates=cands,
        **kw,
    )


def test_a_run_adds_up_per_problem_and_skips_errors_and_unanswered() -> None:
    records = [
        record("a", (cand(CHAIN, "18", 70), cand("no answer here", None, 9))),
        record("b", (cand(WANDERS, "18", 40), cand("x = 1", "42", 5)), correct=False),
        record("c", (), error="EngineError: down"),
    ]
    run = overthinking(records, extract_answer)
    a, b = run.problems
    assert (a.problem_id, a.candidates, a.found, a.tokens) == ("a", 1, 1, 70)
    assert a.after_settled == after_cut(CHAIN, "18 dollars.", 70)
    assert (b.candidates, b.found, b.tokens, b.correct) == (2, 1, 45, False)
    assert b.after_first == after_cut(WANDERS, "= 18.", 40)
    assert run.candidates == 3 and run.found == 2 and run.tokens == 115
    assert run.after_settled == a.after_settled + b.after_settled
    assert run.share(run.after_settled) == pytest.approx(run.after_settled / 115)
    assert run.by_method == {"parse": 3} and run.token_count == "characters"
    assert run.to_dict()["problems"][0]["after_settled"] == a.after_settled
