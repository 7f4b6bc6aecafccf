"""Adaptive stopping: adaptive-consistency, ESC and DeepConf on scripted engines, with
stopping points computed by hand."""

import itertools
import math
from fractions import Fraction

import httpx
import pytest
from _boxed import PROBLEM, BoxedTask

from ponder.cli import build_parser
from ponder.cli.args import strategy_options as _strategy_options
from ponder.core.budget import Ledger
from ponder.core.errors import CapabilityMissing, ConfigError
from ponder.core.types import Candidate, ConfidenceStop, GenRequest, Message, Usage
from ponder.engines.openai import OpenAIEngine
from ponder.engines.scripted import ScriptedEngine
from ponder.runs.replay import ReplayEngine, SampleBank
from ponder.strategies import Context, make_strategy
from ponder.strategies.stopping import beta_stop_probability, dirichlet_stop_probability


def ctx_for(engine, **kw):
    return Context(engine=engine, task=BoxedTask(), ledger=Ledger(), max_tokens=32, **kw)


def boxed(*answers):
    return [f"\\boxed{{{a}}}" if a is not None else "no answer" for a in answers]


# -- the stopping rules -----------------------------------------------------------------


def test_beta_rule_is_the_incomplete_beta_at_one_half():
    # P(X > 1/2) for X ~ Beta(v1 + 1, v2 + 1) = sum_{j <= v1} C(v1 + v2 + 1, j) / 2^(v1 + v2 + 1)
    assert beta_stop_probability(0, 0) == 0.5
    assert beta_stop_probability(1, 0) == 0.75
    assert beta_stop_probability(3, 0) == 1 - 0.5**4  # 15/16
    assert beta_stop_probability(2, 1) == 11 / 16  # (1 + 4 + 6) / 16
    assert beta_stop_probability(7, 1) == 502 / 512  # 1 - (9 + 1) / 512
    assert beta_stop_probability(1, 1) == 0.5
    # against a direct numerical integral of the Beta density
    v1, v2 = 5, 2
    x = [0.5 + (i + 0.5) / 200000 for i in range(100000)]
    dens = [t**v1 * (1 - t) ** v2 for t in x]
    integral = (
        sum(dens) / 200000 * math.factorial(v1 + v2 + 1) / (math.factorial(v1) * math.factorial(v2))
    )
    assert beta_stop_probability(v1, v2) == pytest.approx(integral, abs=1e-9)


def exact_dirichlet(counts):
    """P(G_1 > G_i for all i > 1), G_i ~ Gamma(counts_i + 1), by inclusion-exclusion
    over exact rationals: an independent check of the quadrature."""
    a = [c + 1 for c in counts]
    a1, rest = a[0], a[1:]
    total = Fraction(0)
    for k in range(len(rest) + 1):
        for subset in itertools.combinations(rest, k):
            poly = [Fraction(1)]
            for ai in subset:
                p = [Fraction(1, math.factorial(j)) for j in range(ai)]
                out = [Fraction(0)] * (len(poly) + len(p) - 1)
                for i, x in enumerate(poly):
                    for j, y in enumerate(p):
                        out[i + j] += x * y
                poly = out
            term = sum(
                q
                * Fraction(math.factorial(a1 - 1 + d), math.factorial(a1 - 1) * (1 + k) ** (a1 + d))
                for d, q in enumerate(poly)
            )
            total += (-1) ** k * term
    return float(total)


@pytest.mark.parametrize("counts", [(2, 1, 1), (1, 1, 1), (4, 4, 1), (5, 2, 1, 1), (9, 3, 2, 1, 1)])
def test_dirichlet_rule_matches_the_exact_probability(counts):
    assert dirichlet_stop_probability(counts) == pytest.approx(exact_dirichlet(counts), abs=1e-12)


def test_dirichlet_rule_with_one_or_two_answers_is_the_beta_rule():
    assert dirichlet_stop_probability([3]) == beta_stop_probability(3, 0)
    assert dirichlet_stop_probability([4, 2]) == beta_stop_probability(4, 2)
    # symmetric answers: each leads with probability 1/m
    assert dirichlet_stop_probability([1, 1, 1]) == pytest.approx(1 / 3, abs=1e-12)


