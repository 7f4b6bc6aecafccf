"""Answer extraction, canonical forms and math grading."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ponder.core.types import Grade
from ponder.grading import answers as grading
from ponder.grading.answers import answers_match, canonical_answer, extract_answer


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # \boxed wins, the last one, braces balanced
        (r"First \boxed{3}, then on reflection \boxed{42}.", "42"),
        (r"So $x = \boxed{\frac{1}{2}}$", r"\frac{1}{2}"),
        (r"\boxed{x^{2}+\frac{1}{2}}", r"x^{2}+\frac{1}{2}"),
        (r"\fbox{7}", "7"),
        (r"\boxed 5 is it", "5"),
        (r"\boxed{\text{(C)}}", "(C)"),
        (r"\boxed{\textbf{Evelyn}}", "Evelyn"),
        (r"\boxed{\$1,000}", "1000"),
        (r"\boxed{25\%}", "25"),
        (r"\boxed{18 \text{ dollars}}", "18"),
        (r"\boxed{45^\circ}", "45"),
        (r"\boxed{x = 5}", "5"),
        (r"\boxed{10,\!000}", "10000"),
        (r"\boxed{\left( 3, \dfrac{\pi}{2} \right)}", r"(3,\frac{\pi}{2})"),
        (r"\boxed{\dfrac{6}{8}}", r"\frac{3}{4}"),
        (r"\boxed{3/4}", r"\frac{3}{4}"),
        # a truncated last box falls back to an earlier complete one
        (r"we get \boxed{3} and then \boxed{4", "3"),
        (r"\boxed{7} and the answer is 9", "7"),
        # #### beats prose
        ("She earns 9 * 2 = 18.\n#### 18", "18"),
        ("#### 1,234", "1234"),
        ("The answer is 5\n#### 6", "6"),
        # "the answer is" / "final answer"
        ("Thus the answer is 42.", "42"),
        ("The Answer Is: 7", "7"),
        ("The final answer is: **$18$**.", "18"),
        ("**Final Answer:** 12", "12"),
        ("final answer: $\\frac{3}{4}$", r"\frac{3}{4}"),
        ("Final Answer: The final answer is $\\frac{3}{4}$. I hope it is correct.", r"\frac{3}{4}"),
        ("The answer is 5, since 2 + 3 = 5.", "5"),
        ("The answer is 18 dollars per day.", "18"),
        ("The answer is $\\$18$ per day", "18"),
        ("The answer is p - q.", "p-q"),
        ("The answer is not obvious yet. After work we get 12 apples", "12"),
        ("The answer is therefore 12. Check: 12 * 2 = 24", "12"),
        ("The answer is Evelyn.", "Evelyn"),
        ("Let me check the answer again: 5 + 3 = 8.", "8"),
        ("Final answer = 9", "9"),
        # the last number
        ("It costs 1,234.50 dollars", "1234.5"),
        ("Read pages 3-4", "4"),
        ("The temperature fell to -7 degrees", "-7"),
        ("It fell to \u22123 degrees", "-3"),
        ("value 3.0", "3"),
        ("a drop of .5 litres", "0.5"),
        ("-0", "0"),
        ("12,34", "34"),
        # nothing to find
        ("no digits here", None),
        ("", None),
        (r"\boxed{}", None),
    ],
)
def test_extract_answer(text: str, expected: str | None) -> None:
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  42 ", "42"),
        ("$42$", "42"),
        ("42.", "42"),
        ("**42**", "42"),
        (r"\text{42}", "42"),
        ("1,234.50", "1234.5"),
        ("3.0", "3"),
        ("-0", "0"),
        ("-0.0", "0"),
        ("+5", "5"),
        ("007", "7"),
        ("0.50", "0.5"),
        ("100", "100"),
        ("12345678901234567890123456789012345", "12345678901234567890123456789012345"),
        ("1e5", "1e5"),  # scientific notation is left alone
        (r"\$18", "18"),
        ("$18", "18"),
        ("18%", "18"),
        ("x = 3.50", "3.5"),
        (r"\frac12", r"\frac{1}{2}"),
        (r"-\frac{6}{8}", r"-\frac{3}{4}"),
        (r"\frac{4}{2}", "2"),
        (r"\frac{1}{0}", r"\frac{1}{0}"),
        ("(1, 2)", "(1,2)"),
        (r"\pi r^2", r"\pi r^2"),  # the space after a command word stays
        (r"\left[ 0, 1 \right)", "[0,1)"),
        ("Evelyn", "Evelyn"),
    ],
)
def test_canonical_answer(raw: str, expected: str) -> None:
    assert canonical_answer(raw) == expected


def test_equal_numbers_vote_together() -> None:
    texts = [r"\boxed{1,234}", "#### 1234", "The answer is 1234.00", "so 1234."]
    assert {extract_answer(t) for t in texts} == {"1234"}


@pytest.mark.parametrize(
    ("predicted", "reference"),
    [
        ("18", "18"),
        ("1234", "1,234"),
        ("1234.0", "1234"),
        ("0.5", r"\frac12"),
        ("0.5", r"\frac{1}{2}"),
        ("0.75", "3/4"),
        (r"\dfrac{14}{3}", r"\frac{14}{3}"),
        ("1.0000001", "1"),
        (r"\$5", "5"),
    ],
)
def test_numbers_match(predicted: str, reference: str) -> None:
    assert answers_match(predicted, reference)


@pytest.mark.parametrize(
    ("predicted", "reference"),
    [("17", "18"), ("1.001", "1"), ("-3", "3"), (r"\frac{1}{3}", "0.33")],
)
def test_numbers_mismatch(predicted: str, reference: str) -> None:
    assert not answers_match(predicted, reference)


def test_plain_numbers_never_leave_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_worker(*args: object) -> bool:
        raise AssertionError("math-verify was called for plain numbers")

    monkeypatch.setattr(grading._POOL, "verify", no_worker)
    assert answers_match("2760", "2,760.00")
    assert not answers_match("2761", "2760")
    assert answers_match(r"\frac{6}{4}", "1.5")
    start = time.perf_counter()
    for i in range(2000):
        answers_match(str(i), f"{i}.0")
    assert time.perf_counter() - start < 2.0


@pytest.mark.parametrize(
    ("predicted", "reference"),
    [
        ("-q+p", "p - q"),
        (r"(3,\frac{\pi}{2})", r"\left( 3, \frac{\pi}{2} \right)"),
        (r"2\sqrt{3}", r"\sqrt{12}"),
        (r"\frac{\sqrt{3}}{2}", r"\frac{1}{2}\sqrt{3}"),
        (r"[1,2)", r"[1, 2)"),
        ("x=5", "5"),
        (r"\pi", r"\pi"),
    ],
)
def test_latex_matches_through_math_verify(predicted: str, reference: str) -> None:
    assert answers_match(predicted, reference)


@pytest.mark.parametrize(
    ("predicted", "reference"),
    [("(1,2)", "[1, 2)"), (r"\sqrt{2}", r"\sqrt{3}"), ("p+q", "p - q"), ("x", "y")],
)
def test_latex_mismatches(predicted: str, reference: str) -> None:
    assert not answers_match(predicted, reference)


def test_none_is_never_correct() -> None:
    assert not answers_match(None, "1")
    assert not answers_match("1", None)
    assert not answers_match("", "")


def test_repeated_grading_is_cached() -> None:
    assert answers_match(r"3\sqrt{2}", r"\sqrt{18}")
    start = time.perf_counter()
    for _ in range(100):
        assert answers_match(r"3\sqrt{2}", r"\sqrt{18}")
    assert time.perf_counter() - start < 0.1


def test_pathological_input_times_out(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="ponder.grading.answers")
    start = time.perf_counter()
    assert not answers_match(r"9^{9^{9^{9}}}", "5", timeout_s=1.0)
    assert time.perf_counter() - start < 8.0
    assert any("timed out" in r.getMessage() for r in caplog.records)
    # the stuck worker was replaced: grading goes on
    assert answers_match(r"4\sqrt{2}", r"\sqrt{32}")


def test_huge_inputs_return_quickly() -> None:
    start = time.perf_counter()
    assert extract_answer("x" * 100_000) is None
    assert extract_answer("1 " * 50_000) == "1"
    assert extract_answer(r"\boxed{" * 20_000) is None
    assert extract_answer("the answer is " * 7_000 + "7") == "7"
    assert extract_answer("the answer" + " " * 100_000 + "x") is None
    assert extract_answer("a b " * 25_000 + "the answer is " + "zz " * 30_000) is None
    assert not answers_match("x" * 100_000, "y")
    assert not answers_match(r"\boxed{" + "(" * 100_000 + "}", "1")
    assert not answers_match("1" * 5_000 + "/2", "3")
    assert time.perf_counter() - start < 5.0


def _sqrt_pairs(offset: int) -> list[tuple[str, str, bool]]:
    # k\sqrt{2} = \sqrt{2k^2}: each pair needs math-verify, and none is cached yet
    return [
        (f"{k}\\sqrt{{2}}", f"\\sqrt{{{2 * k * k}}}", True)
        for k in range(offset * 3 + 5, offset * 3 + 8)
    ] + [(f"{offset + 5}\\sqrt{{3}}", f"\\sqrt{{{3 * (offset + 5) ** 2 + 1}}}", False)]


def test_grading_from_eight_threads() -> None:
    def grade(offset: int) -> list[bool]:
        return [answers_match(p, r) == want for p, r, want in _sqrt_pairs(offset)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(grade, range(8)))
    assert all(all(r) for r in results)


async def test_grading_from_an_event_loop() -> None:
    pairs = _sqrt_pairs(20)
    verdicts = await asyncio.gather(*(asyncio.to_thread(answers_match, p, r) for p, r, _ in pairs))
    assert verdicts == [want for _, _, want in pairs]


def test_unavailable_grader_is_a_logged_mismatch_and_not_remembered(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ponder.grading.answers")
    pair = (r"5\sqrt{5}", r"\sqrt{125}")
    with monkeypatch.context() as m:
        m.setattr(grading, "_POOL", grading._WorkerPool(max_workers=1))
        m.setattr(sys, "executable", "/nonexistent/python")
        assert not answers_match(*pair)
    assert any("unavailable" in r.getMessage() for r in caplog.records)
    assert answers_match(*pair)


# ---------------------------------------------------------------------------
# grades: a grader that did not decide says so


def test_pathological_latex_is_graded_a_timeout_with_its_reason() -> None:
    # sympy would evaluate a power with ten billion digits in its exponent
    grade = grading.grade_answer(r"10^{10^{10^{10}}}", "5", timeout_s=1.0)
    assert grade.status == "timeout" and not grade.correct and grade.failed
    assert grade.reason == "math-verify did not finish within 1s"
    assert not answers_match(r"10^{10^{10^{10}}}", "5", timeout_s=1.0)


def test_decided_grades_are_correct_or_wrong() -> None:
    assert grading.grade_answer(r"2\sqrt{3}", r"\sqrt{12}") == Grade("correct")
    assert grading.grade_answer(r"\sqrt{2}", r"\sqrt{3}") == Grade("wrong")
    assert grading.grade_answer("17", "18") == Grade("wrong")
    assert grading.grade_answer(None, "1") == Grade("wrong", "no answer")
    assert grading.grade_answer("1", None) == Grade("error", "the problem has no reference answer")


def test_an_answer_too_long_for_math_verify_is_an_error_not_a_mismatch() -> None:
    grade = grading.grade_answer("x" * 5000, "y")
    assert grade.status == "error" and "5000 characters" in grade.reason


def test_an_unavailable_grader_is_an_error_grade(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(grading, "_POOL", grading._WorkerPool(max_workers=1))
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    grade = grading.grade_answer(r"6\sqrt{6}", r"\sqrt{216}")
    assert grade.status == "error" and grade.reason.startswith("math-verify unavailable")


def test_math_verify_raising_is_an_error_grade_with_its_exception(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # a worker speaking the protocol whose math-verify raised on the pair
    stub = tmp_path / "worker.py"
    stub.write_text(
        "import sys\nprint('ready', flush=True)\n"
        "for line in sys.stdin:\n    print('!RecursionError: too deep', flush=True)\n"
    )
    monkeypatch.setattr(grading, "_POOL", grading._WorkerPool(max_workers=1))
    monkeypatch.setattr(grading, "_WORKER_SCRIPT", str(stub))
    grade = grading.grade_answer(r"7\sqrt{7}", r"\sqrt{343}")
    assert grade == Grade("error", "math-verify failed: RecursionError: too deep")
    grading.shutdown_grader()


def test_the_worker_reports_an_exception_unless_another_reading_matches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import math_verify

    from ponder.grading import _worker as worker

    real = math_verify.verify

    def verify(gold: object, target: object, **kw: object) -> bool:
        if str(target) == "x + 1":
            raise ZeroDivisionError("in simplify")
        return bool(real(gold, target, **kw))

    monkeypatch.setattr(math_verify, "verify", verify)
    with pytest.raises(worker._VerifyFailed, match="ZeroDivisionError: in simplify"):
        worker._math_verify("x+1", "y")
    # "x+1" parses to an expression (which raises here) and to its text (which matches)
    assert worker._math_verify("x+1", "x+1")
