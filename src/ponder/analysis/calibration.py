"""Calibration: every configuration's outcome and tokens on the calibration problems.

The inputs of compute-optimal allocation (Snell et al. 2024, "Scaling LLM Test-Time
Compute Optimally can be More Effective than Scaling Model Parameters",
arXiv:2408.03314, section 3.2), read from eval stores: for each configuration a run
can stand for, whether it answers each calibration problem correctly and what it
costs there, alone and after the pilot that predicts the problem's difficulty
(``ponder.analysis.optimize`` fits the policy on them).

Inputs: calibration stores, runs of one task and one model over the same finished
problems (else ``ConfigError``).

Configurations.

- A ``majority``, ``best_of_n`` or ``weighted_majority`` run with N samples per problem
  gives, for every n = 1..N, the majority configuration and, when its candidates carry
  scores, the best_of_n and weighted_majority ones with the run's scorer (options: the
  run's temperature and top_p, ``n``, and ``scorer`` for the scored rules). Its
  outcome on a problem is the rule over the first n samples *in stored order*
  (``curves.prefix_outcomes``), not an average over orderings: the pilot that predicts
  the bin is the first k samples, and a configuration that reuses them must be judged
  on those same samples.
- A run of any other strategy gives one configuration: its own options, final answer
  and tokens. An ``optimal`` run cannot calibrate a policy.
- A configuration (strategy and options) met twice is kept once, from the first store
  in order; the pilot store comes first.

Pilot. The first k samples of the pilot store: ``pilot_from``, else the first store of
a sampling strategy (whose candidates carry scores, for the ``score`` signal). The
pilot store is a calibration store (added when not listed). Its configurations reuse
the pilot (the strategy draws the pilot first and then only samples k+1..n).

Stops (``stops``). Each stopping rule is replayed on the pilot run's samples in stored
order as a ``weighted_stop`` that reuses the pilot: unweighted (each sample one vote) and,
when the samples carry scores, weighted by the run's scorer. It starts from the k pilot
samples (its ``min_n`` is raised to k) and checks its rule after each sample, from the
k-th on (``ponder.strategies.stopping.vote_stop``, the live rule), stopping at the first
settled j or at the run's N; its outcome is the weighted vote of those j samples, T
their tokens (plus j * S(i) when weighted) and E the pilot's plus the samples after it
(and the scores the pilot did not pay for), as for a reusing rule at n = j.

Hybrids (``hybrid``). Each ``pal`` run among the stores, with the pilot run, gives the
``hybrid`` configurations (``ponder.strategies.hybrid``) that reuse the pilot: the
pilot run's first n samples (n = 1..N) and the pal run's first m programs (m = 1..M,
its n), one vote each, and, when the pilot run is scored, for each weight w of
``HybridSpec.weights``, each chain weighing its score and each program w. Its outcome is
that vote in stored order; T the chains' tokens (plus n * S(i) when weighted) plus the
first m programs' (prompt as charged, and generated); E the pilot's, the chains after
it (as a reusing rule at n) and the programs. The live ``optimal`` strategy draws them
so: the pilot's samples are the first chains, then the rest, then the programs.

Oracle. The store whose pass rates give the oracle difficulty bins that predicted
bins are checked against: ``oracle``, else the sampling store with the most samples
per problem (the first of equals).

Tokens, per problem i, counted as ``curves`` counts them (prefilled prompt plus
generated, plus the scoring tokens spread evenly over a run's samples, S(i) each):

- own tokens T_c(i): a sampling configuration at n: the prompt tokens charged for the
  first n samples, their generated tokens, and n * S(i) for the scored rules; any
  other: the record's total tokens. A uniform run of c costs T_c.
- pilot tokens P(i): the prompt tokens charged for the first k pilot samples, their
  generated tokens, and k * S(i) when the signal is ``score`` (the pilot is scored).
- policy tokens E_c(i), what the ``optimal`` strategy spends when it picks c:
  for a configuration that reuses the pilot, P(i), plus, when n > k, the second
  request for samples k+1..n (its prompt charge: the larger of those samples' stored
  prompt tokens and the first sample's; siblings of a native-n request show zero, as
  they shared one prefill that a new request pays again) and their generated tokens,
  plus S(i) times the samples still to score for the scored rules (max(n - k, 0) when
  the pilot was scored, else n); for any other configuration, P(i) + T_c(i).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ponder.analysis.curves import PrefixOutcomes, prefix_outcomes
from ponder.analysis.difficulty import pilot_signals
from ponder.core.errors import ConfigError
from ponder.runs.store import Record, RunStore
from ponder.strategies.optimal.policy import (
    HYBRID_STRATEGY,
    STOP_STRATEGY,
    Configuration,
    Pilot,
)
from ponder.strategies.optimal.signals import SIGNALS, Signal
from ponder.strategies.pal import ProgramAided
from ponder.strategies.stopping import GIVE_UP_AFTER, StopBy, check_vote_stop, vote_stop
from ponder.strategies.voting import SAMPLING_RULES, Method, weighted_vote

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

DEFAULT_PILOT = 4


@dataclass(frozen=True)
class StopSpec:
    """A stopping rule to offer the policy (``weighted_stop``'s settings): stop once the
    vote's leader holds ``tau`` of the weight (``by="share"``) or leads by ``tau``
    (``by="margin"``), from ``min_n`` samples on (at least the pilot's), or give up below a
    share ``give_up`` from ``give_up_after`` on."""

    by: StopBy
    tau: float
    min_n: int = 1
    give_up: float = 0.0
    give_up_after: int = GIVE_UP_AFTER

    def __post_init__(self) -> None:
        try:
            check_vote_stop(self.by, self.tau, self.min_n, self.give_up, self.give_up_after)
        except ValueError as e:
            raise ConfigError(f"stopping rule: {e}") from e


@dataclass(frozen=True)
class HybridSpec:
    """Offer the policy ``hybrid`` configurations (module docstring, Hybrids): every
    chain and program count, unweighted and with each program weight of ``weights``
    (only when the pilot run is scored)."""

    weights: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        bad = [w for w in self.weights if not w > 0]
        if bad:
            raise ConfigError(f"hybrid program weights must be positive, got {bad}")


_STRATEGY_OF_RULE: dict[Method, str] = {rule: name for name, rule in SAMPLING_RULES.items()}


@dataclass(frozen=True)
class CalibrationStore:
    """One calibration store: what it ran and how much of it there is."""

    path: str
    strategy: str
    options: Mapping[str, Any]
    problems: int
    samples: int | None
    scored: bool
    roles: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "strategy": self.strategy,
            "options": dict(self.options),
            "problems": self.problems,
            "samples": self.samples,
            "roles": list(self.roles),
        }


@dataclass(frozen=True)
class Calibration:
    """Every configuration's per-problem outcome and tokens on the calibration problems.

    Arrays are (configurations, problems) in ``configs`` and ``problem_ids`` order:
    ``correct``, ``policy_tokens`` (E) and ``own_tokens`` (T); ``signal`` and
    ``pilot_tokens`` (P) are per problem. ``records`` holds each store's finished
    records by path (the pilot and oracle stores' feed the difficulty report).
    """

    task: str
    model: str
    stores: tuple[CalibrationStore, ...]
    pilot: Pilot
    oracle: str
    problem_ids: tuple[str, ...]
    configs: tuple[Configuration, ...]
    correct: BoolArray
    policy_tokens: FloatArray
    own_tokens: FloatArray
    signal: FloatArray
    pilot_tokens: FloatArray
    records: Mapping[str, Sequence[Record]]

    def rows(self, ids: Sequence[str]) -> npt.NDArray[np.int64]:
        """Column indices of the given problem ids."""
        index = {p: i for i, p in enumerate(self.problem_ids)}
        return np.asarray([index[p] for p in ids], dtype=np.int64)


@dataclass(frozen=True)
class _Run:
    path: str
    config: dict[str, Any]
    records: list[Record]

    @property
    def strategy(self) -> str:
        s = self.config.get("strategy")
        return str(s.get("name", "?")) if isinstance(s, dict) else "?"

    @property
    def options(self) -> dict[str, Any]:
        s = self.config.get("strategy")
        opts = s.get("options") if isinstance(s, dict) else None
        return dict(opts) if isinstance(opts, dict) else {}

    @property
    def sampling(self) -> bool:
        return self.strategy in SAMPLING_RULES

    @property
    def samples(self) -> int:
        return min(len(r.candidates) for r in self.records)

    @property
    def scored(self) -> bool:
        return self.sampling and all(
            c.score is not None for r in self.records for c in r.candidates if c.answer is not None
        )

    @property
    def scorer(self) -> str | None:
        if self.strategy == "majority":
            return None
        scorer = self.options.get("scorer")
        return str(scorer) if scorer is not None else None


def _canonical(path: str | Path) -> str:
    return str(Path(path).resolve())


def _read(path: str | Path) -> _Run:
    with RunStore(path, create=False) as store:
        config = store.config()
        records = store.records(include_errors=False)
    if config is None:
        raise ConfigError(f"{path} holds no run configuration; it is not an eval store")
    if not records:
        raise ConfigError(f"calibration store {path} has no finished records")
    return _Run(str(path), config, records)


def _check_same_problems(runs: Sequence[_Run]) -> None:
    first = runs[0]
    for key in ("task", "model"):
        values = {str(r.config.get(key)) for r in runs}
        if len(values) > 1:
            listing = ", ".join(f"{r.path}: {r.config.get(key)!r}" for r in runs)
            raise ConfigError(
                f"calibration stores must come from one {key}; they differ ({listing})"
            )
    ids = {r.problem_id for r in first.records}
    for run in runs[1:]:
        other = {r.problem_id for r in run.records}
        if other != ids:
            only_first = sorted(ids - other)
            only_other = sorted(other - ids)
            detail = []
            if only_first:
                detail.append(f"{run.path} lacks {len(only_first)} (first: {only_first[0]!r})")
            if only_other:
                detail.append(f"{first.path} lacks {len(only_other)} (first: {only_other[0]!r})")
            raise ConfigError(
                f"calibration stores must hold the same finished problems: "
                f"{'; '.join(detail)}. Resume the runs that have errors, or pass stores "
                "of one problem set"
            )


def _outcomes(run: _Run, rule: Method, ids: Sequence[str]) -> PrefixOutcomes:
    try:
        out = prefix_outcomes(run.records, rule)
    except ValueError as e:
        raise ConfigError(f"calibration store {run.path}: {e}") from e
    order = {p: i for i, p in enumerate(out.problem_ids)}
    rows = np.asarray([order[p] for p in ids], dtype=np.int64)
    return PrefixOutcomes(
        problem_ids=tuple(ids),
        correct=out.correct[rows],
        prompt=out.prompt[rows],
        completion=out.completion[rows],
        scoring=out.scoring[rows],
    )


def _rules(run: _Run) -> list[Method]:
    return ["majority", "best_of_n", "weighted"] if run.scored else ["majority"]


def _sampling_options(run: _Run, rule: Method, n: int) -> dict[str, Any]:
    opts = {k: v for k, v in run.options.items() if k != "scorer"}
    opts["n"] = n
    if rule != "majority":
        opts["scorer"] = run.options.get("scorer")
    return opts


def _run_at(runs: Sequence[_Run], canonical: str) -> _Run:
    """The run read from the store at this resolved path (it is always among them)."""
    return next(r for r in runs if _canonical(r.path) == canonical)


def _pick_pilot(runs: Sequence[_Run], pilot_from: str | None, signal: Signal) -> _Run:
    if pilot_from is not None:
        run = _run_at(runs, pilot_from)
        if not run.sampling:
            raise ConfigError(
                f"the pilot store {run.path} holds a {run.strategy!r} run; the pilot needs a "
                f"run that samples independently ({', '.join(SAMPLING_RULES)})"
            )
        if signal == "score" and not run.scored:
            raise ConfigError(
                f"the score signal needs a pilot store whose samples carry scores; "
                f"{run.path} holds an unscored {run.strategy!r} run"
            )
        return run
    for run in runs:
        if run.sampling and (signal == "agreement" or run.scored):
            return run
    wanted = "a best_of_n or weighted_majority run" if signal == "score" else "a sampling run"
    raise ConfigError(
        f"no calibration store can give the pilot: the {signal} signal needs {wanted} "
        f"({', '.join(SAMPLING_RULES)})"
    )


def load_calibration(
    paths: Sequence[str | Path],
    *,
    pilot: int = DEFAULT_PILOT,
    signal: Signal = "agreement",
    pilot_from: str | Path | None = None,
    oracle: str | Path | None = None,
    stops: Sequence[StopSpec] = (),
    hybrid: HybridSpec | None = None,
) -> Calibration:
    """Read the stores and compute every configuration's outcomes (module docstring);
    ``stops`` adds stopping rules replayed on the pilot run, ``hybrid`` the votes of the
    pilot run's chains and each pal run's programs."""
    if signal not in SIGNALS:
        raise ConfigError(f"unknown difficulty signal {signal!r}; choose from {', '.join(SIGNALS)}")
    if pilot < 1:
        raise ConfigError(f"the pilot needs at least one sample, got {pilot}")
    runs = _read_stores(paths, pilot_from, oracle)
    pilot_run = _pick_pilot(runs, None if pilot_from is None else _canonical(pilot_from), signal)
    if pilot_run.samples < pilot:
        raise ConfigError(
            f"the pilot store {pilot_run.path} has {pilot_run.samples} samples per problem, "
            f"fewer than the pilot's {pilot}"
        )
    runs = [pilot_run, *(r for r in runs if r is not pilot_run)]
    oracle_run = _pick_oracle(runs, None if oracle is None else _canonical(oracle))
    ids = tuple(sorted(r.problem_id for r in pilot_run.records))

    base = _outcomes(pilot_run, "majority", ids)
    share = base.scoring if signal == "score" else np.zeros(len(ids))
    pilot_cost = base.prompt[:, pilot - 1] + base.completion[:, pilot - 1] + pilot * share
    signals = pilot_signals(pilot_run.records, signal, pilot)
    table = _ConfigTable()
    for run in runs:
        table.add_run(
            run, ids, pilot_cost, pilot=pilot if run is pilot_run else None, signal=signal
        )
    for spec in stops:
        table.add_stop(pilot_run, ids, pilot_cost, spec, pilot=pilot, signal=signal)
    if hybrid is not None:
        pal_runs = [r for r in runs if r.strategy == "pal"]
        if not pal_runs:
            raise ConfigError("hybrid configurations need a pal run among the stores")
        for pal_run in pal_runs:
            table.add_hybrid(
                pilot_run, pal_run, ids, pilot_cost, hybrid, pilot=pilot, signal=signal
            )
    _check_buildable(table.configs)
    return Calibration(
        task=str(pilot_run.config.get("task")),
        model=str(pilot_run.config.get("model")),
        stores=_stores(runs, pilot_run, oracle_run),
        pilot=Pilot(
            samples=pilot,
            temperature=float(pilot_run.options.get("temperature", 0.0)),
            top_p=float(pilot_run.options.get("top_p", 1.0)),
            signal=signal,
            scorer=pilot_run.scorer,
            store=pilot_run.path,
        ),
        oracle=oracle_run.path,
        problem_ids=ids,
        configs=tuple(table.configs),
        correct=np.stack(table.correct),
        policy_tokens=np.stack(table.policy),
        own_tokens=np.stack(table.own),
        signal=np.asarray([signals[p] for p in ids], dtype=np.float64),
        pilot_tokens=pilot_cost,
        records={r.path: r.records for r in runs},
    )


def _read_stores(
    paths: Sequence[str | Path], pilot_from: str | Path | None, oracle: str | Path | None
) -> list[_Run]:
    """The runs of the calibration stores, then of ``pilot_from`` and ``oracle`` when
    they are not among them; each store once, all on the same problems, none of them an
    ``optimal`` run."""
    names = [str(p) for p in paths]
    if not names:
        raise ConfigError("optimize needs at least one calibration store")
    canonical = [_canonical(n) for n in names]
    if len(set(canonical)) != len(canonical):
        twice = next(n for n, c in zip(names, canonical, strict=True) if canonical.count(c) > 1)
        raise ConfigError(f"calibration store {twice} is given twice")
    for extra in (pilot_from, oracle):
        if extra is not None and _canonical(extra) not in canonical:
            names.append(str(extra))
            canonical.append(_canonical(extra))
    runs = [_read(p) for p in names]
    _check_same_problems(runs)
    for run in runs:
        if run.strategy == "optimal":
            raise ConfigError(f"{run.path} holds an 'optimal' run, which cannot calibrate a policy")
    return runs


@dataclass
class _ConfigTable:
    """The configurations a calibration can choose from, each once (the first store
    that gives it wins), with per problem its correctness, the tokens a policy pays for
    it (pilot included) and its own tokens."""

    configs: list[Configuration] = field(default_factory=list)
    correct: list[BoolArray] = field(default_factory=list)
    policy: list[FloatArray] = field(default_factory=list)
    own: list[FloatArray] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)

    def add(self, config: Configuration, ok: BoolArray, e: FloatArray, t: FloatArray) -> None:
        if config.key in self.seen:
            return
        self.seen.add(config.key)
        self.configs.append(config)
        self.correct.append(ok)
        self.policy.append(e)
        self.own.append(t)

    def add_run(
        self,
        run: _Run,
        ids: Sequence[str],
        pilot_cost: FloatArray,
        *,
        pilot: int | None,
        signal: Signal,
    ) -> None:
        """The configurations ``run`` gives: itself, or for a sampling run every rule
        at every n. ``pilot`` (its samples) when ``run`` is the pilot's, whose samples
        a configuration reuses."""
        if not run.sampling:
            by_id = {r.problem_id: r for r in run.records}
            ok = np.asarray([by_id[p].correct for p in ids], dtype=np.bool_)
            t = np.asarray([by_id[p].usage.total_tokens for p in ids], dtype=np.float64)
            self.add(Configuration(run.strategy, run.options, run.path), ok, pilot_cost + t, t)
            return
        reuses = pilot is not None
        for rule in _rules(run):
            out = _outcomes(run, rule, ids)
            scored = rule != "majority"
            for n in range(1, out.samples + 1):
                t = out.tokens(n, scored=scored)
                if pilot is not None:
                    e = pilot_cost + _reuse_extra(out, n, pilot, scored, signal == "score")
                else:
                    e = pilot_cost + t
                config = Configuration(
                    _STRATEGY_OF_RULE[rule], _sampling_options(run, rule, n), run.path, reuses
                )
                self.add(config, out.correct[:, n - 1], e, t)

    def add_stop(
        self,
        run: _Run,
        ids: Sequence[str],
        pilot_cost: FloatArray,
        spec: StopSpec,
        *,
        pilot: int,
        signal: Signal,
    ) -> None:
        """``spec`` replayed on the pilot run in stored order, unweighted and, when its
        samples are scored, weighted by its scorer: a ``weighted_stop`` that starts from
        the pilot's ``pilot`` samples (its ``min_n`` raised to them) and checks its rule
        after each sample (module docstring, Stops)."""
        out = _outcomes(run, "majority", ids)
        by_id = {r.problem_id: r for r in run.records}
        scorers = [""] + ([run.scorer] if run.scored and run.scorer else [])
        for scorer in scorers:
            options: dict[str, Any] = {
                "max_n": out.samples,
                "batch": 1,
                "min_n": max(spec.min_n, pilot),
                "by": spec.by,
                "tau": spec.tau,
                "give_up": spec.give_up,
                "give_up_after": spec.give_up_after,
                "scorer": scorer,
                "temperature": float(run.options.get("temperature", 0.0)),
                "top_p": float(run.options.get("top_p", 1.0)),
            }
            ok = np.zeros(len(ids), dtype=np.bool_)
            t = np.zeros(len(ids), dtype=np.float64)
            e = np.zeros(len(ids), dtype=np.float64)
            for i, p in enumerate(ids):
                record = by_id[p]
                cands = record.candidates[: out.samples]
                answers = [c.answer for c in cands]
                weights = [1.0 if not scorer or c.score is None else c.score for c in cands]
                m = _stop_index(answers, weights, options, pilot)
                answer, _ = weighted_vote(answers[:m], [max(w, 0.0) for w in weights[:m]])
                ok[i] = answer is not None and bool(record.answer_correct.get(answer, False))
                t[i] = out.prompt[i, m - 1] + out.completion[i, m - 1]
                t[i] += m * out.scoring[i] if scorer else 0.0
                e[i] = pilot_cost[i] + _stop_extra(out, i, m, pilot, bool(scorer), signal)
            config = Configuration(STOP_STRATEGY, options, run.path, True)
            self.add(config, ok, e, t)

    def add_hybrid(
        self,
        run: _Run,
        pal_run: _Run,
        ids: Sequence[str],
        pilot_cost: FloatArray,
        spec: HybridSpec,
        *,
        pilot: int,
        signal: Signal,
    ) -> None:
        """The ``hybrid`` configurations of the pilot run's chains and ``pal_run``'s
        programs (module docstring, Hybrids)."""
        out = _outcomes(run, "majority", ids)
        m_all, program_cost = _programs(pal_run, ids)
        chains = {r.problem_id: r for r in run.records}
        programs = {r.problem_id: r for r in pal_run.records}
        # per problem: the chains, the programs, and every answer's grade in either run
        drawn = [
            (chains[p].candidates, programs[p].candidates,
             {**programs[p].answer_correct, **chains[p].answer_correct})
            for p in ids
        ]  # fmt: skip
        weights: list[float | None] = [None, *(spec.weights if run.scored else ())]
        common = {
            "temperature": float(run.options.get("temperature", 0.0)),
            "top_p": float(run.options.get("top_p", 1.0)),
            **_program_options(pal_run),
        }
        for n in range(1, out.samples + 1):
            for m in range(1, m_all + 1):
                for w in weights:
                    scored = w is not None
                    ok = np.zeros(len(ids), dtype=np.bool_)
                    for i, (cot_all, pal_all, graded) in enumerate(drawn):
                        cot, pal = cot_all[:n], pal_all[:m]
                        answers = [c.answer for c in (*cot, *pal)]
                        if w is None:
                            votes = [1.0] * len(answers)
                        else:
                            votes = [float(c.score or 0.0) for c in cot] + [w] * len(pal)
                        answer, _ = weighted_vote(answers, votes)
                        ok[i] = answer is not None and bool(graded.get(answer, False))
                    t = out.tokens(n, scored=scored) + program_cost[:, m - 1]
                    e = pilot_cost + _reuse_extra(out, n, pilot, scored, signal == "score")
                    e = e + program_cost[:, m - 1]
                    options: dict[str, Any] = {"n": n, "programs": m, **common}
                    if scored:
                        options.update(scorer=run.scorer, program_weight=w)
                    config = Configuration(HYBRID_STRATEGY, options, pal_run.path, True)
                    self.add(config, ok, e, t)


def _program_options(run: _Run) -> dict[str, Any]:
    """The pal run's program settings as ``hybrid`` options: its sampling temperature
    (greedy for one program, 0.7 for more, unless it set one), worked examples and
    sandbox."""
    known = {f.name for f in fields(ProgramAided)}
    try:
        pal = ProgramAided(**{k: v for k, v in run.options.items() if k in known})
    except (TypeError, ConfigError) as e:
        raise ConfigError(f"the pal run in {run.path} cannot be built again: {e}") from e
    return {
        "program_temperature": pal.sampling_temperature,
        "shots": pal.shots,
        "max_program_tokens": pal.max_program_tokens,
        "cpu_seconds": pal.cpu_seconds,
        "wall_seconds": pal.wall_seconds,
        "memory_mb": pal.memory_mb,
        "isolation": pal.isolation,
        "require_isolation": pal.require_isolation,
    }


def _programs(run: _Run, ids: Sequence[str]) -> tuple[int, FloatArray]:
    """M, the programs every problem of the pal run has, and (P, M) the cumulative
    tokens of its first m programs (prompt as charged, plus generated)."""
    by_id = {r.problem_id: r for r in run.records}
    m_all = int(run.options.get("n", 1))
    short = [p for p in ids if len(by_id[p].candidates) < m_all]
    if short:
        raise ConfigError(f"{run.path}: problem {short[0]!r} has fewer than {m_all} programs")
    cost = np.asarray(
        [[c.usage.prompt_tokens + c.usage.completion_tokens for c in by_id[p].candidates[:m_all]]
         for p in ids],
        dtype=np.float64,
    )  # fmt: skip
    return m_all, np.cumsum(cost, axis=1)


def _stop_index(
    answers: Sequence[str | None], weights: Sequence[float], options: Mapping[str, Any], k: int
) -> int:
    """How many samples a weighted stop that starts from the first ``k`` draws: the first
    j >= k at which ``vote_stop`` settles, else all of them."""
    n = len(answers)
    for j in range(min(k, n), n + 1):
        _, why = vote_stop(
            answers[:j],
            weights[:j],
            by=options["by"],
            tau=options["tau"],
            min_n=options["min_n"],
            give_up=options["give_up"],
            give_up_after=options["give_up_after"],
        )
        if why is not None:
            return j
    return n


def _stop_extra(out: PrefixOutcomes, i: int, m: int, k: int, scored: bool, signal: Signal) -> float:
    """Tokens beyond the pilot of a stop that drew ``m`` samples on problem ``i``: the
    samples after the pilot's (their prompt charged as ``_reuse_extra`` charges it) and,
    when it weighs them, the scores the pilot did not already pay for."""
    extra = 0.0
    if m > k:
        prompt = max(out.prompt[i, m - 1] - out.prompt[i, k - 1], out.prompt[i, 0])
        extra += prompt + out.completion[i, m - 1] - out.completion[i, k - 1]
    if scored:
        extra += out.scoring[i] * (max(m - k, 0) if signal == "score" else m)
    return float(extra)


def _stores(
    runs: Sequence[_Run], pilot_run: _Run, oracle_run: _Run
) -> tuple[CalibrationStore, ...]:
    """What each store held, and its roles (pilot, oracle)."""
    roles = {pilot_run.path: ["pilot"]}
    roles.setdefault(oracle_run.path, []).append("oracle")
    return tuple(
        CalibrationStore(
            path=r.path,
            strategy=r.strategy,
            options=r.options,
            problems=len(r.records),
            samples=r.samples if r.sampling else None,
            scored=r.scored,
            roles=tuple(roles.get(r.path, ())),
        )
        for r in runs
    )


def _reuse_extra(
    out: PrefixOutcomes, n: int, k: int, scored: bool, pilot_scored: bool
) -> FloatArray:
    """Tokens beyond the pilot of the pilot run's rule at n (module docstring, E)."""
    extra: FloatArray = np.zeros(out.correct.shape[0], dtype=np.float64)
    if n > k:
        prompt = np.maximum(out.prompt[:, n - 1] - out.prompt[:, k - 1], out.prompt[:, 0])
        extra = extra + prompt + out.completion[:, n - 1] - out.completion[:, k - 1]
    if scored:
        extra = extra + out.scoring * (max(n - k, 0) if pilot_scored else n)
    return extra


def _pick_oracle(runs: Sequence[_Run], oracle: str | None) -> _Run:
    if oracle is not None:
        run = _run_at(runs, oracle)
        if not run.sampling:
            raise ConfigError(
                f"the oracle store {run.path} holds a {run.strategy!r} run; pass rates need a "
                f"run of independent samples ({', '.join(SAMPLING_RULES)})"
            )
        return run
    sampling = [r for r in runs if r.sampling]
    return max(sampling, key=lambda r: r.samples)  # max keeps the first of equals


def _check_buildable(configs: Sequence[Configuration]) -> None:
    from ponder.strategies import make_strategy

    for c in configs:
        try:
            make_strategy(c.strategy, c.options)
        except (TypeError, ValueError) as e:
            raise ConfigError(
                f"configuration {c.label} from {c.source} cannot be built again: {e}"
            ) from e
