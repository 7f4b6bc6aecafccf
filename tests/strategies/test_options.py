"""``ponder.strategies.options``: a strategy's options from flags and ``KEY=VALUE`` text."""

from __future__ import annotations

import pytest

from ponder.core.errors import ConfigError
from ponder.strategies.options import STRATEGY_ARGUMENTS, build_options, parse_options


def test_parse_options_reads_each_value_as_its_fields_type() -> None:
    assert parse_options("majority", ["n=4", "temperature=0.5", "top-p=1"]) == {
        "n": 4,
        "temperature": 0.5,
        "top_p": 1.0,
    }
    assert parse_options("optimal", ["policy=p.json"]) == {"policy": "p.json"}


def test_parse_options_refuses_unknown_fields_and_bad_values() -> None:
    with pytest.raises(ConfigError, match="-o 'width=2': strategy 'majority' has fields n, "):
        parse_options("majority", ["width=2"])
    with pytest.raises(ConfigError, match="-o 'n': strategy 'majority'"):
        parse_options("majority", ["n"])
    with pytest.raises(ConfigError, match="-o 'n=four': n takes a int"):
        parse_options("majority", ["n=four"])


def test_build_options_gives_the_argument_and_lets_items_override() -> None:
    common = {"n": 4, "temperature": None, "budget": 600.0}
    options = build_options("optimal", common, argument="p.json", items=["budget=300"])
    assert STRATEGY_ARGUMENTS["optimal"] == "policy"
    assert options == {"n": 4, "temperature": None, "budget": 300.0, "policy": "p.json"}
    assert common == {"n": 4, "temperature": None, "budget": 600.0}  # left as it was


def test_build_options_bounds_an_adaptive_strategys_max_n_by_n() -> None:
    assert build_options("adaptive_consistency", {"n": 6, "top_p": None}) == {
        "top_p": None,
        "max_n": 6,
    }
    assert build_options("majority", {"n": 6}) == {"n": 6}
    assert build_options("esc", {"n": 6}, items=["max_n=9"]) == {"max_n": 9}
