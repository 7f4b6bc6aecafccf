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

Such a store calibrates ``ponder optimize`` with the scored rules (best-of-n and weighted
votes at every n, ``--signal score`` for a pilot read by the verifier), and a policy
fitted on a scored train bank can be measured on a scored test bank
(``ponder optimize --test``).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from ponder.core.errors import ConfigError
from ponder.runs.store import Record, RunStore
from ponder.strategies.voting import weighted_vote
from ponder.verifiers.combined import CombinedVerifier

__all__ = ["score_bank"]

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


def score_bank(
    bank: str | Path, verifier_path: str | Path, out: str | Path, *, cross_fit: bool = False
) -> int:
    """Write ``bank`` scored by the combined verifier at ``verifier_path`` (or, with
    ``cross_fit``, by out-of-fold verifiers) to the new store ``out``; returns the records
    written. ``ConfigError`` for a bank that is not a sampling run, a sample without
    features, or an ``out`` that exists."""
    verifier = CombinedVerifier.load(verifier_path)
    out = Path(out)
    if out.exists():
        raise ConfigError(f"{out} exists; score_bank writes a new store")
    with RunStore(bank, create=False) as store:
        config = store.config()
        records = store.records(include_errors=False)
        features = store.features()
        problems = store.problem_fingerprints()
    if config is None:
        raise ConfigError(f"{bank} holds no run (no configuration)")
    strategy = dict(config.get("strategy", {}))
    if strategy.get("name") not in SAMPLING:
        raise ConfigError(
            f"{bank} is a {strategy.get('name')!r} run; only sampling runs "
            f"({', '.join(SAMPLING)}) can be scored"
        )
    options = {**strategy.get("options", {}), "scorer": f"combined:{verifier_path}"}
    new_config = {
        **config,
        "strategy": {"name": "weighted_majority", "options": options},
        "scored": {
            "from": str(bank),
            "verifier": str(verifier_path),
            "scores": "cross-fitted, 5 folds by problem" if cross_fit else "the verifier's",
        },
    }
    folds = _cross_fitted(bank) if cross_fit else {}
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
            probs = [verifier.probability(own[i]) for i in range(len(record.candidates))]
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
    return len(scored)


def _cross_fitted(bank: str | Path) -> dict[str, list[float]]:
    from ponder.analysis.selection import cross_fit_combined, load_bank

    try:
        loaded = load_bank(bank)
        scores = cross_fit_combined(loaded)
    except ValueError as e:
        raise ConfigError(f"{bank}: {e}") from e
    return {pid: [float(x) for x in scores[i]] for i, pid in enumerate(loaded.problem_ids)}
