"""The compute-optimal policy file that ``ponder optimize`` writes and ``optimal`` reads.

A policy maps (difficulty bin, token budget) to a configuration, after Snell et al.
2024 ("Scaling LLM Test-Time Compute Optimally can be More Effective than Scaling Model
Parameters", arXiv:2408.03314, section 3.2). It is one JSON object::

    {
      "format": "ponder-optimal-policy",
      "version": 1,
      "created": "2025-01-01T00:00:00+00:00", "ponder_version": "0.1.0",
      "task": "gsm8k", "model": "qwen2.5-coder-1.5b",
      "pilot": {"samples": 4, "temperature": 0.7, "top_p": 0.95,
                "scorer": null, "signal": "agreement", "store": "runs/maj16.db"},
      "bins": {"count": 5, "thresholds": [1.0, 0.75, 0.5, 0.25], "rule": "..."},
      "budgets": [300, 600, 1200],
      "allocation": "bin",
      "table": [
        {"bin": 1, "budget": 300,
         "config": {"strategy": "majority", "options": {"n": 4, ...}},
         "reuses_pilot": true, "source": "runs/maj16.db",
         "accuracy": 0.95, "tokens": 250.5, "problems": 20, "fits": true},
        ...
      ],
      "calibration": {...},
      "evaluation": {...}
    }

- ``pilot``: how the pilot is drawn (``samples`` plain samples of the task's prompt at
  ``temperature`` and ``top_p``, with token logprobs when ``scorer`` needs them) and
  which ``signal`` of it predicts the bin (``ponder.analysis.difficulty``); ``scorer`` is
  the pilot run's scorer (null for majority runs), the one the ``score`` signal and
  the reusing configurations score with.
- ``bins``: the thresholds of the predicted-difficulty bins; a signal value v is in
  bin ``1 + #{thresholds t : v < t}`` (``difficulty.Bins``), bin 1 the easiest.
- ``budgets``: mean tokens per problem (prefilled prompt + generated + scoring),
  strictly increasing. A run at budget B uses the largest listed budget <= B.
- ``allocation``: how a budget was spent when the table was fitted. ``bin`` (the
  paper's; the default when absent): every bin's configuration keeps that bin's own
  mean within the budget. ``mean``: the budget bounds the mean over all problems, so
  easy bins may spend less than it and hard bins more, the configurations chosen
  together for the best expected accuracy (``ponder.analysis.optimize``).
- ``table``: exactly one cell per (bin, budget). ``config`` is a registered strategy
  name and its options; ``reuses_pilot`` means the configuration is the pilot run's
  own rule over its first ``n`` samples, or a ``weighted_stop`` (``min_n`` at least the
  pilot's samples, unweighted or weighted by the pilot's scorer) that starts from them,
  or a ``hybrid`` whose first ``n`` chains are the pilot's (unweighted or weighted by the
  pilot's scorer), so the pilot samples are the first ones and only samples after the
  pilot's (and a hybrid's programs) are drawn;
  ``accuracy``, ``tokens`` and ``problems`` are the cell's calibration estimate on the
  bin's problems, and ``fits`` is false when no configuration fitted the budget in that
  bin (allocation ``bin`` only; the cell then holds the bin's cheapest one).
- ``calibration`` (the stores used, the split) and ``evaluation`` (held-out results)
  are informational: they are kept as written and not checked.

A file that breaks these rules, or of a newer version, raises ``ConfigError``.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from ponder._version import __version__
from ponder.core.errors import ConfigError
from ponder.strategies.base import strategy_class
from ponder.strategies.optimal.signals import SIGNALS, Bins, Signal
from ponder.strategies.voting import SAMPLING_RULES, Method

POLICY_FORMAT = "ponder-optimal-policy"
POLICY_VERSION = 1
BIN_RULE = "bin = 1 + number of thresholds greater than the signal value; bin 1 is the easiest"

STOP_STRATEGY = "weighted_stop"
"""The stopping strategy whose configurations may reuse the pilot (``ponder optimize
--stop-margins``)."""
HYBRID_STRATEGY = "hybrid"
"""The chains-and-programs vote whose configurations may reuse the pilot (``ponder
optimize --hybrid``)."""

Allocation = Literal["bin", "mean"]
ALLOCATIONS: tuple[Allocation, ...] = ("bin", "mean")


@dataclass(frozen=True)
class Configuration:
    """A strategy name and its options, as ``make_strategy`` takes them.

    ``source`` is the store it was measured on; ``reuses_pilot`` says that it is the
    pilot run's own rule over its first ``n`` samples (see the module docstring).
    """

    strategy: str
    options: Mapping[str, Any]
    source: str = ""
    reuses_pilot: bool = False

    @property
    def rule(self) -> Method | None:
        """The sampling rule (majority, best_of_n, weighted) or None for other strategies."""
        return SAMPLING_RULES.get(self.strategy)

    @property
    def n(self) -> int | None:
        n = self.options.get("n")
        return n if isinstance(n, int) and not isinstance(n, bool) else None

    @property
    def key(self) -> str:
        """Identity: the strategy and its options (not where it was measured)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @property
    def label(self) -> str:
        """``majority n=4``, ``best_of_n n=8 judge``; other strategies show ``n`` and the
        options that differ from the strategy's defaults (``revise n=4 chains=2``)."""
        if self.rule is not None:
            scorer = self.options.get("scorer")
            return f"{self.strategy} n={self.n}" + (f" {scorer}" if scorer else "")
        if self.strategy == STOP_STRATEGY:
            o = self.options
            give_up = f",give_up {o['give_up']:g}" if o.get("give_up") else ""
            return (
                f"stop[{o.get('scorer') or 'count'},{o.get('by')} {o.get('tau')},"
                f"{o.get('min_n')}{give_up}] max_n={o.get('max_n')}"
            )
        try:
            defaults = {
                f.name: f.default for f in dataclasses.fields(strategy_class(self.strategy))
            }
        except (ConfigError, TypeError):
            defaults = {}
        shown = [f"n={self.n}"] if self.n is not None else []
        shown += [
            f"{k}={v}"
            for k, v in sorted(self.options.items())
            if k != "n" and (k not in defaults or defaults[k] != v)
        ]
        return " ".join([self.strategy, *shown])

    def to_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "options": dict(self.options)}


