"""``_ConfigTable``: the configurations a calibration chooses from, each kept once."""

from __future__ import annotations

import numpy as np

from ponder.analysis.calibration import _ConfigTable
from ponder.strategies.optimal.policy import Configuration


def test_a_configuration_given_twice_keeps_the_first_store_s_outcomes() -> None:
    table = _ConfigTable()
    one = np.array([1.0, 2.0])
    first = Configuration("majority", {"n": 2}, "a.db")
    again = Configuration("majority", {"n": 2}, "b.db")
    other = Configuration("majority", {"n": 3}, "b.db")
    table.add(first, np.array([True, False]), one, one)
    table.add(again, np.array([False, False]), one * 9, one * 9)
    table.add(other, np.array([True, True]), one * 2, one)
    assert table.configs == [first, other]
    assert [c.tolist() for c in table.correct] == [[True, False], [True, True]]
    assert [p.tolist() for p in table.policy] == [[1.0, 2.0], [2.0, 4.0]]
    assert [t.tolist() for t in table.own] == [[1.0, 2.0], [1.0, 2.0]]
