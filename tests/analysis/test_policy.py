"""The policy file: it reads back what it wrote, and every malformed file is a clear error."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from ponder.core.errors import ConfigError
from ponder.strategies.optimal.policy import Policy, load_policy

MAJ = {"temperature": 0.7, "top_p": 0.95}


def policy_dict() -> dict[str, Any]:
    """Two bins, budgets 100 and 200."""

    def cell(b: int, budget: int, strategy: str, options: dict[str, Any], reuse: bool) -> Any:
        return {
            "bin": b, "budget": budget, "config": {"strategy": strategy, "options": options},
            "reuses_pilot": reuse, "source": "cal.db", "accuracy": 0.5, "tokens": 90.0,
            "problems": 3, "fits": True,
        }  # fmt: skip

    return {
        "format": "ponder-optimal-policy",
        "version": 1,
        "task": "toy",
        "model": "m",
        "pilot": {
            "samples": 2,
            "temperature": 0.7,
            "top_p": 0.95,
            "scorer": None,
            "signal": "agreement",
            "store": "cal.db",
        },
        "bins": {"count": 2, "thresholds": [1.0]},
        "budgets": [100, 200],
        "table": [
            cell(1, 100, "majority", {"n": 2, **MAJ}, True),
            cell(2, 100, "majority", {"n": 4, **MAJ}, True),
            cell(1, 200, "majority", {"n": 2, **MAJ}, True),
            cell(2, 200, "single", {"temperature": 0.0}, False),
        ],
        "calibration": {"stores": []},
        "evaluation": None,
    }


def test_round_trip_and_lookup(tmp_path: Path) -> None:
    policy = Policy.from_dict(policy_dict())
    path = policy.save(tmp_path / "p.json")
    again = Policy.load(path)
    assert again.cells == policy.cells and again.pilot == policy.pilot
    assert again.budgets == (100.0, 200.0)
    assert policy.column(100) == 100 and policy.column(199.9) == 100 and policy.column(5e3) == 200
    assert policy.cell(2, 250).config.strategy == "single"
    assert policy.cell(2, 150).config.n == 4 and policy.cell(2, 150).config.rule == "majority"
    with pytest.raises(ConfigError, match="below the policy's smallest budget 100"):
        policy.column(99)
    assert load_policy(path) is load_policy(path)  # cached while unchanged
    data = json.loads(path.read_text())
    assert data["bins"]["rule"].startswith("bin = 1 + number of thresholds")
    # a file without "allocation" (the first policies) reads as the paper's, per bin
    assert policy.allocation == "bin" and data["allocation"] == "bin"
    mean = Policy.from_dict({**policy_dict(), "allocation": "mean"})
    assert Policy.load(mean.save(tmp_path / "mean.json")).allocation == "mean"


def edit(path: str, value: Any) -> dict[str, Any]:
    d = copy.deepcopy(policy_dict())
    *parents, last = path.split(".")
    target: Any = d
    for key in parents:
        target = target[int(key)] if key.isdigit() else target[key]
    key: int | str = int(last) if last.isdigit() else last
    if value is KeyError:
        del target[key]
    else:
        target[key] = value
    return d


@pytest.mark.parametrize(
    ("path", "value", "match"),
    [
        ("format", "something-else", "not a ponder policy"),
        ("version", 2, "written by a newer ponder"),
        ("version", "1", "version must be a positive integer"),
        ("pilot.signal", "entropy", "pilot.signal must be one of agreement, score"),
        ("pilot.samples", 0, "pilot.samples must be >= 1"),
        ("pilot.samples", 2.5, "pilot.samples must be an integer"),
        ("pilot.top_p", 0, "top_p"),
        ("pilot", KeyError, "pilot must be an object"),
        ("bins.thresholds", [0.5, 1.0], "strictly decreasing"),
        ("bins.count", 3, "count is 3"),
        ("budgets", [200, 100], "strictly increasing"),
        ("budgets", [], "lists no budgets"),
        ("budgets", ["a"], "must be a number"),
        ("table.3", KeyError, "lacks 1 cells \\(first: bin 2, budget 200\\)"),
        ("table.3.bin", 3, "bin must be in 1..2"),
        ("table.3.budget", 150, "budget is not among"),
        ("table.3.bin", 1, "appears twice"),
        ("table.0.config", "majority", "config must be an object"),
        ("table.0.config.strategy", 7, "config.strategy must be a string"),
        ("table.0.fits", "yes", "must be true or false"),
        ("table.0.accuracy", None, "accuracy must be a number"),
        ("table.1.config.options.temperature", 1.0, "does not sample .* as the pilot does"),
        ("table.3.reuses_pilot", True, "only majority, best_of_n and weighted_majority"),
        ("evaluation", [], "evaluation must be an object or null"),
        ("task", None, "task must be a string"),
        ("allocation", "median", "allocation must be one of bin, mean"),
    ],
)
def test_malformed_policies_are_config_errors(path: str, value: Any, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Policy.from_dict(edit(path, value))


def test_the_score_signal_needs_a_scorer_and_scored_reuse_the_same_one() -> None:
    d = edit("pilot.signal", "score")
    with pytest.raises(ConfigError, match=r"score signal needs pilot\.scorer"):
        Policy.from_dict(d)
    d["pilot"]["scorer"] = "judge"
    Policy.from_dict(d)
    d["table"][0]["config"] = {"strategy": "best_of_n", "options": {"n": 2, **MAJ, "scorer": "x"}}
    with pytest.raises(ConfigError, match="does not sample \\(and score\\) as the pilot"):
        Policy.from_dict(d)


def test_files_that_are_not_policies(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no policy file"):
        Policy.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match=r"bad\.json is not valid JSON"):
        Policy.load(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(ConfigError, match=r"bad\.json: a policy must be a JSON object"):
        Policy.load(bad)
    with pytest.raises(ConfigError, match="no policy file"):
        load_policy(tmp_path / "missing.json")