# -- adaptive_consistency -------------------------------------------------------------


async def test_beta_rule_stops_at_the_hand_computed_sample():
    eng = ScriptedEngine(boxed(42, 42, 42, 42, 42))
    strategy = make_strategy("adaptive_consistency", {"batch": 1, "min_n": 1, "threshold": 0.9})
    res = await strategy(PROBLEM, ctx_for(eng, seed=0))
    # after 1, 2, 3 agreeing samples: 3/4, 7/8, 15/16 >= 0.9
    assert [h["p"] for h in res.meta["history"]] == [0.75, 0.875, 0.9375]
    assert res.meta["samples"] == 3 and len(res.candidates) == 3
    assert res.meta["stop_reason"] == "beta: P(majority stays) 0.9375 >= 0.9"
    assert res.answer == "42" and res.votes == {"42": 3.0}
    assert [r.n for r in eng.requests] == [1, 1, 1]
    # plain samples: the settings of the strategy, nothing a replay could not serve
    r = eng.requests[0]
    assert (r.temperature, r.top_p, r.stop, r.continuation) == (0.7, 0.95, (), "")
    assert not r.wants_logprobs and r.confidence_stop is None


async def test_default_beta_rule_in_batches_of_two():
    eng = ScriptedEngine(boxed(1, 2, 1, 1, 1, 1, 1, 1, 1, 1))
    ctx = ctx_for(eng)
    res = await make_strategy("adaptive_consistency", {})(PROBLEM, ctx)
    # (1,1): 1/2; (3,1): 26/32; (5,1): 120/128; (7,1): 502/512 >= 0.95
    assert [h["p"] for h in res.meta["history"]] == [0.5, 26 / 32, 120 / 128, 502 / 512]
    assert [h["samples"] for h in res.meta["history"]] == [2, 4, 6, 8]
    assert res.meta["history"][-1]["counts"] == {"1": 7.0, "2": 1.0}
    assert res.meta["samples"] == 8 and [r.n for r in eng.requests] == [2, 2, 2, 2]
    assert res.answer == "1"
    # the cost is the ledger's: four requests, each prefilling the prompt once
    assert res.usage == ctx.ledger.total()
    assert res.usage == sum((c.usage for c in res.candidates), Usage())
    assert res.usage.calls == 4 and res.usage.completion_tokens == 8


async def test_cap_reached_with_a_smaller_last_batch():
    eng = ScriptedEngine(boxed(1, 2))
    res = await make_strategy("adaptive_consistency", {"max_n": 5})(PROBLEM, ctx_for(eng))
    assert [r.n for r in eng.requests] == [2, 2, 1]
    assert res.meta["samples"] == 5 and res.meta["stop_reason"] == "cap reached"
    assert res.answer == "1" and res.votes == {"1": 3.0, "2": 2.0}


async def test_samples_without_an_answer_count_as_samples_not_votes():
    eng = ScriptedEngine(boxed(None, 7, None, 7, 7))
    strategy = make_strategy("adaptive_consistency", {"batch": 1, "min_n": 1, "threshold": 0.9})
    res = await strategy(PROBLEM, ctx_for(eng))
    assert [h["p"] for h in res.meta["history"]] == [0.0, 0.75, 0.75, 0.875, 0.9375]
    assert res.meta["samples"] == 5 and res.votes == {"7": 3.0}
    assert [c.answer for c in res.candidates] == [None, "7", None, "7", "7"]


async def test_no_answer_at_all_runs_to_the_cap():
    eng = ScriptedEngine(["nothing here"])
    res = await make_strategy("adaptive_consistency", {"max_n": 4})(PROBLEM, ctx_for(eng))
    assert res.answer is None and res.meta["stop_reason"] == "cap reached"
    assert res.meta["samples"] == 4


async def test_min_n_holds_the_majority_rule_back():
    eng = ScriptedEngine(boxed(5, None, 5, 5))
    options = {"rule": "majority", "threshold": 0.6, "batch": 1, "min_n": 3}
    res = await make_strategy("adaptive_consistency", options)(PROBLEM, ctx_for(eng))
    # shares of all samples drawn: 1, 1/2 (held back by min_n), 2/3 >= 0.6
    assert [h["p"] for h in res.meta["history"]] == [1.0, 0.5, pytest.approx(2 / 3)]
    assert res.meta["samples"] == 3
    assert res.meta["stop_reason"].startswith("majority: leader's share 0.6667 >= 0.6")


