import pytest

from ponder.core.budget import Ledger
from ponder.core.errors import BudgetExceeded
from ponder.core.types import GenRequest, Message, Usage


def test_usage_adds_up_and_sums_from_zero():
    a = Usage(prompt_tokens=10, cached_tokens=0, completion_tokens=5, calls=1)
    b = Usage(prompt_tokens=0, cached_tokens=10, completion_tokens=7, calls=0)
    assert a + b == Usage(10, 10, 12, 1)
    assert sum([a, b]) == a + b
    assert (a + b).total_tokens == 22
    assert Usage.from_dict((a + b).to_dict()) == a + b


def test_genrequest_validates():
    with pytest.raises(ValueError):
        GenRequest()
    with pytest.raises(ValueError):
        GenRequest(prompt="x", messages=(Message("user", "x"),))
    with pytest.raises(ValueError):
        GenRequest(prompt="x", n=0)
    assert GenRequest(prompt="x", top_logprobs=3).wants_logprobs


def test_ledger_records_and_budgets_stack():
    led = Ledger()
    led.record("generate", Usage(5, 0, 10, 1), 0.5)
    with led.budget(completion_tokens=100) as outer:
        led.record("generate", Usage(5, 0, 40, 1), 0.5)
        with led.budget(calls=1) as inner:
            led.check(completion_tokens=60, calls=1)  # fits both
            with pytest.raises(BudgetExceeded, match="completion-token"):
                led.check(completion_tokens=61)
            led.record("score", Usage(1, 0, 1, 1), 0.1)
            with pytest.raises(BudgetExceeded, match="call budget"):
                led.check(completion_tokens=1)
        assert inner.used == Usage(1, 0, 1, 1)
        assert outer.used == Usage(6, 0, 41, 2)
        assert led.remaining_completion_tokens() == 59
    # budgets count only what was spent inside them; the ledger keeps everything
    assert led.total() == Usage(11, 0, 51, 3)
    assert led.total("score") == Usage(1, 0, 1, 1)
    led.check(completion_tokens=10**9)  # no open budget: anything fits


def test_total_token_budget_counts_prompt_tokens():
    led = Ledger()
    with led.budget(total_tokens=100):
        led.record("generate", Usage(prompt_tokens=80, completion_tokens=10, calls=1), 0.1)
        led.check(completion_tokens=10)
        with pytest.raises(BudgetExceeded, match="token budget"):
            led.check(completion_tokens=11)


def test_execute_events_count_executions_and_seconds_but_no_tokens() -> None:
    led = Ledger()
    led.record("generate", Usage(5, 0, 10, 1), 0.5)
    led.record("execute", Usage(), 0.25, "tests:visible", executions=3, isolation="bwrap")
    led.record("execute", Usage(), 0.5, "behaviour", executions=2, isolation="unisolated")
    led.record("execute", Usage(), 0.5, "behaviour", executions=1, isolation="bwrap")
    assert led.executions() == 6 and led.seconds("execute") == 1.25
    assert led.isolation() == {"bwrap": 4, "unisolated": 2}
    assert led.events[2].isolation == "unisolated"
    assert led.total() == Usage(5, 0, 10, 1)
    with pytest.raises(ValueError, match="executions"):
        led.record("execute", Usage(), 0.1, executions=-1, isolation="bwrap")
    with pytest.raises(ValueError, match="which isolation mode"):
        led.record("execute", Usage(), 0.1, executions=1)


def test_a_total_token_budget_counts_the_calls_prompt_before_it_runs():
    led = Ledger()
    assert not led.limits_total_tokens
    with led.budget(total_tokens=100):
        assert led.limits_total_tokens
        led.record("generate", Usage(prompt_tokens=50, completion_tokens=10, calls=1), 0.1)
        led.check(completion_tokens=20, prompt_tokens=20)  # 60 + 40 = 100: fits exactly
        with pytest.raises(BudgetExceeded, match=r"need 41 more \(21 prompt, 20 generated\)"):
            led.check(completion_tokens=20, prompt_tokens=21)
    with led.budget(completion_tokens=30):
        assert not led.limits_total_tokens
        led.check(completion_tokens=30, prompt_tokens=10**6)  # prompts are not generated
