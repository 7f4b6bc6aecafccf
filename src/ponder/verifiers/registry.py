"""Scorers and verifiers by name, as the CLI and strategy configs spell them.

A spec is ``NAME[:ARG][,KEY=VALUE...]``:

- ``logprob`` (= ``logprob:mean``), ``logprob:lowest_group[:WINDOW]``: confidence from
  the sample's own token logprobs (free);
- ``judge``: the generating model asked whether a whole solution is right;
- ``judge:step``: the same judge rating each step given the ones before it (a process
  verifier);
- ``probe:PATH``: a probe verifier trained with ``ponder verifier train``
  (``model_check=warn|ignore`` accepts features from a model of another name);
- ``hfprm:MODEL``: a Hugging Face process reward model (``style=qwen`` or ``shepherd``,
  ``device=cpu|cuda|auto``, ``dtype=auto|bfloat16|...``, ``trust_remote_code=true`` to
  run the checkpoint's own code), for GPU users;
- ``combined:PATH``: a combined verifier (``ponder.verifiers.combined``), a logistic
  model over the sample's token-confidence features from its own logprobs (free; the
  samples are drawn with the model's ``top_k`` alternatives per token); as search's
  process verifier it scores each partial solution from the logprobs of its steps;
- ``hidden:PATH``: a hidden-state probe (``ponder.verifiers.hidden_probe``, written by
  ``ponder bank select --save-probe``), a logistic model over the sample's final-layer
  hidden states (and, joint, its token-confidence features), read while the sample is
  drawn (free; embedded engine only); as search's process verifier it scores each
  partial solution from the hidden states (and logprobs) its steps were drawn with;
- ``tests:visible``: code problems only; each candidate run in the sandbox on the tests
  its prompt shows (the docstring's examples), scored by the share it passes.

Process verifiers take ``agg=last|min|prod|mean`` (how step scores become one score) and
``seg=blank|numbered|lines`` (how a solution is cut into steps).
"""

from __future__ import annotations

from ponder.core.context import Scorer
from ponder.core.errors import ConfigError
from ponder.verifiers.confidence import ConfidenceScorer
from ponder.verifiers.judge import JudgeScorer
from ponder.verifiers.process import ProcessVerifier
from ponder.verifiers.steps import check_aggregation, check_segmentation

SCORER_NAMES = (
    "logprob",
    "logprob:mean",
    "logprob:lowest_group",
    "judge",
    "judge:step",
    "probe:PATH",
    "hfprm:MODEL",
    "combined:PATH",
    "hidden:PATH",
    "tests:visible",
)


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``"probe:x.npz,agg=min"`` -> ``("probe:x.npz", {"agg": "min"})``."""
    head, *rest = spec.split(",")
    options: dict[str, str] = {}
    for item in rest:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"bad option {item!r} in verifier spec {spec!r}; use KEY=VALUE")
        options[key.strip()] = value.strip()
    return head.strip(), options


def make_scorer(spec: str, *, segmentation: str = "blank", aggregation: str = "last") -> Scorer:
    """Build a scorer or verifier from its spec (see the module doc).

    ``segmentation`` and ``aggregation`` are the defaults for process verifiers; the
    spec's ``seg=`` and ``agg=`` override them.
    """
    head, options = parse_spec(spec)
    seg_given = "seg" in options
    seg = check_segmentation(options.pop("seg", segmentation))
    agg = check_aggregation(options.pop("agg", aggregation))
    name, _, arg = head.partition(":")
    scorer: Scorer | None = None
    if name == "logprob":
        method, _, window = arg.partition(":")
        if method in ("", "mean") and not window:
            scorer = ConfidenceScorer("mean")
        elif method == "lowest_group":
            try:
                scorer = ConfidenceScorer("lowest_group", int(window) if window else 64)
            except ValueError:
                raise ConfigError(f"bad window in scorer {spec!r}") from None
    elif name == "judge" and not arg:
        scorer = JudgeScorer()
    elif name == "judge" and arg == "step":
        from ponder.verifiers.judge import StepJudgeVerifier

        scorer = StepJudgeVerifier(segmentation=seg, aggregation=agg)
    elif name == "probe" and arg:
        from ponder.verifiers.probe import ProbeVerifier

        check = options.pop("model_check", "error")
        if check not in ("error", "warn", "ignore"):
            raise ConfigError(f"model_check must be error, warn or ignore, got {check!r}")
        scorer = ProbeVerifier.load(
            arg,
            # a probe keeps the segmentation it was trained with unless the spec says
            segmentation=seg if seg_given else None,
            aggregation=agg,
            model_check=check,  # type: ignore[arg-type]
        )
    elif name == "hfprm" and arg:
        from ponder.verifiers.hf_prm import HFPRMVerifier

        scorer = HFPRMVerifier(
            arg,
            style=options.pop("style", "qwen"),
            device=options.pop("device", "cpu"),
            dtype=options.pop("dtype", "auto"),
            trust_remote_code=options.pop("trust_remote_code", "false").lower() == "true",
            segmentation=seg,
            aggregation=agg,
        )
    elif name == "combined" and arg:
        from ponder.verifiers.combined import CombinedScorer

        scorer = CombinedScorer.load(arg)
    elif name == "hidden" and arg:
        from ponder.verifiers.hidden_probe import HiddenProbeScorer

        scorer = HiddenProbeScorer.load(arg)
    elif name == "tests" and arg == "visible":
        from ponder.verifiers.code_exec import ExecutionVerifier

        scorer = ExecutionVerifier()
    if scorer is None:
        raise ConfigError(f"unknown scorer {spec!r}; choose from {', '.join(SCORER_NAMES)}")
    if options:
        raise ConfigError(f"scorer {head!r} takes no option(s) {', '.join(sorted(options))}")
    return scorer


def make_process_verifier(
    spec: str, *, segmentation: str = "blank", aggregation: str = "last"
) -> ProcessVerifier:
    """A verifier that scores partial solutions step by step, as search needs."""
    head, options = parse_spec(spec)
    if head.startswith(("combined:", "hidden:")):
        return _logit_steps(spec, head, options, segmentation, aggregation)
    scorer = make_scorer(spec, segmentation=segmentation, aggregation=aggregation)
    if not isinstance(scorer, ProcessVerifier):
        raise ConfigError(
            f"{spec!r} scores whole solutions only; search needs a process verifier: "
            "judge:step, probe:PATH, hfprm:MODEL, combined:PATH or hidden:PATH"
        )
    return scorer


def _logit_steps(
    spec: str, head: str, options: dict[str, str], segmentation: str, aggregation: str
) -> ProcessVerifier:
    """The combined verifier or the hidden-state probe scoring a search's partial
    solutions from what its steps were drawn with (``combined:PATH``, ``hidden:PATH``)."""
    seg = check_segmentation(options.pop("seg", segmentation))
    agg = check_aggregation(options.pop("agg", aggregation))
    if options:
        raise ConfigError(f"verifier {spec!r} takes no option(s) {', '.join(sorted(options))}")
    kind, _, path = head.partition(":")
    if kind == "hidden":
        from ponder.verifiers.hidden_probe import HiddenProbe
        from ponder.verifiers.hidden_steps import HiddenStepVerifier

        return HiddenStepVerifier(HiddenProbe.load(path), path, seg, agg)
    from ponder.verifiers.combined import CombinedStepVerifier, CombinedVerifier

    return CombinedStepVerifier(CombinedVerifier.load(path), path, seg, agg)