async def test_dirichlet_rule_stops_where_the_exact_probability_crosses():
    answers = [1, 2, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1]
    eng = ScriptedEngine(boxed(*answers))
    options = {"rule": "dirichlet", "batch": 1, "min_n": 1, "threshold": 0.9}
    res = await make_strategy("adaptive_consistency", options)(PROBLEM, ctx_for(eng))
    expected = []
    for k in range(1, len(answers) + 1):
        seen = answers[:k]
        counts = sorted((seen.count(a) for a in dict.fromkeys(seen)), reverse=True)
        p = (
            exact_dirichlet(counts)
            if len(counts) > 2
            else beta_stop_probability(counts[0], counts[1] if len(counts) > 1 else 0)
        )
        expected.append(p)
        if p >= 0.9:
            break
    # (1): 3/4, (1,1): 1/2, (1,1,1): 1/3, (2,1,1): 0.535, ..., (5,1,1): 0.888,
    # (6,1,1): 0.935 is the first >= 0.9
    assert len(expected) == 8 and expected[-1] == pytest.approx(0.9351236631865, abs=1e-12)
    assert [h["p"] for h in res.meta["history"]] == pytest.approx(expected, abs=1e-12)
    assert res.meta["samples"] == 8 and res.answer == "1"
    assert res.meta["stop_reason"] == "dirichlet: P(leader is most likely) 0.9351 >= 0.9"


@pytest.mark.parametrize(
    "options",
    [
        {"batch": 0},
        {"max_n": 0},
        {"min_n": 0},
        {"min_n": 20, "max_n": 16},
        {"threshold": 1.0},
        {"threshold": 0.0},
        {"rule": "entropy"},
        {"top_p": 0.0},
        {"temperature": -1.0},
    ],
)
def test_adaptive_consistency_rejects_bad_options(options):
    with pytest.raises(ConfigError, match=r"adaptive_consistency|top_p|temperature"):
        make_strategy("adaptive_consistency", options)


def test_cli_n_bounds_the_adaptive_strategies():
    for name in ("adaptive_consistency", "esc", "deepconf"):
        args = build_parser().parse_args(["run", "q", "--strategy", name, "--n", "6"])
        options = _strategy_options(args)
        assert options["max_n"] == 6 and "n" not in options
        assert make_strategy(name, options).max_n == 6


# -- replay ----------------------------------------------------------------------------


def bank_of(answers, prompt=6):
    cands = tuple(
        Candidate(text, None, Usage(prompt_tokens=prompt, completion_tokens=2, calls=1))
        for text in boxed(*answers)
    )
    return SampleBank.of(
        BoxedTask(), [(PROBLEM, cands)], temperature=0.7, top_p=0.95, max_tokens=32,
        model="bank-model",
    )  # fmt: skip


async def test_adaptive_consistency_replays_the_bank_in_order_and_stops_by_the_rule():
    answers = [1, 2, 1, 1, 1, 1, 1, 1, 2, 2]
    bank = bank_of(answers)
    replay = ReplayEngine(bank, BoxedTask())
    ctx = Context(engine=replay.for_problem(PROBLEM), task=BoxedTask(), max_tokens=32, seed=3)
    res = await make_strategy("adaptive_consistency", {})(PROBLEM, ctx)
    # the same counts as drawn live: the rule fires after 8 samples, (7, 1)
    assert res.meta["samples"] == 8
    assert res.meta["stop_reason"] == f"beta: P(majority stays) {502 / 512:.4f} >= 0.95"
    assert [c.text for c in res.candidates] == [c.text for c in bank.samples[PROBLEM.id][:8]]
    assert replay.stats.served == 8 and replay.stats.generated_requests == 0
    # each of the four requests charges the recorded prompt once
    assert res.usage == Usage(prompt_tokens=24, cached_tokens=24, completion_tokens=16, calls=4)


