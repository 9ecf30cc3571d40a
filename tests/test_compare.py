"""The comparison rule (lessonxl/compare.py), table-driven: every case a cell, a truth and the verdict
written out by hand, as xlsxwriter's and pycel's suites write theirs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lessonxl import reader
from lessonxl.catalog import DEFAULT_TOL
from lessonxl.compare import Truth, agrees, compare, is_error

INF, NAN = math.inf, math.nan


def judged(actual, want, scale=None, spread=False, atol=DEFAULT_TOL, rtol=DEFAULT_TOL, formula=True):
    """The verdict on one cell s!A1 holding `actual` where torch says `want`."""
    area = reader.Area("s", 1, 1, 1, 1)
    truth = Truth(np.array([[want]]), None if scale is None else np.array([[scale]]),
                  np.array([[spread]]))
    return compare({(1, 1): actual}, area, "q", truth, atol, rtol, formulas={(1, 1)} if formula else set())


ONE_CELL = [
    (1.5, 1.5, {}, True),
    (2, 2.0, {}, True),                                   # an integer the engine stored
    (True, 1.0, {}, True),                                # a logical value counts as 1 (bool is an int)
    (False, 1.0, {"atol": 0.5}, False),
    (1.25, 1.0, {"atol": 0.5, "rtol": 0.0}, True),
    (1.75, 1.0, {"atol": 0.5, "rtol": 0.0}, False),
    (1.0 + 2e-9, 1.0, {}, True),                          # within 1e-9 + 1e-9 * 1
    (1.0 + 3e-9, 1.0, {}, False),
    (1e6 + 5e-4, 1e6, {}, True),                          # relative: 1e-9 * 1e6 = 1e-3
    (0.0, 1e-12, {"scale": 1e4}, True),                   # cancellation snapped to 0: bound from the operands
    (0.0, 1e-3, {"scale": 1e4}, False),                   # beyond the operands' rounding
    ("#NUM!", INF, {}, True),                             # torch overflowed, the sheet says so
    ("#DIV/0!", NAN, {}, True),
    ("#VALUE!", 3.0, {"spread": True}, True),             # torch's 3 was computed from an inf
    ("#NUM!", 3.0, {}, False),                            # an error where torch has a number
    ("#N/A", 1.0, {"atol": 1e9}, False),                  # an error is never within a tolerance
    (1e308, INF, {}, False),                              # a number where torch overflowed
    (0.0, NAN, {}, False),
    (None, 0.0, {"atol": 1.0}, False),                    # a blank where a number belongs
    ("0", 0.0, {"atol": 1.0}, False),                     # text is not a number
    ("", 0.0, {"spread": True}, False),                   # empty text is not an error value
    (None, NAN, {"spread": True}, False),                 # a blank is no error value either
]


@pytest.mark.parametrize("actual, want, options, passed", ONE_CELL)
def test_one_cell_against_torch(actual, want, options, passed):
    check = judged(actual, want, **options)
    assert check.passed is passed and (check.mismatches == []) is passed


@pytest.mark.parametrize("actual, want, options, passed", ONE_CELL)
def test_the_diagnosis_judges_one_cell_by_the_same_rule(actual, want, options, passed):
    """`agrees` (one cell, as the diagnosis asks) gives the table's verdict too, its shortcut for a blank
    included."""
    assert agrees(actual, want, options.get("atol", DEFAULT_TOL), options.get("rtol", DEFAULT_TOL),
                  options.get("scale"), options.get("spread", False)) is passed


def test_a_typed_value_where_a_formula_belongs_fails_even_when_right():
    check = judged(1.5, 1.5, formula=False)
    assert not check.passed and check.typed == ["s!A1"]


def test_errors_are_measured_absolute_and_relative_to_the_size():
    check = judged(1.0 + 1e-10, 1.0, scale=10.0)
    assert check.max_abs == pytest.approx(1e-10) and check.max_rel == pytest.approx(1e-11)


def test_the_worst_cell_is_the_one_furthest_past_its_bound():
    area = reader.Area("s", 1, 1, 1, 3)
    values = {(1, 1): 1.0, (1, 2): 2.5, (1, 3): 10.0 + 1e-12}
    check = compare(values, area, "q", Truth(np.array([[1.0, 2.0, 10.0]])), 1e-9, 1e-9)
    assert check.worst == "s!B1" and check.worst_values == (2.5, 2.0)
    assert check.mismatches == ["s!B1"] and check.cells == 3


def test_only_some_cells_are_compared_when_asked():
    area = reader.Area("s", 1, 1, 2, 1)
    check = compare({(1, 1): 1.0, (2, 1): 99.0}, area, "q", Truth(np.array([[1.0], [2.0]])), 1e-9, 1e-9,
                    only={(1, 1)})
    assert check.passed and check.cells == 1


@pytest.mark.parametrize("value, error", [("#NUM!", True), ("#N/A", True), ("#", True), ("NUM", False),
                                          ("", False), (1.0, False), (None, False)])
def test_what_is_an_error_value(value, error):
    assert is_error(value) is error
