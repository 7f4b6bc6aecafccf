"""The hidden-state probe as search's process verifier (``--verifier hidden:PATH``).

A search (beam search, DVTS, lookahead, MCTS) draws every step with its final hidden
states when its verifier asks (``ProcessVerifier.step_hidden``) and, for a joint probe,
with the ``top_k`` alternatives per token its features need. A partial solution is then
scored by the probe (``ponder.verifiers.hidden_probe``) from the states of the steps
generated so far, pooled (``strategies.search.Tree.hidden_states``), and, joint, the
features of their tokens: nothing is generated to score it. The probe was fitted on
whole samples, so on a prefix it reads a shorter trace than it was fitted on, as the
combined verifier does (``ponder.verifiers.combined``). As an outcome scorer it scores a
whole completion as ``HiddenProbeScorer`` does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ponder.core.context import Context
from ponder.core.errors import CapabilityMissing
from ponder.core.types import Completion, HiddenStates, Problem, Score, TokenLogprob
from ponder.verifiers.features import sample_features
from ponder.verifiers.hidden_probe import HiddenProbe, HiddenProbeScorer
from ponder.verifiers.process import Path as StepPath
from ponder.verifiers.process import PrefixVerifier
from ponder.verifiers.steps import Aggregation, Segmentation

__all__ = ["HiddenStepVerifier"]

_Key = tuple[str, StepPath]


class HiddenStepVerifier(PrefixVerifier):
    """A ``HiddenProbe`` scoring the prefixes a search generates from the hidden states
    (and, joint, the logprobs) its steps were drawn with. A prefix it was not handed is
    ``CapabilityMissing``."""

    def __init__(
        self,
        probe: HiddenProbe,
        source: str = "",
        segmentation: Segmentation = "blank",
        aggregation: Aggregation = "last",
    ) -> None:
        super().__init__(segmentation, aggregation)
        self.whole = HiddenProbeScorer(probe, source)
        self._hidden: dict[_Key, HiddenStates | None] = {}
        self._logprobs: dict[_Key, tuple[TokenLogprob, ...]] = {}

    @property
    def name(self) -> str:
        return self.whole.name

    @property
    def needs_logprobs(self) -> bool:
        return self.whole.needs_logprobs

    @property
    def sample_top_logprobs(self) -> int:
        return self.whole.sample_top_logprobs

    @property
    def sample_hidden(self) -> bool:
        return True

    @property
    def step_top_logprobs(self) -> int:
        return self.whole.probe.top_k if self.whole.probe.joint else 0

    @property
    def step_hidden(self) -> bool:
        return True

    def observe_prefix(
        self, problem: Problem, path: StepPath, logprobs: Sequence[TokenLogprob]
    ) -> None:
        # a prefix never changes once generated: the first report stands
        self._logprobs.setdefault((problem.question, tuple(path)), tuple(logprobs))

    def observe_prefix_hidden(
        self, problem: Problem, path: StepPath, hidden: HiddenStates | None
    ) -> None:
        self._hidden.setdefault((problem.question, tuple(path)), hidden)

    def _prefix_score(self, problem: Problem, prefix: StepPath) -> float:
        key = (problem.question, prefix)
        if key not in self._hidden:
            raise CapabilityMissing(
                f"verifier {self.name} scores a partial solution from the hidden states its "
                "steps were drawn with, and was not given them; it scores the steps of a "
                "search (beam_search, dvts, lookahead, mcts), not given text"
            )
        probe = self.whole.probe
        states = self._hidden[key]
        hidden = None if states is None else probe.projection.project(states)
        features: Mapping[str, float] = {}
        if probe.joint:
            features = sample_features(self._logprobs.get(key, ()), window=probe.window)
        return float(probe.probabilities(probe.row(hidden, features)[None])[0])

    async def score(
        self, problem: Problem, completions: Sequence[Completion], ctx: Context
    ) -> list[Score]:
        return await self.whole.score(problem, completions, ctx)