async def test_esc_replays_the_bank():
    bank = bank_of([1, 2, 1, 1, 3, 3, 3, 3, 1, 1])
    replay = ReplayEngine(bank, BoxedTask())
    ctx = Context(engine=replay.for_problem(PROBLEM), task=BoxedTask(), max_tokens=32)
    res = await make_strategy("esc", {"window": 4, "max_n": 10})(PROBLEM, ctx)
    assert res.meta["samples"] == 8 and replay.stats.served == 8
    # plurality over all drawn: 3 has four votes, 1 three
    assert res.answer == "3" and res.votes == {"1": 3.0, "2": 1.0, "3": 4.0}


# -- esc -------------------------------------------------------------------------------


async def test_esc_stops_at_the_first_agreeing_window():
    eng = ScriptedEngine(boxed(1, 2, 1, 1, 1, 1, 9, 9, 9))
    res = await make_strategy("esc", {"window": 3})(PROBLEM, ctx_for(eng))
    assert [r.n for r in eng.requests] == [3, 3]
    assert [h["agreed"] for h in res.meta["history"]] == [False, True]
    assert res.meta["history"][0]["answers"] == ["1", "2", "1"]
    assert res.meta["samples"] == 6 and res.meta["stop_reason"] == "window agreed on '1'"
    assert res.answer == "1" and res.votes == {"1": 5.0, "2": 1.0}


async def test_esc_windows_of_missing_answers_do_not_agree():
    eng = ScriptedEngine(boxed(None, None, 7, 7))
    res = await make_strategy("esc", {"window": 2})(PROBLEM, ctx_for(eng))
    assert res.meta["samples"] == 4 and res.answer == "7"
    assert [h["agreed"] for h in res.meta["history"]] == [False, True]


async def test_esc_cap_with_a_partial_last_window():
    # the last window (one sample) would "agree" with itself: it is not a full window
    eng = ScriptedEngine(boxed(1, 2))
    res = await make_strategy("esc", {"window": 2, "max_n": 5})(PROBLEM, ctx_for(eng))
    assert [r.n for r in eng.requests] == [2, 2, 1]
    assert res.meta["stop_reason"] == "cap reached" and res.meta["samples"] == 5


@pytest.mark.parametrize("options", [{"window": 0}, {"window": 5, "max_n": 4}, {"top_p": 2.0}])
def test_esc_rejects_bad_options(options):
    with pytest.raises(ConfigError):
        make_strategy("esc", options)


# -- confidence stops -------------------------------------------------------------------


def test_confidence_stop_cuts_at_the_first_full_window_below_threshold():
    rule = ConfidenceStop(window=2, threshold=2.5)
    assert rule.cut([3.0, 2.0, 2.0, 3.0]) == 3  # means 2.5 (not below), then 2.0
    assert rule.cut([3.0, 2.0, 3.0]) is None
    assert rule.cut([1.0]) is None  # the window never fills
    assert ConfidenceStop(window=1, threshold=2.0).cut([3.0, 1.9]) == 2
    with pytest.raises(ValueError, match="window"):
        ConfidenceStop(window=0, threshold=1.0)
    with pytest.raises(ValueError, match="finite"):
        ConfidenceStop(window=2, threshold=float("nan"))
    with pytest.raises(ValueError, match="top_logprobs"):
        GenRequest(prompt="x", confidence_stop=rule)


def conf_engine(table, **kw):
    """A scripted engine whose texts' tokens have the given DeepConf confidences.

    With top_logprobs=1 the scripted engine's one alternative has logprob lp - 1, so a
    token's confidence is 1 - lp: a confidence c is scripted as the logprob 1 - c.
    """
    return ScriptedEngine(list(table), logprob=lambda text: [1.0 - c for c in table[text]], **kw)


async def test_scripted_engine_stops_on_confidence_before_the_token_limit():
    eng = conf_engine({"a b c d e": [3.0, 2.0, 2.0, 1.0, 1.0]})
    rule = ConfidenceStop(window=2, threshold=2.5)
    request = GenRequest(prompt="p", top_logprobs=1, confidence_stop=rule, max_tokens=3)
    ((c,),) = await eng.generate([request])
    assert (c.text, c.finish_reason, c.usage.completion_tokens) == ("a b c", "confidence", 3)
    assert [t.confidence for t in c.logprobs] == pytest.approx([3.0, 2.0, 2.0])
    # the token limit comes first when it is reached before the window drops
    short = GenRequest(prompt="p", top_logprobs=1, confidence_stop=rule, max_tokens=2)
    ((c,),) = await eng.generate([short])
    assert (c.text, c.finish_reason) == ("a b", "length")