@dataclass(frozen=True)
class Pilot:
    """How the pilot is drawn and read; see the module docstring."""

    samples: int
    temperature: float
    top_p: float
    signal: Signal
    scorer: str | None = None
    store: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "scorer": self.scorer,
            "signal": self.signal,
            "store": self.store,
        }


@dataclass(frozen=True)
class Cell:
    """The configuration of one (bin, budget) and its calibration estimate."""

    bin: int
    budget: float
    config: Configuration
    accuracy: float
    tokens: float
    problems: int
    fits: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "bin": self.bin,
            "budget": self.budget,
            "config": self.config.to_dict(),
            "reuses_pilot": self.config.reuses_pilot,
            "source": self.config.source,
            "accuracy": self.accuracy,
            "tokens": self.tokens,
            "problems": self.problems,
            "fits": self.fits,
        }


@dataclass(frozen=True)
class Policy:
    """A compute-optimal policy; ``save``/``load`` write and read the JSON file."""

    task: str
    model: str
    pilot: Pilot
    bins: Bins
    budgets: tuple[float, ...]
    cells: tuple[Cell, ...]
    calibration: Mapping[str, Any] = field(default_factory=dict)
    evaluation: Mapping[str, Any] | None = None
    allocation: Allocation = "bin"

    def __post_init__(self) -> None:
        _check_policy(self)

    def column(self, budget: float) -> float:
        """The largest listed budget that is <= ``budget``."""
        fitting = [b for b in self.budgets if b <= budget]
        if not fitting:
            raise ConfigError(
                f"budget {budget:g} is below the policy's smallest budget "
                f"{self.budgets[0]:g} tokens per problem (budgets: "
                f"{', '.join(f'{b:g}' for b in self.budgets)})"
            )
        return fitting[-1]

    def cell(self, bin: int, budget: float) -> Cell:
        """The cell of ``bin`` at the column ``budget`` falls into."""
        column = self.column(budget)
        for c in self.cells:
            if c.bin == bin and c.budget == column:
                return c
        raise ConfigError(f"the policy has no cell for bin {bin} at budget {column:g}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": POLICY_FORMAT,
            "version": POLICY_VERSION,
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "ponder_version": __version__,
            "method": "compute-optimal allocation per predicted difficulty bin "
            "(Snell et al. 2024, arXiv:2408.03314)",
            "task": self.task,
            "model": self.model,
            "pilot": self.pilot.to_dict(),
            "bins": {**self.bins.to_dict(), "rule": BIN_RULE},
            "budgets": list(self.budgets),
            "allocation": self.allocation,
            "table": [c.to_dict() for c in self.cells],
            "calibration": dict(self.calibration),
            "evaluation": None if self.evaluation is None else dict(self.evaluation),
        }

    def save(self, path: str | Path) -> Path:
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return out

    @classmethod
    def from_dict(cls, d: Any) -> Policy:
        """Read a policy object; every rule of the module docstring is checked."""
        if not isinstance(d, dict):
            raise ConfigError("a policy must be a JSON object")
        if d.get("format") != POLICY_FORMAT:
            raise ConfigError(f"not a ponder policy (format is not {POLICY_FORMAT!r})")
        version = d.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ConfigError(f"policy version must be a positive integer, got {version!r}")
        if version > POLICY_VERSION:
            raise ConfigError(
                f"the policy was written by a newer ponder (version {version}; this ponder "
                f"reads up to {POLICY_VERSION})"
            )
        pilot = _obj(d, "pilot")
        signal = pilot.get("signal")
        if signal not in SIGNALS:
            raise ConfigError(f"pilot.signal must be one of {', '.join(SIGNALS)}, got {signal!r}")
        scorer = pilot.get("scorer")
        if scorer is not None and not isinstance(scorer, str):
            raise ConfigError("pilot.scorer must be a scorer spec or null")
        budgets = d.get("budgets")
        if not isinstance(budgets, list):
            raise ConfigError("budgets must be a list of numbers")
        table = d.get("table")
        if not isinstance(table, list):
            raise ConfigError("table must be a list of cells")
        evaluation = d.get("evaluation")
        if evaluation is not None and not isinstance(evaluation, dict):
            raise ConfigError("evaluation must be an object or null")
        calibration = d.get("calibration", {})
        if not isinstance(calibration, dict):
            raise ConfigError("calibration must be an object")
        allocation = d.get("allocation", "bin")  # checked with the rest in __post_init__
        return cls(
            task=_str(d, "task"),
            model=_str(d, "model"),
            pilot=Pilot(
                samples=_int(pilot, "samples", "pilot."),
                temperature=_num(pilot, "temperature", "pilot."),
                top_p=_num(pilot, "top_p", "pilot."),
                signal=cast(Signal, signal),
                scorer=scorer,
                store=str(pilot.get("store", "")),
            ),
            bins=Bins.from_dict(_obj(d, "bins")),
            budgets=tuple(_num({"budget": b}, "budget", "budgets: ") for b in budgets),
            cells=tuple(_cell(c, i) for i, c in enumerate(table)),
            calibration=calibration,
            evaluation=evaluation,
            allocation=cast(Allocation, allocation),
        )

    @classmethod
    def load(cls, path: str | Path) -> Policy:
        """Read and check a policy file (``ConfigError`` naming the file otherwise)."""
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"no policy file at {p}")
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"policy {p} is not valid JSON: {e}") from e
        try:
            return cls.from_dict(data)
        except ConfigError as e:
            raise ConfigError(f"policy {p}: {e}") from e


