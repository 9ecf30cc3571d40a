"""How a cell is judged: the one rule by which a spreadsheet's value equals torch's.

A cell equals torch's value within `atol + rtol * size`, where the size is the value's own, or its
operands' where the formula subtracts nearly equal numbers (`Truth.scale`: finite differences,
trajectories compared; spreadsheet engines even snap such a result to 0). A spreadsheet error value
(`#NUM!`, `#DIV/0!`, ...) equals torch where torch's value is inf or nan, or was computed from one
(`Truth.spread`: an error spreads through every dependent cell, while torch's x / inf = 0 does not). A
number where torch has inf or nan, a blank or text where a number belongs, and a typed value where the
workbook has a formula (a hard-coded answer is not a computed one) all differ. Used on LibreOffice's
recalculation and on the values the application that saved a file computed alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Container, Mapping

import numpy as np

from . import reader
from .values import is_error


@dataclass
class Check:
    """One quantity (a defined name) compared cell by cell."""

    sheet: str
    name: str
    cells: int
    max_abs: float
    max_rel: float  # relative to each cell's value, or to its operands' size where it cancels
    worst: str
    passed: bool
    mismatches: list[str] = field(default_factory=list)
    worst_values: tuple = ()  # (sheet value, torch value) at the worst cell
    non_finite: int = 0    # cells where torch gives inf or nan (the inputs overflow or leave the domain)
    sheet_errors: int = 0  # cells where the sheet holds an error value (#NUM!, #DIV/0!, #VALUE!, ...)
    typed: list[str] = field(default_factory=list)  # cells holding a typed value where a formula belongs


@dataclass(frozen=True)
class Truth:
    """What torch says the cells of one quantity must hold."""

    value: np.ndarray                 # torch's float64 result
    scale: np.ndarray | None = None   # the operands' size, where the cells subtract nearly equal numbers
    spread: np.ndarray | None = None  # True where torch's value was computed from an inf or a nan


def compare(values: Mapping[tuple[int, int], object], area: reader.Area, name: str, truth: Truth,
            atol: float, rtol: float, formulas: Container[tuple[int, int]] | None = None,
            only: Container[tuple[int, int]] | None = None) -> Check:
    """Compare the recalculated cells of `area` (`values` of its sheet) with torch's `truth`.

    Where `formulas` is given, a cell of the area outside it holds a typed value where the workbook
    has a formula: it fails, even when the value is right. Where `only` is given, the other cells are
    left out.
    """
    positions = list(area.cells())
    flat = slice(None)  # each cell of the area, in the order of `positions`
    if only is not None:
        width = area.max_col - area.min_col + 1
        positions = [cell for cell in positions if cell in only]
        flat = [(row - area.min_row) * width + (col - area.min_col) for row, col in positions]
    if not positions:
        return Check(area.sheet, name, 0, 0.0, 0.0, "", True)
    if np.asarray(truth.value).dtype == object:
        return _compare_labels(values, area, name, truth, positions, formulas)
    actual = list(map(values.get, positions))
    is_number = [isinstance(v, (int, float)) for v in actual]
    number = np.array(is_number, dtype=bool)
    if number.all():  # as a verified workbook's cells are
        got, error_value = np.array(actual, dtype=np.float64), np.zeros(len(actual), dtype=bool)
    else:
        got = np.array([float(v) if n else 0.0 for v, n in zip(actual, is_number)])
        error_value = np.array([is_error(v) for v in actual], dtype=bool)
    want = np.asarray(truth.value, dtype=np.float64).reshape(-1)[flat]
    size = np.abs(want)
    if truth.scale is not None:
        scale = np.abs(np.asarray(truth.scale, dtype=np.float64).reshape(-1)[flat])
        size = np.where(np.isnan(size), size, np.fmax(size, scale))  # as max(size, scale) does
    finite = np.isfinite(want)
    error_ok = ~finite
    if truth.spread is not None:
        error_ok |= np.asarray(truth.spread, dtype=bool).reshape(-1)[flat]
    with np.errstate(invalid="ignore", over="ignore"):
        bound = np.where(finite, atol + rtol * size, 0.0)
        error = np.where(number & finite, np.abs(got - np.where(finite, want, 0.0)), np.inf)
        error[error_value] = np.where(error_ok[error_value], 0.0, np.inf)
        mismatch = np.where(error_value, ~error_ok, ~(number & finite) | (error > bound))
        typed_mask = np.zeros(len(positions), dtype=bool) if formulas is None or \
            all(map(formulas.__contains__, positions)) else np.array([cell not in formulas for cell in positions])
        mismatch |= typed_mask
        measured = np.isfinite(error)
        max_abs = float(error[measured].max()) if measured.any() else 0.0
        relative = measured & (size != 0) & np.isfinite(size)
        max_rel = float((error[relative] / size[relative]).max()) if relative.any() else 0.0
        ratio = np.where(mismatch, np.inf, np.divide(error, bound, out=np.zeros_like(error), where=bound != 0))
    at = int(np.argmax(ratio))

    def where(k: int) -> str:
        return reader.address(area.sheet, *positions[k])

    mismatches = [where(k) for k in np.flatnonzero(mismatch)]
    typed = [where(k) for k in np.flatnonzero(typed_mask)]
    return Check(area.sheet, name, len(positions), max_abs, max_rel, where(at), not mismatches, mismatches,
                 (actual[at], float(want[at])), int((~finite).sum()), int(error_value.sum()), typed)


def _compare_labels(values: Mapping[tuple[int, int], object], area: reader.Area, name: str, truth: Truth,
                    positions: list[tuple[int, int]], formulas: Container[tuple[int, int]] | None) -> Check:
    """`compare` for a quantity of labels (titles a formula looks up): a cell equals torch's text ignoring
    case, as = and MATCH compare text; a number, a blank or an error value where a label belongs differs,
    and so does a typed label where the workbook has a formula."""
    grid = np.asarray(truth.value)
    want = {cell: str(grid[cell[0] - area.min_row, cell[1] - area.min_col]) for cell in positions}
    mismatches, typed, worst = [], [], positions[0]
    for cell in positions:
        got, where = values.get(cell), reader.address(area.sheet, *cell)
        hard_coded = formulas is not None and cell not in formulas
        if hard_coded:
            typed.append(where)
        if hard_coded or not (isinstance(got, str) and not is_error(got) and got.casefold() == want[cell].casefold()):
            worst = worst if mismatches else cell
            mismatches.append(where)
    return Check(area.sheet, name, len(positions), 0.0, 0.0, reader.address(area.sheet, *worst), not mismatches,
                 mismatches, (values.get(worst), want[worst]), typed=typed)


_ONE = reader.Area("", 1, 1, 1, 1)


def agrees(value, want: float | str, atol: float, rtol: float, scale: float | None = None,
           spread: bool = False) -> bool:
    """Whether one cell's `value` equals torch's `want` (a number, or a label) by the rule of `compare`
    (`scale`: its operands' size, where it cancels; `spread`: torch's value was computed from an inf or a nan)."""
    if value is None:  # a blank equals no value of torch's (asked of every cell of an exercise's empty block)
        return False
    truth = Truth(np.array([[want]], dtype=object if isinstance(want, str) else np.float64),
                  None if scale is None else np.array([[scale]]), np.array([[spread]]))
    return compare({(1, 1): value}, _ONE, "", truth, atol, rtol).passed