# -- deepconf -------------------------------------------------------------------------

# lowest group confidences with window 2: 2.0, 5.0, 2.5, 2.6 (its groups are 2.6, 2.6,
# 4.0: one weak stretch, though its mean token confidence is 3.3), 1.0
OFFLINE = {
    "a \\boxed{1}": [2.0, 2.0],
    "b \\boxed{2}": [5.0, 5.0],
    "c \\boxed{1}": [2.5, 2.5],
    "d e f \\boxed{1}": [4.0, 1.2, 4.0, 4.0],
    "g \\boxed{3}": [1.0, 1.0],
}


@pytest.mark.parametrize(
    ("keep", "voted", "answer", "votes"),
    [
        (0.4, [1, 3], "2", {"2": 5.0, "1": 2.6}),  # DeepConf-low-like: two most confident
        (0.6, [1, 2, 3], "1", {"2": 5.0, "1": 5.1}),
        (1.0, [0, 1, 2, 3, 4], "1", {"1": 7.1, "2": 5.0, "3": 1.0}),  # every trace votes
    ],
)
async def test_deepconf_offline_keeps_the_most_confident_and_weights_by_confidence(
    keep, voted, answer, votes
):
    eng = conf_engine(OFFLINE)
    options = {"max_n": 5, "keep": keep, "window": 2, "top_logprobs": 1}
    res = await make_strategy("deepconf", options)(PROBLEM, ctx_for(eng))
    assert [c.score for c in res.candidates] == pytest.approx([2.0, 5.0, 2.5, 2.6, 1.0])
    assert res.meta["voted"] == voted
    assert res.answer == answer and res.votes == pytest.approx(votes)
    assert res.meta["threshold"] == pytest.approx(min(res.candidates[i].score for i in voted))
    (r,) = eng.requests
    assert (r.n, r.top_logprobs, r.confidence_stop) == (5, 1, None)


ONLINE = {
    # warm-up: confidences 3, 1, 4, 2; the median (keep=0.5) is 2.5
    "w0 \\boxed{1}": [3.0, 3.0],
    "w1 \\boxed{2}": [1.0, 1.0],
    "w2 \\boxed{2}": [4.0, 4.0],
    "w3 \\boxed{3}": [2.0, 2.0],
    # cut after "e0 f g": its window means are 2.5 (not below 2.5), then 2.0
    "e0 f g h \\boxed{1}": [3.0, 2.0, 2.0, 3.0, 3.0],
    # shorter than a window, so never cut, but its confidence 1.0 is below 2.5
    "\\boxed{1}": [1.0],
    "e2 \\boxed{2}": [3.0, 3.0],
    "e3 \\boxed{2}": [5.0, 5.0],
}


def online_options(**kw):
    return {
        "online": True,
        "warmup": 4,
        "keep": 0.5,
        "window": 2,
        "top_logprobs": 1,
        "batch": 2,
        "consensus": 0.75,
        "max_n": 12,
        **kw,
    }


