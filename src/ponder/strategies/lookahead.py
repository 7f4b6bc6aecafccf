"""``lookahead``: beam search where a candidate step is scored at the end of a greedy
rollout ``lookahead`` steps further (Snell et al. 2024, section 5); the rollout's
tokens count, its steps are dropped. See ``ponder.strategies.beam_search``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ponder.strategies.base import register
from ponder.strategies.beam_search import BeamSearch


@register("lookahead")
@dataclass(frozen=True)
class LookaheadSearch(BeamSearch):
    """Beam search scoring each step after a greedy rollout ``lookahead`` steps on."""

    lookahead: int = 2