@functools.lru_cache(maxsize=16)
def _load_cached(path: str, mtime_ns: int, size: int) -> Policy:
    return Policy.load(path)


def load_policy(path: str | Path) -> Policy:
    """``Policy.load``, cached while the file is unchanged (strategies load it per problem)."""
    p = Path(path).resolve()
    if not p.is_file():
        raise ConfigError(f"no policy file at {path}")
    st = p.stat()
    return _load_cached(str(p), st.st_mtime_ns, st.st_size)


# -- checks ------------------------------------------------------------------------------


def _check_policy(policy: Policy) -> None:
    pilot = policy.pilot
    if pilot.samples < 1:
        raise ConfigError(f"pilot.samples must be >= 1, got {pilot.samples}")
    if pilot.temperature < 0 or not 0 < pilot.top_p <= 1:
        raise ConfigError(
            f"pilot sampling needs temperature >= 0 and 0 < top_p <= 1, got "
            f"{pilot.temperature} and {pilot.top_p}"
        )
    if pilot.signal == "score" and not pilot.scorer:
        raise ConfigError("the score signal needs pilot.scorer")
    if policy.allocation not in ALLOCATIONS:
        raise ConfigError(
            f"allocation must be one of {', '.join(ALLOCATIONS)}, got {policy.allocation!r}"
        )
    budgets = policy.budgets
    if not budgets:
        raise ConfigError("the policy lists no budgets")
    if any(not math.isfinite(b) or b <= 0 for b in budgets) or any(
        a >= b for a, b in itertools.pairwise(budgets)
    ):
        raise ConfigError(f"budgets must be positive and strictly increasing, got {list(budgets)}")
    seen: set[tuple[int, float]] = set()
    for c in policy.cells:
        where = f"table cell (bin {c.bin}, budget {c.budget:g})"
        if not 1 <= c.bin <= policy.bins.count:
            raise ConfigError(f"{where}: bin must be in 1..{policy.bins.count}")
        if c.budget not in budgets:
            raise ConfigError(f"{where}: budget is not among the policy's budgets")
        if (c.bin, c.budget) in seen:
            raise ConfigError(f"{where} appears twice")
        seen.add((c.bin, c.budget))
        _check_reuse(c.config, pilot, where)
    missing = [
        (b, budget)
        for b in range(1, policy.bins.count + 1)
        for budget in budgets
        if (b, budget) not in seen
    ]
    if missing:
        b, budget = missing[0]
        raise ConfigError(
            f"the table lacks {len(missing)} cells (first: bin {b}, budget {budget:g}); "
            "it needs one per bin and budget"
        )