async def test_deepconf_online_threshold_early_stops_and_consensus():
    eng = conf_engine(ONLINE)
    ctx = ctx_for(eng)
    res = await make_strategy("deepconf", online_options())(PROBLEM, ctx)
    meta = res.meta
    assert meta["threshold"] == 2.5 and meta["warmup_confidences"] == [3.0, 1.0, 4.0, 2.0]
    # warm-up voters: w0 ("1", 3) and w2 ("2", 4): consensus 4/7, go on;
    # batch 1: e0 cut, the short trace filtered; batch 2: "2" gets 3 + 5: 12/15 = 0.8
    assert [h["samples"] for h in meta["history"]] == [4, 6, 8]
    assert [h["stopped"] for h in meta["history"]] == [0, 1, 0]
    assert [h["consensus"] for h in meta["history"]] == [None, 4 / 7, 0.8]
    assert meta["stop_reason"] == "consensus 0.8000 >= 0.75"
    assert meta["samples"] == 8 and meta["voted"] == [0, 2, 6, 7]
    assert meta["stopped_early"] == 1 and meta["filtered"] == 1
    assert res.answer == "2" and res.votes == {"1": 3.0, "2": 12.0}
    cut = res.candidates[4]
    assert (cut.text, cut.finish_reason, cut.answer) == ("e0 f g", "confidence", None)
    assert cut.usage.completion_tokens == 3 and meta["stopped_tokens"] == 3
    assert cut.score == pytest.approx(2.0)
    # warm-up without a stop, then every request with the warm-up's threshold
    assert [r.n for r in eng.requests] == [4, 2, 2]
    assert eng.requests[0].confidence_stop is None
    assert {r.confidence_stop for r in eng.requests[1:]} == {ConfidenceStop(2, 2.5)}
    assert res.usage == ctx.ledger.total()
    # warm-up 4 x 2 tokens, then the cut trace 3, the short one 1, two more of 2
    assert meta["completion_tokens"] == res.usage.completion_tokens == 8 + 3 + 1 + 2 * 2


async def test_deepconf_online_runs_to_the_cap_without_consensus():
    eng = conf_engine(ONLINE)
    options = online_options(consensus=0.95, max_n=7)
    res = await make_strategy("deepconf", options)(PROBLEM, ctx_for(eng))
    assert [r.n for r in eng.requests] == [4, 2, 1]
    assert res.meta["stop_reason"] == "cap reached" and res.meta["samples"] == 7
    assert res.answer == "2" and res.votes == {"1": 3.0, "2": 7.0}


async def test_deepconf_online_with_a_fixed_threshold_draws_no_warmup():
    eng = conf_engine(ONLINE)
    options = online_options(threshold=2.5)
    res = await make_strategy("deepconf", options)(PROBLEM, ctx_for(eng))
    # w0 (3.0) votes; w1's full window of 1.0 is below 2.5, so it is cut at its last token
    # (its answer is written but does not vote); w0 alone is a consensus of 1
    assert [r.n for r in eng.requests] == [2]
    assert eng.requests[0].confidence_stop == ConfidenceStop(2, 2.5)
    assert [c.finish_reason for c in res.candidates] == ["stop", "confidence"]
    assert res.candidates[1].answer == "2" and res.votes == {"1": 3.0}
    assert res.meta["stopped_early"] == 1 and res.meta["warmup_confidences"] == []
    assert res.meta["stop_reason"] == "consensus 1.0000 >= 0.75"


async def test_deepconf_online_needs_an_engine_that_stops_on_confidence():
    eng = conf_engine(ONLINE, confidence_stop=False)
    with pytest.raises(CapabilityMissing, match="confidence drops"):
        await make_strategy("deepconf", online_options())(PROBLEM, ctx_for(eng))
    assert len(eng.requests) == 1  # the warm-up ran; the first stopping request did not
    eng = ScriptedEngine(["\\boxed{1}"], supports_logprobs=False)
    with pytest.raises(CapabilityMissing, match="logprobs"):
        await make_strategy("deepconf", {})(PROBLEM, ctx_for(eng))


async def test_openai_engine_refuses_a_confidence_stop():
    def never(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request may be sent")

    eng = OpenAIEngine("m", base_url="http://127.0.0.1:9/v1", transport=httpx.MockTransport(never))
    assert not eng.capabilities.confidence_stop
    request = GenRequest(
        messages=(Message("user", "hi"),),
        top_logprobs=5,
        confidence_stop=ConfidenceStop(window=8, threshold=1.0),
    )
    with pytest.raises(CapabilityMissing, match="confidence"):
        await eng.generate([request])
    await eng.aclose()


@pytest.mark.parametrize(
    "options",
    [
        {"keep": 0.0},
        {"keep": 1.5},
        {"window": 0},
        {"top_logprobs": 0},
        {"batch": 0},
        {"warmup": 0},
        {"warmup": 20, "max_n": 16},
        {"consensus": 0.0},
        {"consensus": 1.2},
        {"threshold": -1.0},
        {"threshold": 2.0},  # a fixed threshold without online
    ],
)
def test_deepconf_rejects_bad_options(options):
    with pytest.raises(ConfigError, match="deepconf"):
        make_strategy("deepconf", options)
