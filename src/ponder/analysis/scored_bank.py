"""A bank scored by the combined verifier: the same samples, as a weighted run's store.

A majority bank whose samples have features (``ponder bank features``) holds all that a
``weighted_majority`` run with ``--scorer combined:PATH`` would have recorded except the
scores: that run draws the same samples (the scorer reads their own logprobs, so it
spends no token) and scores each with the verifier. ``score_bank`` writes that run's
store: the configuration with strategy ``weighted_majority`` and the scorer's spec, each
candidate's ``score`` the verifier's probability from the stored features, and each
record's answer, votes and grade those of the weighted vote over all its samples (every
distinct answer is already graded in the bank). Nothing else changes: problems, their
fingerprints, tokens and features are copied.

With ``cross_fit``, each sample's score comes instead from a verifier of the same form
fitted on the bank's other problems (5 folds by problem, ``selection.cross_fit_combined``),
so that a train bank's scores are out of fold, as a new problem's would be; the
configuration records this under ``scored``.

The verifier may also be a hidden-state probe (``ponder bank select --save-probe``,
``--scorer hidden:PATH``), on a bank whose samples have hidden states as well; its
scores come from the stored projected states (and, for a joint probe, the features),
cross-fitted the same way with ``cross_fit``, and the hidden states are copied too.

Such a store calibrates ``ponder optimize`` with the scored rules (best-of-n and weighted
votes at every n, ``--signal score`` for a pilot read by the verifier), and a policy
fitted on a scored train bank can be measured on a scored test bank
(``ponder optimize --test``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ponder.core.errors import ConfigError
from ponder.runs.store import Record, RunStore
from ponder.strategies.voting import weighted_vote
from ponder.verifiers.combined import CombinedVerifier, read_json_file
from ponder.verifiers.hidden import SampleHidden
from ponder.verifiers.hidden_probe import FORMAT as PROBE_FORMAT
from ponder.verifiers.hidden_probe import HiddenProbe

__all__ = ["load_verifier", "score_bank"]

SAMPLING = ("majority", "weighted_majority", "best_of_n")


def _rescored(record: Record, probs: list[float]) -> Record:
    cands = tuple(
        dataclasses.replace(c, score=p) for c, p in zip(record.candidates, probs, strict=True)
    )
    answer, votes = weighted_vote([c.answer for c in cands], probs)
    correct = bool(record.answer_correct.get(answer, False)) if answer is not None else False
    return dataclasses.replace(
        record, candidates=cands, answer=answer, votes=votes, correct=correct
    )


Verifier = CombinedVerifier | HiddenProbe


def load_verifier(path: str | Path) -> Verifier:
    """The combined verifier or hidden-state probe stored at ``path`` (by its format)."""
    data = read_json_file(path, "verifier")
    if isinstance(data, dict) and data.get("format") == PROBE_FORMAT:
        return HiddenProbe.from_dict(data)
    return CombinedVerifier.from_dict(data)


def _probabilities(
    verifier: Verifier,
    record: Record,
    own: Mapping[int, Mapping[str, float]],
    hidden: Mapping[int, SampleHidden],
    bank: str | Path,
) -> list[float]:
    """The verifier's probability for each of the record's samples."""
    n = len(record.candidates)
    if isinstance(verifier, CombinedVerifier):
        return [verifier.probability(own[i]) for i in range(n)]
    missing = [i for i in range(n) if i not in hidden]
    if missing:
        raise ConfigError(
            f"{bank}: problem {record.problem_id!r} has samples without hidden states "
            f"({missing}); run `ponder bank features --hidden` on it first"
        )
    rows = np.stack([verifier.row(hidden[i], own[i]) for i in range(n)])
    return [float(x) for x in verifier.probabilities(rows)]


def score_bank(
    bank: str | Path, verifier_path: str | Path, out: str | Path, *, cross_fit: bool = False
) -> int:
    """Write ``bank`` scored by the combined verifier or hidden-state probe at
    ``verifier_path`` (or, with ``cross_fit``, by out-of-fold ones of the same form) to
    the new store ``out``; returns the records written. ``ConfigError`` for a bank that
    is not a sampling run, a sample without features (or hidden states, for a probe),
    or an ``out`` that exists."""
    verifier = load_verifier(verifier_path)
    out = Path(out)
    if out.exists():
        raise ConfigError(f"{out} exists; score_bank writes a new store")
    with RunStore(bank, create=False) as store:
        config = store.config()
        records = store.records(include_errors=False)
        features = store.features()
        problems = store.problem_fingerprints()
        hidden = store.hidden()
        projection = store.hidden_projection()
    if isinstance(verifier, HiddenProbe) and projection != verifier.projection:
        raise ConfigError(
            f"{bank}'s hidden states were projected by {projection}, the probe's by "
            f"{verifier.projection}: they cannot be scored by it"
        )
    if config is None:
        raise ConfigError(f"{bank} holds no run (no configuration)")
    strategy = dict(config.get("strategy", {}))
    if strategy.get("name") not in SAMPLING:
        raise ConfigError(
            f"{bank} is a {strategy.get('name')!r} run; only sampling runs "
            f"({', '.join(SAMPLING)}) can be scored"
        )
    kind = "hidden" if isinstance(verifier, HiddenProbe) else "combined"
    options = {**strategy.get("options", {}), "scorer": f"{kind}:{verifier_path}"}
    new_config = {
        **config,
        "strategy": {"name": "weighted_majority", "options": options},
        "scored": {
            "from": str(bank),
            "verifier": str(verifier_path),
            "scores": "cross-fitted, 5 folds by problem" if cross_fit else "the verifier's",
        },
    }
    folds = _cross_fitted(bank, verifier) if cross_fit else {}
    scored = []
    for record in records:
        own = features.get(record.problem_id, {})
        missing = [i for i in range(len(record.candidates)) if i not in own]
        if missing:
            raise ConfigError(
                f"{bank}: problem {record.problem_id!r} has samples without features "
                f"({missing}); run `ponder bank features` on it first"
            )
        if cross_fit:
            probs = folds.get(record.problem_id, [])
            if len(probs) != len(record.candidates):
                raise ConfigError(
                    f"{bank}: problem {record.problem_id!r} has {len(record.candidates)} "
                    "samples, not the bank's common count; it cannot be cross-fitted"
                )
        else:
            own_hidden = hidden.get(record.problem_id, {})
            probs = _probabilities(verifier, record, own, own_hidden, bank)
        if any(math.isnan(p) for p in probs):
            raise ConfigError(f"{bank}: problem {record.problem_id!r} scored NaN")
        scored.append(_rescored(record, probs))
    with RunStore(out) as new:
        new.init_or_check(new_config)
        new.add_problem_fingerprints(problems)
        for record in scored:
            new.put(record)
            if record.problem_id in features:
                new.put_features(record.problem_id, features[record.problem_id])
            if projection is not None and hidden.get(record.problem_id):
                new.put_hidden(record.problem_id, hidden[record.problem_id], projection)
    return len(scored)


def _cross_fitted(bank: str | Path, verifier: Verifier) -> dict[str, list[float]]:
    from ponder.analysis import hidden_probe
    from ponder.analysis.selection import JOINT, PROBE, cross_fit_combined, load_bank

    try:
        loaded = load_bank(bank)
        if isinstance(verifier, CombinedVerifier):
            scores = cross_fit_combined(loaded)
        else:
            signal = JOINT if verifier.joint else PROBE
            oof = hidden_probe.cross_fit(
                loaded.signal_matrix(signal), loaded.right.reshape(-1), loaded.groups()
            )
            scores = oof.reshape(loaded.shape)
    except ValueError as e:
        raise ConfigError(f"{bank}: {e}") from e
    return {pid: [float(x) for x in scores[i]] for i, pid in enumerate(loaded.problem_ids)}