def _check_reuse(config: Configuration, pilot: Pilot, where: str) -> None:
    if not config.reuses_pilot:
        return
    opts = config.options
    if config.strategy == STOP_STRATEGY:
        min_n = opts.get("min_n")
        scorer = opts.get("scorer")
        if not isinstance(min_n, int) or min_n < pilot.samples:
            raise ConfigError(
                f"{where}: {config.label} reuses the pilot of {pilot.samples} samples, so its "
                f"min_n must be at least {pilot.samples}"
            )
        weighs_as_pilot = scorer == "" or (scorer is not None and scorer == pilot.scorer)
    elif config.strategy == HYBRID_STRATEGY:
        if config.n is None or config.n < 1:
            raise ConfigError(f"{where}: {config.label} reuses the pilot, so n must be >= 1")
        scorer = opts.get("scorer")
        weighs_as_pilot = scorer is None or scorer == pilot.scorer
    elif config.rule is None or config.n is None or config.n < 1:
        raise ConfigError(
            f"{where}: only majority, best_of_n and weighted_majority with n >= 1, "
            f"weighted_stop and hybrid can reuse the pilot, not {config.label!r}"
        )
    else:
        weighs_as_pilot = config.rule == "majority" or opts.get("scorer") == pilot.scorer
    same = (
        math.isclose(float(opts.get("temperature", math.nan)), pilot.temperature)
        and math.isclose(float(opts.get("top_p", math.nan)), pilot.top_p)
        and weighs_as_pilot
    )
    if not same:
        raise ConfigError(
            f"{where}: {config.label} reuses the pilot but does not sample (and score) as "
            "the pilot does"
        )


def _obj(d: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = d.get(key)
    if not isinstance(value, dict):
        raise ConfigError(f"{key} must be an object")
    return value


def _str(d: Mapping[str, Any], key: str, where: str = "") -> str:
    value = d.get(key)
    if not isinstance(value, str):
        raise ConfigError(f"{where}{key} must be a string, got {value!r}")
    return value


def _num(d: Mapping[str, Any], key: str, where: str = "") -> float:
    value = d.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise ConfigError(f"{where}{key} must be a number, got {value!r}")
    return float(value)


def _int(d: Mapping[str, Any], key: str, where: str = "") -> int:
    value = d.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{where}{key} must be an integer, got {value!r}")
    return value


def _cell(d: Any, i: int) -> Cell:
    where = f"table[{i}]."
    if not isinstance(d, dict):
        raise ConfigError(f"table[{i}] must be an object")
    config = d.get("config")
    if not isinstance(config, dict):
        raise ConfigError(f"{where}config must be an object")
    options = config.get("options", {})
    if not isinstance(options, dict):
        raise ConfigError(f"{where}config.options must be an object")
    reuses = d.get("reuses_pilot", False)
    fits = d.get("fits", True)
    if not isinstance(reuses, bool) or not isinstance(fits, bool):
        raise ConfigError(f"{where}reuses_pilot and fits must be true or false")
    return Cell(
        bin=_int(d, "bin", where),
        budget=_num(d, "budget", where),
        config=Configuration(
            strategy=_str(config, "strategy", f"{where}config."),
            options=options,
            source=str(d.get("source", "")),
            reuses_pilot=reuses,
        ),
        accuracy=_num(d, "accuracy", where),
        tokens=_num(d, "tokens", where),
        problems=_int(d, "problems", where),
        fits=fits,
    )


def cells_by_budget(cells: Sequence[Cell]) -> dict[float, list[Cell]]:
    """The cells grouped by budget, each group in bin order."""
    out: dict[float, list[Cell]] = {}
    for c in sorted(cells, key=lambda c: (c.budget, c.bin)):
        out.setdefault(c.budget, []).append(c)
    return out
