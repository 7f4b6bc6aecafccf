import math

import pytest

from ponder.core.types import TokenLogprob
from ponder.grading.freeform import p_yes
from ponder.verifiers.confidence import lowest_group_confidence, mean_logprob_confidence


def tok(lp, alts):
    return TokenLogprob("t", lp, tuple(("a", a) for a in alts))


def test_mean_logprob_confidence_is_geometric_mean_probability():
    toks = [tok(math.log(0.5), []), tok(math.log(0.125), [])]
    assert mean_logprob_confidence(toks) == pytest.approx(0.25)
    assert mean_logprob_confidence([]) == 0.0


def test_lowest_group_finds_the_least_confident_window():
    peaked = [tok(-0.01, [-0.01, -5.0])] * 6  # confidence 2.505
    flat = [tok(-0.7, [-0.7, -0.7])] * 2  # confidence 0.7
    toks = peaked[:3] + flat + peaked[3:]
    assert lowest_group_confidence(toks, window=2) == pytest.approx(0.7)
    # a window longer than the trace falls back to the whole trace
    whole = (6 * 2.505 + 2 * 0.7) / 8
    assert lowest_group_confidence(toks, window=100) == pytest.approx(whole)


def test_p_yes_normalises_over_yes_and_no():
    first = TokenLogprob("Yes", math.log(0.6), ((" no", math.log(0.2)), ("maybe", -1.0)))
    assert p_yes(first) == pytest.approx(0.75)
    assert p_yes(TokenLogprob("hmm", -0.1, ())) == 0.5
