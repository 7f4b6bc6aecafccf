"""Tokens to reach a reference accuracy, interpolated along curves, by hand."""

from __future__ import annotations

from ponder.analysis.curves import CurvePoint
from ponder.analysis.efficiency import Reference, efficiency, tokens_to_reach


def curve(*points: tuple[float, float]) -> list[CurvePoint]:
    return [
        CurvePoint(
            n=i + 1, accuracy=a, ci_low=a, ci_high=a, tokens=t, completion_tokens=t, problems=10
        )
        for i, (a, t) in enumerate(points)
    ]


def test_interpolates_between_the_points_around_the_target() -> None:
    c = curve((0.5, 100), (0.625, 200), (0.875, 400))
    # 0.75 lies halfway from 0.625 (200 tokens) to 0.875 (400 tokens)
    assert tokens_to_reach(c, 0.75) == 300.0
    assert tokens_to_reach(c, 0.625) == 200.0
    # already reached at the first point: its tokens, no extrapolation below it
    assert tokens_to_reach(c, 0.25) == 100.0
    assert tokens_to_reach(c, 0.9) is None
    # a curve that dips: the first crossing counts (a quarter of the way from 10 to 50)
    assert tokens_to_reach(curve((0.5, 10), (1.0, 50), (0.5, 60), (1.0, 70)), 0.625) == 20.0


def test_ratio_to_the_reference_and_not_reached() -> None:
    ref = Reference("majority n=8", accuracy=0.75, tokens=600.0, n=8)
    got = efficiency("optimal", curve((0.5, 100), (0.625, 200), (0.875, 400)), ref)
    assert (got.tokens, got.ratio, got.reached) == (300.0, 0.5, True)
    missed = efficiency("single", curve((0.4, 50)), ref)
    assert (missed.tokens, missed.ratio, missed.reached) == (None, None, False)
    assert missed.to_dict() == {"label": "single", "tokens": None, "ratio": None}
    free = efficiency("x", curve((0.9, 0.0)), Reference("r", 0.5, 0.0, 1))
    assert free.tokens == 0.0 and free.ratio is None
